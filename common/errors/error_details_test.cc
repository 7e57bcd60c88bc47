#include "common/errors/error_details.h"

#include "gtest/gtest.h"

namespace clink_gateway::errors {
namespace {

TEST(IsValidReasonTest, AcceptsUpperSnakeCaseOnly) {
  EXPECT_TRUE(IsValidReason("UPSTREAM_TIMEOUT"));
  EXPECT_TRUE(IsValidReason("HTTP_503"));
  EXPECT_FALSE(IsValidReason("404"));  // Clink's code: metadata, not reason.
  EXPECT_FALSE(IsValidReason("upstream_timeout"));
  EXPECT_FALSE(IsValidReason("UPSTREAM-TIMEOUT"));
  EXPECT_FALSE(IsValidReason("TRAILING_"));
  EXPECT_FALSE(IsValidReason("A"));
  EXPECT_FALSE(IsValidReason(std::string(64, 'A')));
  EXPECT_TRUE(IsValidReason(std::string(63, 'A')));
}

TEST(AttachErrorInfoTest, CarriesReasonDomainOutcomeAndMetadata) {
  absl::Status status = absl::UnavailableError("x");
  AttachErrorInfo(status, kGatewayDomain, "UPSTREAM_UNREACHABLE",
                  Outcome::kNotSent, {{"endpoint", "POST /payment"}});
  const auto info = GetErrorInfo(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "UPSTREAM_UNREACHABLE");
  EXPECT_EQ(info->domain(), kGatewayDomain);
  EXPECT_EQ(info->metadata().at("outcome"), "not_sent");
  EXPECT_EQ(info->metadata().at("endpoint"), "POST /payment");
}

TEST(AttachErrorInfoTest, NeverPassesOnAMalformedReason) {
  absl::Status status = absl::InternalError("x");
  AttachErrorInfo(status, kClinkDomain, "80102221", Outcome::kRejected);
  EXPECT_EQ(GetErrorInfo(status)->reason(), "INVALID_REASON");
}

TEST(InvalidArgumentWithViolationsTest, CarriesBadRequestAndErrorInfo) {
  const absl::Status status = InvalidArgumentWithViolations(
      {{"amount", "must be a decimal"}, {"currency", "is required"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "invalid request: amount: must be a decimal; currency: is "
            "required");
  const auto bad = GetBadRequest(status);
  ASSERT_TRUE(bad.has_value());
  ASSERT_EQ(bad->field_violations_size(), 2);
  EXPECT_EQ(bad->field_violations(1).field(), "currency");
  const auto info = GetErrorInfo(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), kInvalidRequestReason);
  EXPECT_EQ(info->domain(), kGatewayDomain);
  EXPECT_EQ(info->metadata().at("outcome"), "not_sent");
}

TEST(InvalidArgumentWithViolationsTest, TakesTheProducersReason) {
  const absl::Status status = InvalidArgumentWithViolations(
      {{"x-clink-merchant", "unknown"}}, "INVALID_METADATA");
  EXPECT_EQ(GetErrorInfo(status)->reason(), "INVALID_METADATA");
}

TEST(AttachRetryInfoTest, KeepsMilliseconds) {
  absl::Status status = absl::ResourceExhaustedError("x");
  AttachRetryInfo(status, absl::Milliseconds(1500));
  const auto retry = GetRetryInfo(status);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->retry_delay().seconds(), 1);
  EXPECT_EQ(retry->retry_delay().nanos(), 500000000);
}

}  // namespace
}  // namespace clink_gateway::errors
