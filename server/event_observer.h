// What the EventService reports about event delivery, for the event metrics
// (server/metrics.h implements it: clink_gateway_event_*). Thread-safe, cheap
// and non-blocking, like RpcObserver; the defaults do nothing. `merchant` is
// a configured merchant name and `subscription` a validated subscription name
// (bounded by the store's subscription cap per merchant).
#ifndef CLINK_GATEWAY_SERVER_EVENT_OBSERVER_H_
#define CLINK_GATEWAY_SERVER_EVENT_OBSERVER_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace clink_gateway::server {

class EventObserver {
 public:
  virtual ~EventObserver() = default;

  // A StreamEvents stream of the subscription started delivering (after its
  // subscription was ensured), and later ended (once per opened stream).
  virtual void OnStreamOpened(absl::string_view merchant,
                              absl::string_view subscription) {}
  virtual void OnStreamClosed(absl::string_view merchant,
                              absl::string_view subscription) {}
  // One event was handed to a stream; `delivery_attempt` 1 is a first
  // delivery, more a redelivery.
  virtual void OnDelivered(absl::string_view merchant,
                           absl::string_view subscription,
                           int32_t delivery_attempt) {}
  // AcknowledgeEvents acknowledged `count` events now.
  virtual void OnAcknowledged(absl::string_view merchant,
                              absl::string_view subscription, int count) {}
  // The age of the subscription's oldest unacknowledged event (zero: none),
  // refreshed periodically while the subscription has open streams.
  virtual void OnOldestUnacknowledgedAge(absl::string_view merchant,
                                         absl::string_view subscription,
                                         absl::Duration age) {}
  // An EventStore call failed (not NOT_FOUND, FAILED_PRECONDITION or
  // INVALID_ARGUMENT answers); `operation` is the method: "claim",
  // "acknowledge", "ensure_subscription", "oldest_unacknowledged", "get",
  // "list".
  virtual void OnStoreError(absl::string_view operation) {}
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_EVENT_OBSERVER_H_
