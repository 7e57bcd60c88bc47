#include "server/status_util.h"

#include <string>

#include "common/errors/error_details.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

TEST(StatusUtilTest, OkIsOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(StatusUtilTest, KeepsCodeAndPacksPayloadsAsRichDetails) {
  absl::Status status =
      errors::InvalidArgumentWithViolations({{"original_amount", "bad"}});

  const grpc::Status out = ToGrpcStatus(status);
  EXPECT_EQ(out.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(out.error_message(), std::string(status.message()));
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(out.error_details()));
  EXPECT_EQ(details.code(), 3);
  ASSERT_EQ(details.details_size(), 2);
  bool saw_bad_request = false, saw_error_info = false;
  for (const auto& any : details.details()) {
    if (any.type_url() == errors::kBadRequestTypeUrl) {
      google::rpc::BadRequest bad;
      ASSERT_TRUE(bad.ParseFromString(any.value()));
      EXPECT_EQ(bad.field_violations(0).field(), "original_amount");
      saw_bad_request = true;
    }
    if (any.type_url() == errors::kErrorInfoTypeUrl) {
      google::rpc::ErrorInfo got;
      ASSERT_TRUE(got.ParseFromString(any.value()));
      EXPECT_EQ(got.reason(), "INVALID_REQUEST");
      EXPECT_EQ(got.metadata().at("outcome"), "not_sent");
      saw_error_info = true;
    }
  }
  EXPECT_TRUE(saw_bad_request && saw_error_info);
}

TEST(StatusUtilTest, AnErrorWithoutErrorInfoGetsOneWithOutcomeUnknown) {
  const grpc::Status out = ToGrpcStatus(absl::InternalError("bug"));
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(out.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  ASSERT_EQ(details.details(0).type_url(), errors::kErrorInfoTypeUrl);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(info.ParseFromString(details.details(0).value()));
  EXPECT_EQ(info.reason(), "INTERNAL");
  EXPECT_EQ(info.domain(), errors::kGatewayDomain);
  EXPECT_EQ(info.metadata().at("outcome"), "unknown");
}

TEST(StatusUtilTest, CapsAMultiByteMessageOnACharacterBoundary) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "\xe8\xae\xa2";  // 1200 bytes of "订".
  absl::Status status = absl::FailedPreconditionError(text);
  errors::AttachErrorInfo(status, errors::kClinkDomain, "DECLINED",
                          errors::Outcome::kRejected);
  const grpc::Status out = ToGrpcStatus(status);
  EXPECT_EQ(out.error_message().size(), 1023u);  // 341 whole characters.
  google::rpc::Status details;  // Still decodable: no half character inside.
  ASSERT_TRUE(details.ParseFromString(out.error_details()));
  EXPECT_EQ(details.details_size(), 1);
}

TEST(StatusUtilTest, CapsTheMessage) {
  const grpc::Status out =
      ToGrpcStatus(absl::InternalError(std::string(5000, 'x')));
  EXPECT_EQ(out.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(out.error_message().size(), 1024u);
}

}  // namespace
}  // namespace clink_gateway::server
