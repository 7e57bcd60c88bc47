#include "adapters/idempotency/order_event_hint.h"

#include <string>

#include "gtest/gtest.h"

namespace clink_gateway::idempotency {
namespace {

TEST(OrderEventHintTest, ReadsDataObjectAndLegacyData) {
  for (const char* body :
       {R"({"id":"evt_1","type":"order.succeeded","created":1700000000000,
            "data":{"object":{"orderId":"ord_1","merchantReferenceId":"cart-42",
                              "amountTotal":19.99}}})",
        R"({"id":"evt_1","type":"order.succeeded","created":"2026-01-01T00:00:00Z",
            "data":{"orderId":"ord_1","merchantReferenceId":"cart-42"}})"}) {
    std::optional<OrderEventHint> hint =
        ParseOrderEventHint("order.succeeded", body);
    ASSERT_TRUE(hint.has_value()) << body;
    EXPECT_EQ(hint->order_id, "ord_1");
    EXPECT_EQ(hint->merchant_reference_id, "cart-42");
  }
}

TEST(OrderEventHintTest, IgnoresEverythingElse) {
  const std::string good =
      R"({"data":{"object":{"orderId":"ord_1","merchantReferenceId":"r"}}})";
  EXPECT_TRUE(ParseOrderEventHint("order.failed", good).has_value());
  // Not an order event.
  EXPECT_FALSE(ParseOrderEventHint("refund.succeeded", good).has_value());
  EXPECT_FALSE(ParseOrderEventHint("", good).has_value());
  for (const std::string body : {
           std::string(""),
           std::string("not json"),
           std::string(R"([1,2])"),
           std::string(R"({"data":"x"})"),
           std::string(R"({"data":{"object":{"orderId":"ord_1"}}})"),
           std::string(R"({"data":{"object":{"merchantReferenceId":"r"}}})"),
           std::string(R"({"data":{"object":{"orderId":null,"merchantReferenceId":"r"}}})"),
           std::string(R"({"data":{"object":{"orderId":["o"],"merchantReferenceId":"r"}}})"),
           std::string(R"({"data":{"object":{"orderId":"","merchantReferenceId":"r"}}})"),
           std::string(R"({"data":{"object":{"orderId":"ord_1","merchantReferenceId":"r"}})"),
           R"({"data":{"object":{"orderId":")" + std::string(256, 'a') +
               R"(","merchantReferenceId":"r"}}})",
       }) {
    EXPECT_FALSE(ParseOrderEventHint("order.succeeded", body).has_value())
        << body;
  }
}

TEST(OrderEventHintTest, NumbersAreReadAsTheirDigits) {
  // Never through a double; only a hint (the order is then read from Clink).
  std::optional<OrderEventHint> hint = ParseOrderEventHint(
      "order.succeeded",
      R"({"data":{"orderId":12345678901234567890,"merchantReferenceId":"r"}})");
  ASSERT_TRUE(hint.has_value());
  EXPECT_EQ(hint->order_id, "12345678901234567890");
}

TEST(OrderEventHintTest, DeepNestingAndOversizedBodiesAreRefusedSafely) {
  // Deeper than any recursive parser's stack would survive.
  std::string deep(kMaxOrderEventBytes / 2, '[');
  EXPECT_FALSE(ParseOrderEventHint("order.succeeded", deep).has_value());
  const std::string deep_closed = R"({"data":{"object":{"orderId":"o","merchantReferenceId":"r","x":)" +
                                  std::string(200000, '[') +
                                  std::string(200000, ']') + "}}}";
  EXPECT_TRUE(
      ParseOrderEventHint("order.succeeded", deep_closed).has_value());
  std::string big = R"({"data":{"object":{"orderId":"o","merchantReferenceId":"r","pad":")" +
                    std::string(kMaxOrderEventBytes, 'x') + R"("}}})";
  EXPECT_FALSE(ParseOrderEventHint("order.succeeded", big).has_value());
}

}  // namespace
}  // namespace clink_gateway::idempotency
