#include "adapters/idempotency/idempotency_store.h"

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "common/errors/error_details.h"
#include "gmock/gmock.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace clink_gateway::idempotency {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

TEST(DigestTest, IsHexSha256AndStable) {
  const IdempotencyKey key{"caller-a", "pkg.Service/Method", "key-1", "m"};
  const std::string digest = key.Digest();
  EXPECT_THAT(digest, MatchesRegex("[0-9a-f]{64}"));
  EXPECT_EQ(digest, key.Digest());
  EXPECT_EQ(digest,
            (IdempotencyKey{"caller-a", "pkg.Service/Method", "key-1", "m"}
                 .Digest()));
}

TEST(DigestTest, KnownValueBeforeMerchantsIsKept) {
  // sha256(00..01 "a" 00..01 "b" 00..01 "c"): the three-part digest issue 3
  // stored in Redis; the single --api_key_dir merchant still produces it.
  for (const char* merchant : {"", "default"}) {
    EXPECT_EQ(
        (IdempotencyKey{"a", "b", "c", merchant}.Digest()),
        "bd735517dea8b04bba91d58ed956ea9ce3296d2f39b4a6e1103884815dd71d0d")
        << merchant;
  }
}

TEST(DigestTest, KnownValue) {
  // sha256(00..01 "a" 00..01 "b" 00..01 "c" 00..01 "d"), 8-byte big-endian
  // lengths; computed independently with Python's hashlib.
  EXPECT_EQ((IdempotencyKey{"a", "b", "c", "d"}.Digest()),
            "d576b8b53d6d1c38b59c0423b12c72bedf55396feef884636d6dfb373f09a757");
}

TEST(DigestTest, LengthPrefixPreventsBoundaryCollisions) {
  std::set<std::string> digests = {
      IdempotencyKey{"ab", "c", "d", ""}.Digest(),
      IdempotencyKey{"a", "bc", "d", ""}.Digest(),
      IdempotencyKey{"a", "b", "cd", ""}.Digest(),
      IdempotencyKey{"", "abc", "d", ""}.Digest(),
      IdempotencyKey{"abc", "", "d", ""}.Digest(),
      IdempotencyKey{"", "", "abcd", ""}.Digest(),
      IdempotencyKey{"", "", "abc", "d"}.Digest(),
      IdempotencyKey{"a", "b", "c", "acme"}.Digest(),
      IdempotencyKey{"a", "b", "c", "globex"}.Digest(),
  };
  EXPECT_EQ(digests.size(), 9u);
}

TEST(DigestTest, ContainsNoCallerData) {
  const IdempotencyKey key{"merchant-7", "pkg.S/CreatePayment", "order-12345",
                           "m"};
  const std::string digest = key.Digest();
  EXPECT_THAT(digest, Not(HasSubstr("merchant")));
  EXPECT_THAT(digest, Not(HasSubstr("12345")));
}

StoredResult RichError() {
  StoredResult result;
  result.status = absl::FailedPreconditionError("card declined: do_not_honor");
  google::rpc::ErrorInfo info;
  info.set_reason("CARD_DECLINED");
  info.set_domain("clinkbill.com");
  (*info.mutable_metadata())["code"] = "51";
  // Any payload round-trips (not only what errors::AttachErrorInfo builds).
  result.status.SetPayload(errors::kErrorInfoTypeUrl,
                           absl::Cord(info.SerializeAsString()));
  errors::AttachRetryInfo(result.status, absl::Seconds(3));
  // A payload with binary bytes, including NUL.
  result.status.SetPayload("type.example/raw",
                           absl::Cord(std::string("\0\x01\xff", 3)));
  return result;
}

TEST(StoredResultTest, ErrorWithPayloadsRoundTrips) {
  const StoredResult original = RichError();
  absl::StatusOr<StoredResult> parsed =
      ParseStoredResult(SerializeStoredResult(original));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->status, original.status);
  EXPECT_EQ(parsed->status.message(), original.status.message());
  ASSERT_TRUE(errors::GetErrorInfo(parsed->status).has_value());
  EXPECT_EQ(errors::GetErrorInfo(parsed->status)->reason(), "CARD_DECLINED");
  EXPECT_EQ(parsed->status.GetPayload("type.example/raw"),
            absl::Cord(std::string("\0\x01\xff", 3)));
  EXPECT_EQ(parsed->response, "");
}

