// The EventService's request checks (events.proto comments): each returns OK
// or INVALID_ARGUMENT (ErrorInfo INVALID_REQUEST, a google.rpc.BadRequest
// naming every offending field, e.g. "event_types[2]"), and fills in what the
// store needs, defaults applied.
#ifndef CLINK_GATEWAY_SERVER_EVENT_VALIDATION_H_
#define CLINK_GATEWAY_SERVER_EVENT_VALIDATION_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "clink/gateway/v1/events.pb.h"

namespace clink_gateway::server {

// Limits from events.proto.
inline constexpr absl::Duration kDefaultAckDeadline = absl::Seconds(30);
inline constexpr absl::Duration kMinAckDeadline = absl::Seconds(10);
inline constexpr absl::Duration kMaxAckDeadline = absl::Seconds(600);
inline constexpr int kDefaultEventsPerResponse = 10;
inline constexpr int kMaxEventsPerResponse = 100;
inline constexpr int kDefaultListPageSize = 20;
inline constexpr int kMaxListPageSize = 100;
inline constexpr int kMaxAcknowledgeIds = 1000;
// More entries than event names exist (§13.1 has 44), repeats included.
inline constexpr int kMaxEventTypes = 100;
inline constexpr size_t kMaxPageTokenBytes = 1024;

// A StreamEvents request as the stream runs it.
struct StreamParams {
  events::SubscriptionSpec spec;  // merchant left as given.
  absl::Duration ack_deadline = kDefaultAckDeadline;
  int max_events = kDefaultEventsPerResponse;
};

// `subscription` (1-63 of [a-z0-9-], starting with a letter), `event_types`
// (known §13.1 names), `start_time` (a valid time, at most `retention` before
// `now`; unset: now), `ack_deadline` (10-600 s; unset: 30 s),
// `max_events_per_response` (1-100; 0: 10).
absl::Status ValidateStreamEvents(
    const ::clink::gateway::v1::StreamEventsRequest& request, absl::Time now,
    absl::Duration retention, StreamParams& params);
// `subscription`, `event_ids` (1-1000 ids of 1-255 printable ASCII).
absl::Status ValidateAcknowledgeEvents(
    const ::clink::gateway::v1::AcknowledgeEventsRequest& request);
// `event_types`, `start_time` < `end_time` (each a valid time when set),
// `page_size` (1-100; 0: 20), `page_token` (at most 1024 printable ASCII).
absl::Status ValidateListEvents(
    const ::clink::gateway::v1::ListEventsRequest& request,
    events::ListQuery& query);
// `event_id`: 1-255 printable ASCII.
absl::Status ValidateGetEvent(
    const ::clink::gateway::v1::GetEventRequest& request);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_EVENT_VALIDATION_H_
