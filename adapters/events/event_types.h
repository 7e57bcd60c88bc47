// The catalog of Clink's webhook event names (clink-api.md §13.1): one list,
// used to validate the event types callers subscribe to and to bound the
// `type` label of the event metrics.
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_TYPES_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_TYPES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace clink_gateway::events {

// Every event name of Clink's merchant webhook endpoint enum (§13.1, 44
// names), in the documented order, e.g. "order.succeeded",
// "subscription.updated.renewed", "dispute.closed", "customer.verify".
const std::vector<std::string>& KnownEventTypes();

// Whether `type` is one of KnownEventTypes() (exact, case-sensitive).
bool IsKnownEventType(absl::string_view type);

// The metric label for an event type: the name itself when known, else
// "other" (a sender controls `type`: the label set must stay bounded).
absl::string_view EventTypeLabel(absl::string_view type);

}  // namespace clink_gateway::events

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_TYPES_H_
