#include "adapters/events/event_types.h"

#include "gtest/gtest.h"

namespace clink_gateway::events {
namespace {

TEST(EventTypesTest, KnownEventTypesAreTheEndpointEnum) {
  EXPECT_EQ(KnownEventTypes().size(), 44u);
  EXPECT_EQ(KnownEventTypes().front(), "order.created");
  EXPECT_EQ(KnownEventTypes().back(), "vic_device.binding_succeeded");
  EXPECT_TRUE(IsKnownEventType("order.succeeded"));
  EXPECT_TRUE(IsKnownEventType("payment_method.update"));
  EXPECT_FALSE(IsKnownEventType("payment_method.updated"));  // Wallet hub only.
  EXPECT_FALSE(IsKnownEventType("Order.Succeeded"));
  EXPECT_FALSE(IsKnownEventType(""));
}

TEST(EventTypesTest, LabelIsTheNameOrOther) {
  EXPECT_EQ(EventTypeLabel("dispute.closed"), "dispute.closed");
  EXPECT_EQ(EventTypeLabel("made.up"), "other");
  EXPECT_EQ(EventTypeLabel(""), "other");
}

}  // namespace
}  // namespace clink_gateway::events
