// Where the gateway keeps the Clink webhook events it accepted, and the
// subscriptions (consumer groups) that deliver them to internal services.
//
// An event is appended once, durably, before the webhook listener answers 200:
// a second Append of the same (merchant, event id) within the dedup window
// (at least 72 hours, longer than Clink's retry horizon of about a day) is a
// duplicate and stores nothing. A subscription is a named cursor over one
// merchant's events shared by every consumer (stream) that names it, on any
// replica: Claim hands each event to one consumer with a lease (the ack
// deadline); an event whose lease expires unacknowledged is claimable again
// with delivery_attempt + 1. Acknowledge ends an event's deliveries for that
// subscription.
//
// Implementations: SqliteEventStore (the state directory; one replica) and
// RedisEventStore (Redis Streams: the dedup key and the stream entry written
// atomically, XREADGROUP/XACK/XAUTOCLAIM; shared by replicas). Both pass the
// conformance suite (event_store_conformance.h).
//
// Threading: every method is blocking (it may wait on disk or on Redis) and
// safe to call from any thread. Never call it on a gRPC handler thread; the
// webhook listener's worker threads and the event service's dispatcher threads
// are where it runs. A store that cannot be reached answers kUnavailable.
// Input outside the stores' bounds (adapters/events/event_store_util.h: event
// id 1-255 printable ASCII, type <= 255 bytes, body <= 1 MiB, page_size
// 1-100, ...) is refused with kInvalidArgument naming the field
// (errors::InvalidArgumentWithViolations), before anything is written.
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace clink_gateway::events {

// One event as the webhook listener accepted it.
struct StoredEvent {
  // The gateway's merchant name ("default" for the default merchant).
  std::string merchant;
  // Clink's event id (`id`): 1-255 printable ASCII, unique per merchant.
  std::string event_id;
  // Clink's event type (`type`), e.g. "order.succeeded"; any string, known or not.
  std::string type;
  // Clink's `created` (ms or ISO-8601 in the payload), absl::InfinitePast() if absent.
  absl::Time create_time = absl::InfinitePast();
  // When the gateway stored it (its own clock).
  absl::Time receive_time = absl::InfinitePast();
  // The whole webhook body exactly as received (the signed bytes).
  std::string body;
};

// An event handed to one consumer of a subscription.
struct Delivery {
  StoredEvent event;
  // 1 on the first delivery to this subscription, +1 on each redelivery.
  int32_t delivery_attempt = 1;
};

enum class AppendResult {
  kStored,     // New: stored now.
  kDuplicate,  // Already stored within the dedup window: nothing changed.
};

// A subscription's definition, fixed when it is created.
struct SubscriptionSpec {
  std::string merchant;
  // 1-63 of [a-z0-9-], starting with a letter (checked by the caller).
  std::string name;
  // Event types delivered; empty means all. Compared as a set.
  std::vector<std::string> event_types;
  // A new subscription delivers events received at or after this time.
  absl::Time start_time = absl::InfinitePast();
};

struct ListQuery {
  std::string merchant;
  std::vector<std::string> event_types;  // Empty: all.
  absl::Time start_time = absl::InfinitePast();  // receive_time >= start_time
  absl::Time end_time = absl::InfiniteFuture();  // receive_time < end_time
  int page_size = 20;                            // 1-100
  std::string page_token;  // Opaque, from ListPage::next_page_token.
};

struct ListPage {
  std::vector<StoredEvent> events;  // Newest first.
  std::string next_page_token;      // Empty on the last page.
};

// Told about each newly stored event (not duplicates), after it is durable,
// on the thread that appended it. Must not block.
class EventListener {
 public:
  virtual ~EventListener() = default;
  virtual void OnEventStored(const StoredEvent& event) = 0;
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  // Stores `event` durably unless (merchant, event_id) was stored within the
  // dedup window. kUnavailable when the store cannot be written (the listener
  // answers 503 so that Clink retries).
  virtual absl::StatusOr<AppendResult> Append(const StoredEvent& event) = 0;

  // Creates the subscription if it does not exist. kFailedPrecondition when
  // it exists with a different set of event types; kResourceExhausted past the
  // store's subscription cap per merchant.
  virtual absl::Status EnsureSubscription(const SubscriptionSpec& spec) = 0;

  // Hands `consumer` (a unique id per open stream) up to `max_events` events
  // of the subscription: first those whose lease expired unacknowledged, then
  // new ones. Each is leased to `consumer` for `ack_deadline`. Events of a
  // type the subscription does not take are acknowledged, never returned.
  // kNotFound when the subscription does not exist.
  virtual absl::StatusOr<std::vector<Delivery>> Claim(
      absl::string_view merchant, absl::string_view subscription,
      absl::string_view consumer, int max_events,
      absl::Duration ack_deadline) = 0;

  // Acknowledges events by id; unknown or already acknowledged ids are
  // ignored. Returns how many were acknowledged now. kNotFound when the
  // subscription does not exist.
  virtual absl::StatusOr<int> Acknowledge(
      absl::string_view merchant, absl::string_view subscription,
      const std::vector<std::string>& event_ids) = 0;

  // The receive time of the subscription's oldest event not yet acknowledged
  // (delivered or not), or nullopt when there is none.
  virtual absl::StatusOr<std::optional<absl::Time>> OldestUnacknowledged(
      absl::string_view merchant, absl::string_view subscription) = 0;

  // One stored event; nullopt when it is not (or no longer) kept.
  virtual absl::StatusOr<std::optional<StoredEvent>> Get(
      absl::string_view merchant, absl::string_view event_id) = 0;

  // A page of stored events. kInvalidArgument for a page token this store
  // did not issue.
  virtual absl::StatusOr<ListPage> List(const ListQuery& query) = 0;

  // Drops events received before `cutoff` (and their deliveries); dedup
  // entries are kept for the dedup window regardless. Returns how many events
  // were dropped.
  virtual absl::StatusOr<int64_t> Prune(absl::Time cutoff) = 0;
};

}  // namespace clink_gateway::events

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_H_
