#include "adapters/webhooks/webhook_payload.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::webhooks {
namespace {

using ::testing::HasSubstr;

TEST(WebhookPayloadTest, NewestFormMillisecondsAndDataObject) {
  absl::StatusOr<WebhookPayload> p = ParseWebhookPayload(
      R"({"id":"evt_1","type":"order.succeeded","object":"event",)"
      R"("created":1750062041000,"data":{"object":{"orderId":"ord_1"}}})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->id, "evt_1");
  EXPECT_EQ(p->type, "order.succeeded");
  EXPECT_EQ(p->create_time, absl::FromUnixMillis(1750062041000));
  EXPECT_TRUE(p->has_data);
  EXPECT_FALSE(p->legacy_data);
}

TEST(WebhookPayloadTest, LegacyFormIsoCreatedAndDataItself) {
  absl::StatusOr<WebhookPayload> p = ParseWebhookPayload(
      R"({"id":"event_2","type":"refund.succeeded",)"
      R"("created":"2023-11-07T05:31:56Z","data":{"refundId":"re_1"}})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->create_time, absl::FromUnixSeconds(1699335116));
  EXPECT_TRUE(p->has_data);
  EXPECT_TRUE(p->legacy_data);
}

TEST(WebhookPayloadTest, OptionalFieldsMayBeAbsentOrUnreadable) {
  for (const char* body :
       {R"({"id":"e","type":"x.y"})", R"({"id":"e","type":"x.y","created":-5})",
        R"({"id":"e","type":"x.y","created":"yesterday"})",
        R"({"id":"e","type":"x.y","created":1.5,"data":null})"}) {
    absl::StatusOr<WebhookPayload> p = ParseWebhookPayload(body);
    ASSERT_TRUE(p.ok()) << body << ": " << p.status();
    EXPECT_EQ(p->create_time, absl::InfinitePast()) << body;
    EXPECT_FALSE(p->has_data) << body;
  }
}

TEST(WebhookPayloadTest, MalformedEnvelopesNameTheField) {
  const std::string long_id(256, 'a');
  struct Case {
    std::string body;
    std::string field;
  } cases[] = {
      {"", "body"},
      {"not json", "body"},
      {"[]", "body"},
      {R"("evt")", "body"},
      {R"({"id":"evt_1","type":"a"} trailing)", "body"},
      {"{\"id\":\"\xff\",\"type\":\"a\"}", "body"},  // Invalid UTF-8.
      {R"({"type":"a"})", "id"},
      {R"({"id":"","type":"a"})", "id"},
      {R"({"id":7,"type":"a"})", "id"},
      {absl::StrCat(R"({"type":"a","id":")", long_id, "\"}"), "id"},
      {R"({"id":"evt\n1","type":"a"})", "id"},
      {"{\"id\":\"\xc3\xa9\",\"type\":\"a\"}", "id"},  // Not ASCII.
      {R"({"id":"evt_1"})", "type"},
      {R"({"id":"evt_1","type":null})", "type"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<WebhookPayload> p = ParseWebhookPayload(c.body);
    ASSERT_FALSE(p.ok()) << c.body;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(std::string(p.status().message()),
                ::testing::StartsWith(c.field + ":"))
        << c.body;
  }
}

TEST(WebhookPayloadTest, DepthIsBounded) {
  auto nested = [](int depth) {
    return absl::StrCat(R"({"id":"e","type":"t","data":)",
                        std::string(depth - 1, '['), "1",
                        std::string(depth - 1, ']'), "}");
  };
  EXPECT_TRUE(ParseWebhookPayload(nested(kMaxWebhookJsonDepth)).ok());
  absl::StatusOr<WebhookPayload> deep =
      ParseWebhookPayload(nested(kMaxWebhookJsonDepth + 1));
  ASSERT_FALSE(deep.ok());
  EXPECT_THAT(std::string(deep.status().message()), HasSubstr("deeper"));
  // Far deeper than any stack would take if parsing recursed.
  EXPECT_FALSE(ParseWebhookPayload(std::string(1000000, '[')).ok());
}

TEST(WebhookPayloadTest, SizeIsBounded) {
  const std::string head = R"({"id":"e","type":"t","pad":")";
  std::string body = head + std::string(kMaxWebhookBodyBytes - head.size() - 2,
                                        'x') + "\"}";
  ASSERT_EQ(body.size(), kMaxWebhookBodyBytes);
  EXPECT_TRUE(ParseWebhookPayload(body).ok());
  body.insert(head.size(), "x");
  EXPECT_FALSE(ParseWebhookPayload(body).ok());
}

}  // namespace
}  // namespace clink_gateway::webhooks
