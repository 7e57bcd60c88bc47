#include "adapters/events/event_types.h"

#include "absl/container/flat_hash_set.h"

namespace clink_gateway::events {

const std::vector<std::string>& KnownEventTypes() {
  static const std::vector<std::string>* const types =
      new std::vector<std::string>{
          "order.created",
          "order.succeeded",
          "order.failed",
          "refund.created",
          "refund.succeeded",
          "refund.failed",
          "subscription.created",
          "subscription.trialing",
          "subscription.activated",
          "subscription.incomplete_expired",
          "subscription.past_due",
          "subscription.cancelled",
          "invoice.open",
          "invoice.paid",
          "invoice.void",
          "order.next_action",
          "subscription.updated.plan_changed",
          "subscription.updated.plan_change_canceled",
          "subscription.updated.renewed",
          "subscription.updated.cancel_at_period_end_set",
          "subscription.updated.cancel_at_period_end_revoked",
          "session.complete",
          "session.expired",
          "dispute.created",
          "dispute.updated",
          "dispute.won",
          "dispute.lost",
          "dispute.closed",
          "customer.verify",
          "payment_method.added",
          "payment_method.default_change",
          "risk_rule.updated",
          "agent_order.succeeded",
          "agent_order.failed",
          "agent_refund.succeeded",
          "agent_refund.failed",
          "agent_refund.approved",
          "agent_refund.rejected",
          "payment_method.update",
          "purchase_instruction.created",
          "purchase_instruction.activated",
          "purchase_instruction.updated",
          "purchase_instruction.cancelled",
          "vic_device.binding_succeeded",
      };
  return *types;
}

bool IsKnownEventType(absl::string_view type) {
  static const absl::flat_hash_set<absl::string_view>* const known = [] {
    auto* set = new absl::flat_hash_set<absl::string_view>();
    for (const std::string& t : KnownEventTypes()) set->insert(t);
    return set;
  }();
  return known->contains(type);
}

absl::string_view EventTypeLabel(absl::string_view type) {
  return IsKnownEventType(type) ? type : absl::string_view("other");
}

}  // namespace clink_gateway::events
