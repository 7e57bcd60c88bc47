// What the outcome reconciler reads from a stored Clink webhook event: only
// whether it is about an order, and which one (its id and the merchant's
// reference). The order itself is then read from Clink (GetOrder), never
// taken from the event body.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_ORDER_EVENT_HINT_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_ORDER_EVENT_HINT_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace clink_gateway::idempotency {

// Bodies longer than this are not read (the webhook listener's body cap,
// contract.md: 1 MiB).
inline constexpr size_t kMaxOrderEventBytes = 1048576;
// Ids and references longer than this are not taken (Clink's are far
// shorter; the gateway's own fields are capped at 255).
inline constexpr size_t kMaxOrderEventIdBytes = 255;

struct OrderEventHint {
  // Clink's `orderId` of the resource (1-255 bytes).
  std::string order_id;
  // Clink's `merchantReferenceId` of the resource (1-255 bytes).
  std::string merchant_reference_id;
};

// Reads a webhook body of Clink's envelope (§13.2 of the upstream notes:
// `{"id", "type", "created", "data": {"object": {...}}}`, or the legacy form
// with the resource directly under `data`). Returns the hint when `type`
// starts with "order." and the resource has a non-empty string `orderId` and
// `merchantReferenceId` (each at most kMaxOrderEventIdBytes); nullopt for
// anything else: not JSON, too large, another event type, missing or
// non-string fields (a JSON number is read as its digits, never through a
// double: it is only a hint). Bounded: an iterative parse (no recursion per nesting
// level) of at most kMaxOrderEventBytes; never throws or aborts.
std::optional<OrderEventHint> ParseOrderEventHint(absl::string_view type,
                                                  absl::string_view body);

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_ORDER_EVENT_HINT_H_
