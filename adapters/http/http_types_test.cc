#include "adapters/http/http_types.h"

#include "gtest/gtest.h"

namespace clink_gateway::http {
namespace {

TEST(HttpTypesTest, MethodName) {
  EXPECT_EQ(MethodName(Method::kGet), "GET");
  EXPECT_EQ(MethodName(Method::kPost), "POST");
  EXPECT_EQ(MethodName(Method::kPut), "PUT");
  EXPECT_EQ(MethodName(Method::kDelete), "DELETE");
  EXPECT_EQ(MethodName(Method::kPatch), "PATCH");
}

TEST(HttpTypesTest, DeliveryName) {
  EXPECT_EQ(DeliveryName(Delivery::kNotSent), "not_sent");
  EXPECT_EQ(DeliveryName(Delivery::kUnknown), "unknown");
  EXPECT_EQ(DeliveryName(Delivery::kReceived), "received");
}

TEST(HttpTypesTest, FailureKindName) {
  EXPECT_EQ(FailureKindName(FailureKind::kNone), "none");
  EXPECT_EQ(FailureKindName(FailureKind::kInvalidRequest), "invalid_request");
  EXPECT_EQ(FailureKindName(FailureKind::kDeadline), "deadline");
  EXPECT_EQ(FailureKindName(FailureKind::kConnect), "connect");
  EXPECT_EQ(FailureKindName(FailureKind::kConnectionLost), "connection_lost");
  EXPECT_EQ(FailureKindName(FailureKind::kResponseTooLarge),
            "response_too_large");
  EXPECT_EQ(FailureKindName(FailureKind::kShutdown), "shutdown");
  EXPECT_EQ(FailureKindName(FailureKind::kOther), "other");
  EXPECT_EQ(FailureKindName(FailureKind::kEgressDenied), "egress_denied");
}

TEST(HttpTypesTest, HeaderReturnsFirstMatchCaseInsensitively) {
  HttpResponse response;
  response.headers = {{"content-type", "application/json"},
                      {"retry-after", "5"},
                      {"retry-after", "7"}};
  EXPECT_EQ(response.Header("retry-after"), "5");
  EXPECT_EQ(response.Header("Content-Type"), "application/json");
  EXPECT_EQ(response.Header("x-missing"), "");
}

}  // namespace
}  // namespace clink_gateway::http