TEST(StoredResultTest, OkWithResponseRoundTrips) {
  StoredResult original;
  original.response = std::string("\x0a\x03pay\x00\x10", 7);
  absl::StatusOr<StoredResult> parsed =
      ParseStoredResult(SerializeStoredResult(original));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->status.ok());
  EXPECT_EQ(parsed->response, original.response);
}

TEST(StoredResultTest, OkWithEmptyResponseRoundTrips) {
  absl::StatusOr<StoredResult> parsed =
      ParseStoredResult(SerializeStoredResult(StoredResult{}));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->status.ok());
  EXPECT_EQ(parsed->response, "");
}

TEST(StoredResultTest, PayloadNamedLikeTheResponseStillRoundTrips) {
  StoredResult original;
  original.status = absl::InternalError("x");
  original.status.SetPayload(kStoredResponseTypeUrl, absl::Cord("payload"));
  original.response = "response";
  absl::StatusOr<StoredResult> parsed =
      ParseStoredResult(SerializeStoredResult(original));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->status, original.status);
  EXPECT_EQ(parsed->response, "response");
}

TEST(StoredResultTest, IsAGoogleRpcStatus) {
  const StoredResult original = RichError();
  google::rpc::Status proto;
  ASSERT_TRUE(proto.ParseFromString(SerializeStoredResult(original)));
  EXPECT_EQ(proto.code(), 9);  // FAILED_PRECONDITION
  EXPECT_EQ(proto.message(), "card declined: do_not_honor");
  ASSERT_EQ(proto.details_size(), 4);
  EXPECT_EQ(proto.details(0).type_url(), "type.example/raw");
  EXPECT_EQ(proto.details(1).type_url(), errors::kErrorInfoTypeUrl);
  EXPECT_EQ(proto.details(2).type_url(), errors::kRetryInfoTypeUrl);
  EXPECT_EQ(proto.details(3).type_url(), kStoredResponseTypeUrl);
}

TEST(StoredResultTest, SerializationIsDeterministic) {
  EXPECT_EQ(SerializeStoredResult(RichError()),
            SerializeStoredResult(RichError()));
}

TEST(StoredResultTest, RejectsGarbage) {
  EXPECT_EQ(ParseStoredResult("\xff\xff\xff").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(StoredResultTest, RejectsStatusWithoutResponseDetail) {
  google::rpc::Status proto;
  proto.set_code(2);
  proto.set_message("x");
  EXPECT_EQ(ParseStoredResult(proto.SerializeAsString()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(StoredResultTest, RejectsOutOfRangeCode) {
  google::rpc::Status proto;
  proto.set_code(99);
  proto.add_details()->set_type_url(std::string(kStoredResponseTypeUrl));
  EXPECT_EQ(ParseStoredResult(proto.SerializeAsString()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(StoredResultTest, RejectsOkWithMessage) {
  google::rpc::Status proto;
  proto.set_code(0);
  proto.set_message("not ok?");
  proto.add_details()->set_type_url(std::string(kStoredResponseTypeUrl));
  EXPECT_EQ(ParseStoredResult(proto.SerializeAsString()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(AbandonedResultTest, IsUnknownWithErrorInfo) {
  const StoredResult result = AbandonedResult();
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("reconcile by merchant reference"));
  EXPECT_EQ(result.response, "");
  absl::optional<google::rpc::ErrorInfo> info =
      errors::GetErrorInfo(result.status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "IDEMPOTENT_CALL_ABANDONED");
  EXPECT_EQ(info->domain(), errors::kGatewayDomain);
  ASSERT_EQ(info->metadata().count("outcome"), 1u);
  EXPECT_EQ(info->metadata().at("outcome"), "unknown");
}

TEST(AbandonedResultTest, SurvivesSerialization) {
  absl::StatusOr<StoredResult> parsed =
      ParseStoredResult(SerializeStoredResult(AbandonedResult()));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->status, AbandonedResult().status);
}

TEST(LeaseTokenTest, IsRandomHex) {
  const std::string a = NewLeaseToken();
  const std::string b = NewLeaseToken();
  EXPECT_THAT(a, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace clink_gateway::idempotency
