// Makes the gateway's EventStore from its flags (server/main.cc): Redis
// Streams when a Redis address is given (--event_redis, or the idempotency
// store's Redis), else SQLite at {--state_dir}/events.sqlite.
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_FACTORY_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "common/clock.h"

namespace clink_gateway::events {

// The shortest dedup window accepted: longer than Clink's retry horizon
// (about a day) with margin.
inline constexpr absl::Duration kMinDedupWindow = absl::Hours(72);

struct EventStoreConfig {
  // Redis address ("host:port", "[ipv6]:port", "unix:/path"); empty: SQLite.
  std::string redis_address;
  // Optional file holding the Redis password.
  std::string redis_password_file;
  // The state directory (SQLite only): the store is its events.sqlite.
  std::string state_dir;
  // --event_retention: how long events are kept.
  absl::Duration retention = absl::Hours(168);
  // --event_dedup_window: how long a duplicate is recognised; at least
  // kMinDedupWindow.
  absl::Duration dedup_window = absl::Hours(72);
  // Told of each newly stored event; may be null. Must outlive the store.
  EventListener* listener = nullptr;
  // nullptr: SystemClock(). Must outlive the store.
  const Clock* clock = nullptr;
};

// kInvalidArgument (naming the flag) for a dedup window below
// kMinDedupWindow, a non-positive retention, or neither a Redis address nor
// a state directory; otherwise what SqliteEventStore::Open or
// RedisEventStore::Create answers. A Redis store does not connect here (its
// first call does); a SQLite store opens (and creates) its file here.
absl::StatusOr<std::unique_ptr<EventStore>> MakeEventStore(
    const EventStoreConfig& config);

}  // namespace clink_gateway::events

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_FACTORY_H_
