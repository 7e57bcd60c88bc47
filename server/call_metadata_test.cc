// ReadCallMetadata and RequestIdFrom (server/rpc_forwarder.h): what the
// forwarder takes from each call's gRPC metadata, without a live call.
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/errors/error_details.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/rpc_forwarder.h"

namespace clink_gateway::server {
namespace {

using ::testing::ElementsAre;

const absl::flat_hash_set<std::string> kMerchants = {"default", "acme"};

// Owns the strings the string_refs of a ClientMetadata point into.
class Metadata {
 public:
  Metadata& Add(std::string key, std::string value) {
    pairs_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  ClientMetadata Get() const {
    ClientMetadata m;
    for (const auto& [k, v] : pairs_) {
      m.emplace(grpc::string_ref(k.data(), k.size()),
                grpc::string_ref(v.data(), v.size()));
    }
    return m;
  }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

absl::Status Read(const Metadata& metadata, clink::CallOptions& options,
                  absl::string_view default_merchant = "default") {
  return ReadCallMetadata(metadata.Get(), kMerchants, default_merchant,
                          options);
}

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> fields;
  const auto bad = errors::GetBadRequest(status);
  if (bad.has_value()) {
    for (const auto& v : bad->field_violations()) fields.push_back(v.field());
  }
  return fields;
}

TEST(ReadCallMetadataTest, NoHeadersMeansTheDefaultMerchantAndNoKey) {
  clink::CallOptions options;
  EXPECT_TRUE(Read(Metadata(), options).ok());
  EXPECT_EQ(options.merchant, "default");
  EXPECT_EQ(options.idempotency_key, "");
  EXPECT_EQ(options.caller, "");
}

TEST(ReadCallMetadataTest, TakesWellFormedHeaders) {
  clink::CallOptions options;
  const std::string key = "order 42 / attempt " + std::string(200, 'k');
  ASSERT_TRUE(Read(Metadata()
                       .Add("idempotency-key", key)
                       .Add("x-clink-caller", "spiffe://prod/ns/web@v1.2")
                       .Add("x-clink-merchant", "acme"),
                   options)
                  .ok());
  EXPECT_EQ(options.idempotency_key, key);
  EXPECT_EQ(options.caller, "spiffe://prod/ns/web@v1.2");
  EXPECT_EQ(options.merchant, "acme");
}

TEST(ReadCallMetadataTest, RefusesMalformedHeadersNamingEachOne) {
  clink::CallOptions options;
  const absl::Status status =
      Read(Metadata()
               .Add("idempotency-key", std::string(256, 'k'))
               .Add("x-clink-caller", "web service")  // A space.
               .Add("x-clink-merchant", "initech"),   // Not configured.
           options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Fields(status), ElementsAre("idempotency-key", "x-clink-caller",
                                          "x-clink-merchant"));
  // The unknown merchant's name is not echoed back.
  EXPECT_EQ(status.message().find("initech"), absl::string_view::npos);
  // Nothing half-read is left behind.
  EXPECT_EQ(options.idempotency_key, "");
  EXPECT_EQ(options.caller, "");
  // An ErrorInfo like every error: nothing was sent.
  const auto info = errors::GetErrorInfo(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), kInvalidMetadataReason);
  EXPECT_EQ(info->domain(), errors::kGatewayDomain);
  EXPECT_EQ(info->metadata().at("outcome"), "not_sent");
}

TEST(ReadCallMetadataTest, BoundsEachHeader) {
  for (const std::string& key :
       {std::string(), std::string("tab\there"), std::string("\x7f")}) {
    clink::CallOptions options;
    EXPECT_THAT(Fields(Read(Metadata().Add("idempotency-key", key), options)),
                ElementsAre("idempotency-key"))
        << key;
  }
  clink::CallOptions options;
  EXPECT_TRUE(
      Read(Metadata().Add("idempotency-key", std::string(255, 'k')), options)
          .ok());
  EXPECT_THAT(
      Fields(Read(Metadata().Add("x-clink-caller", std::string(129, 'c')),
                  options)),
      ElementsAre("x-clink-caller"));
  EXPECT_TRUE(
      Read(Metadata().Add("x-clink-caller", std::string(128, 'c')), options)
          .ok());
}

TEST(ReadCallMetadataTest, EachHeaderAtMostOnce) {
  // The policy would see "acme,default"; the route must never be a guess.
  for (const char* name : {"x-clink-merchant", "x-clink-caller",
                           "idempotency-key"}) {
    clink::CallOptions options;
    EXPECT_THAT(Fields(Read(Metadata().Add(name, "acme").Add(name, "default"),
                            options)),
                ElementsAre(name))
        << name;
    EXPECT_TRUE(options.merchant.empty()) << name;
  }
}

TEST(ReadCallMetadataTest, WithoutADefaultTheMerchantHeaderIsRequired) {
  clink::CallOptions options;
  EXPECT_THAT(Fields(Read(Metadata(), options, /*default_merchant=*/"")),
              ElementsAre("x-clink-merchant"));
  EXPECT_TRUE(
      Read(Metadata().Add("x-clink-merchant", "acme"), options, "").ok());
  EXPECT_EQ(options.merchant, "acme");
}

TEST(RequestIdFromTest, KeepsAPrintableIdElseMakesOne) {
  EXPECT_EQ(RequestIdFrom(Metadata().Add("x-request-id", "req-1").Get()),
            "req-1");
  for (const std::string& bad :
       {std::string(), std::string(129, 'r'), std::string("has space")}) {
    const std::string id =
        RequestIdFrom(Metadata().Add("x-request-id", bad).Get());
    EXPECT_NE(id, bad);
    EXPECT_EQ(id.size(), 32u) << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  }
  EXPECT_NE(RequestIdFrom(Metadata().Get()), RequestIdFrom(Metadata().Get()));
}

}  // namespace
}  // namespace clink_gateway::server
