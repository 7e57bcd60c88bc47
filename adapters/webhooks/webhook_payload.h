// The envelope of a Clink webhook event (clink-api.md §13.2), read from the
// raw delivery body after its signature was verified:
//   {"id": "evt_…", "type": "order.succeeded", "object": "event",
//    "created": 1750062041000 | "2023-11-07T05:31:56Z",
//    "data": {"object": {…resource…}}  (newest docs)  or  {…resource…} (legacy)}
// Hostile input is bounded: the body at kMaxWebhookBodyBytes, JSON nesting at
// kMaxWebhookJsonDepth (checked while parsing, before a DOM is built), strict
// UTF-8. The typed reading of the resource is the event service's; this reads
// only what the listener needs to deduplicate and store.
#ifndef CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_PAYLOAD_H_
#define CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_PAYLOAD_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace clink_gateway::webhooks {

// The largest webhook body accepted (1 MiB; larger deliveries get 413).
inline constexpr size_t kMaxWebhookBodyBytes = 1048576;
// The deepest nesting of arrays and objects accepted (the envelope is depth
// 1, data 2, data.object 3; Clink's resources add a few levels).
inline constexpr int kMaxWebhookJsonDepth = 32;
// Event ids and types: 1-255 characters.
inline constexpr size_t kMaxEventIdLength = 255;

struct WebhookPayload {
  // `id`: 1-255 printable ASCII (0x20-0x7E).
  std::string id;
  // `type`: 1-255 printable ASCII; any name, known (§13.1,
  // events::IsKnownEventType) or not.
  std::string type;
  // `created`: int64 Unix milliseconds or an RFC 3339 string. InfinitePast
  // when absent, or of another type or unparsable (it is informational:
  // such an event is still stored).
  absl::Time create_time = absl::InfinitePast();
  // Whether the event has a resource (`data.object`, or the legacy `data`).
  // The resource itself is not re-serialized here (a DOM round trip would put
  // numbers through binary floating point): readers take it from the stored
  // raw body (server/event_payload.cc, EventService's raw_json).
  bool has_data = false;
  // True when the resource is in the legacy form (`data` without `object`).
  bool legacy_data = false;
};

// Parses `body`. INVALID_ARGUMENT (the listener's 400) for a body over the
// cap, invalid JSON or UTF-8, nesting deeper than the cap, a top level that is
// not an object, or a missing or invalid `id` or `type`; the message names
// the field, never its value.
absl::StatusOr<WebhookPayload> ParseWebhookPayload(absl::string_view body);

}  // namespace clink_gateway::webhooks

#endif  // CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_PAYLOAD_H_
