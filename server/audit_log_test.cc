// The audit trail: AuditLog's field rules and its file. audit_rpc_test.cc
// drives it through a gRPC server.
#include "server/audit_log.h"

#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/idempotency/idempotency_store.h"
#include "clink/gateway/v1/payment.pb.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (!line.empty()) lines.emplace_back(line);
  }
  return lines;
}

// The line's members (all strings), or an empty map if it is not a flat JSON
// object of strings.
std::map<std::string, std::string> Fields(const std::string& line) {
  rapidjson::Document doc;
  doc.Parse(line.c_str());
  std::map<std::string, std::string> fields;
  if (doc.HasParseError() || !doc.IsObject()) return fields;
  for (const auto& m : doc.GetObject()) {
    if (!m.value.IsString()) return {};
    fields[m.name.GetString()] = m.value.GetString();
  }
  return fields;
}

class AuditLogTest : public testing::Test {
 protected:
  void SetUp() override {
    auto codec =
        clink::RestCodec::CreateForServices(clink::GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
  }
  const clink::RestMethod& Method(const google::protobuf::Descriptor& request) {
    const clink::RestMethod* m = codec_->FindByRequestType(request);
    EXPECT_NE(m, nullptr);
    return *m;
  }
  std::unique_ptr<clink::RestCodec> codec_;
};

TEST_F(AuditLogTest, AWriteRecordsMoneyByFieldRuleAndDigestsTheKey) {
  v1::CreatePaymentRequest request;
  request.set_amount("19.99");
  request.set_currency("USD");
  request.set_customer_email("someone@example.com");
  clink::CallOptions options;
  options.caller = "checkout-web";
  options.merchant = "eu";
  options.request_id = "req-1";
  options.idempotency_key = "order-4711-someone@example.com";
  const clink::RestMethod& method =
      Method(*v1::CreatePaymentRequest::descriptor());
  AuditEntry entry = AuditLog::Start(method, request, options);
  EXPECT_TRUE(entry.write);
  EXPECT_EQ(entry.amount, "19.99");
  EXPECT_EQ(entry.amount_field, "amount");
  EXPECT_EQ(entry.currency, "USD");
  EXPECT_EQ(entry.caller, "checkout-web");
  EXPECT_FALSE(entry.caller_authenticated);
  idempotency::IdempotencyKey key{
      "checkout-web", "clink.gateway.v1.PaymentService.CreatePayment",
      options.idempotency_key, "eu"};
  EXPECT_EQ(entry.key_digest, key.Digest());
  EXPECT_EQ(entry.key_digest.find("order-4711"), std::string::npos);

  v1::CreatePaymentResponse response;
  response.set_order_id("ord_1");
  response.set_session_id("sess_9");
  AuditLog::Settle(method, &response, absl::OkStatus(),
                   errors::Outcome::kCommitted, false, entry);
  EXPECT_EQ(entry.code, "OK");
  EXPECT_EQ(entry.outcome, "committed");
  ASSERT_GE(entry.ids.size(), 2u);
  std::map<std::string, std::string> ids(entry.ids.begin(), entry.ids.end());
  EXPECT_EQ(ids["clink_order_id"], "ord_1");
  EXPECT_EQ(ids["clink_session_id"], "sess_9");
}

TEST_F(AuditLogTest, IdsComeFromThePayloadMessage) {
  // CreateRefund's payload is the `refund` field (RestRule.response_body).
  const clink::RestMethod& method =
      Method(*v1::CreateRefundRequest::descriptor());
  v1::CreateRefundRequest request;
  request.set_order_id("ord_1");
  request.set_refund_amount("5.00");
  AuditEntry entry = AuditLog::Start(method, request, clink::CallOptions());
  EXPECT_EQ(entry.amount, "5.00");
  EXPECT_EQ(entry.amount_field, "refund_amount");
  EXPECT_EQ(entry.currency, "");  // The order's: the request names none.
  EXPECT_EQ(entry.key_digest, "none");
  v1::CreateRefundResponse response;
  response.mutable_refund()->set_refund_id("rfd_1");
  response.mutable_refund()->set_order_id("ord_1");
  AuditLog::Settle(method, &response, absl::OkStatus(),
                   errors::Outcome::kCommitted, true, entry);
  std::map<std::string, std::string> ids(entry.ids.begin(), entry.ids.end());
  EXPECT_EQ(ids["clink_refund_id"], "rfd_1");
  EXPECT_EQ(ids["clink_order_id"], "ord_1");
  EXPECT_TRUE(entry.replayed);
}

TEST_F(AuditLogTest, ARefusalBeforeSendingIsNotSentWhateverTheCode) {
  const clink::RestMethod& method =
      Method(*v1::CreatePaymentRequest::descriptor());
  AuditEntry entry =
      AuditLog::Start(method, v1::CreatePaymentRequest(), clink::CallOptions());
  AuditLog::Settle(method, nullptr, absl::PermissionDeniedError("not you"),
                   errors::Outcome::kUnknown,
                   false, entry);
  EXPECT_EQ(entry.outcome, "unknown");  // The status alone says nothing.
  entry.refused_before_sending = true;
  AuditLog::Settle(method, nullptr, absl::PermissionDeniedError("not you"),
                   errors::Outcome::kUnknown,
                   false, entry);
  EXPECT_EQ(entry.code, "PERMISSION_DENIED");
  EXPECT_EQ(entry.outcome, "not_sent");
}

TEST_F(AuditLogTest, ReadsAreNotAudited) {
  const clink::RestMethod& method = Method(*v1::GetOrderRequest::descriptor());
  AuditEntry entry =
      AuditLog::Start(method, v1::GetOrderRequest(), clink::CallOptions());
  EXPECT_FALSE(entry.write);
}

TEST(AuditLogFileTest, AppendsAndReopensWhenTheFileIsReplaced) {
  const std::string path = TempPath("audit-rotate.log");
  unlink(path.c_str());
  auto log = AuditLog::OpenFile(path);
  ASSERT_TRUE(log.ok()) << log.status();
  AuditEntry entry;
  entry.write = true;
  entry.caller = "first";
  (*log)->Write(entry);
  ASSERT_EQ(rename(path.c_str(), (path + ".1").c_str()), 0);
  entry.caller = "second";
  (*log)->Write(entry);
  const std::vector<std::string> rotated = ReadLines(path + ".1");
  const std::vector<std::string> fresh = ReadLines(path);
  ASSERT_EQ(rotated.size(), 1u);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(Fields(rotated[0])["caller"], "first");
  EXPECT_EQ(Fields(fresh[0])["caller"], "second");
  EXPECT_EQ(Fields(fresh[0])["event"], "audit");
  EXPECT_EQ((*log)->failed_writes(), 0);
}

TEST(AuditLogFileTest, AFileThatCannotBeOpenedIsAnError) {
  const auto log = AuditLog::OpenFile("/nonexistent-dir/audit.log");
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AuditLogFileTest, LinesFromManyThreadsNeverInterleave) {
  const std::string path = TempPath("audit-threads.log");
  unlink(path.c_str());
  auto log = AuditLog::OpenFile(path);
  ASSERT_TRUE(log.ok()) << log.status();
  constexpr int kThreads = 4;
  constexpr int kLines = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&log, t] {
      AuditEntry entry;
      entry.write = true;
      entry.caller = "caller-" + std::to_string(t);
      entry.amount = std::string(300, '7');  // Long lines.
      for (int i = 0; i < kLines; ++i) (*log)->Write(entry);
    });
  }
  for (std::thread& t : threads) t.join();
  const std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  for (const std::string& line : lines) {
    EXPECT_EQ(Fields(line)["event"], "audit") << line;
  }
}

}  // namespace
}  // namespace clink_gateway::server
