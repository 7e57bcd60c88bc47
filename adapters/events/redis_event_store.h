// An EventStore in Redis Streams, shared by every gateway replica: each event
// is stored once across the fleet, and each subscription's events are handed
// to one consumer at a time, whichever replica it is connected to.
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_REDIS_EVENT_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_REDIS_EVENT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "adapters/events/event_store_util.h"
#include "common/clock.h"
#include "common/sync.h"

namespace clink_gateway::events {

namespace internal {
class RedisPool;
}  // namespace internal

// Layout (P = key_prefix, M = "<merchant length>:<merchant>"):
//   P M:stream          one stream per merchant; an entry per event, with
//                       fields i (event id), t (type), c (created, Unix µs, ""
//                       when absent), r (received, Unix µs), b (body);
//   P M:dedup:<id>      the event's stream id, PX max(dedup_window,
//                       retention): Append's duplicate check, and how Get and
//                       Acknowledge find an event;
//   P M:sub:<name>      hash: types (the canonical set), start (Unix µs);
//                       beside it the stream's consumer group <name>;
//   P M:subs            set of the merchant's subscription names (the cap);
//   P merchants         set of merchants with a stream (for Prune).
// Append is one Lua script: when the dedup key is absent it XADDs the entry
// (trimming the stream to `retention` by Redis time, XADD MINID ~) and SETs
// the dedup key, atomically; a duplicate writes nothing. EnsureSubscription
// is one script (hash, set and XGROUP CREATE ... MKSTREAM from start_time
// minus start_time_slack: the stream ids are Redis time, the start time the
// gateway's, so entries just before are read and those received before
// start_time skipped). Claim is one script: XAUTOCLAIM (min-idle = this
// call's ack_deadline) for expired leases, with each one's delivery count from
// XPENDING, then XREADGROUP ... > for new ones; events of other types or
// received before start_time are XACKed and skipped. Acknowledge is one
// script (dedup keys -> stream ids -> XACK). OldestUnacknowledged reads
// XPENDING's first entry and the first entry after the group's
// last-delivered-id. List reads XREVRANGE, filtering in the store (at most
// list_scan_limit entries a call; a page may then be short). Prune is XTRIM
// MINID per merchant stream, by stream id (Redis time of the Append).
//
// Leases are timed by Redis (idle time of pending entries), so the replicas'
// clocks do not matter for them. Each consumer name becomes a consumer of the
// group; those idle with nothing pending are deleted (idle_consumer_expiry).
// Redis Cluster is not supported (a script
// touches keys of several slots).
//
// Threads: every call blocks its thread on Redis (never call it on a gRPC
// handler thread); calls from several threads use up to `max_connections`
// connections at once. Every socket read and write is limited to
// command_timeout and connecting to connect_timeout; a call that fails on the
// connection answers kUnavailable (nothing is resent: an Append whose reply
// was lost may have been stored, and the sender's retry is then a
// duplicate). After a failed connection attempt, calls fail at once with
// kUnavailable for reconnect_backoff.
class RedisEventStore final : public EventStore {
 public:
  struct Options {
    // "host:port", "[ipv6]:port" or "unix:/path/to/redis.sock".
    std::string address;
    // Optional file holding the Redis password (AUTH); a trailing newline is
    // ignored. Read once by Create(); the password is never logged.
    std::string password_file;
    // Prefix of every key the store writes (a version, so a future layout
    // can live beside this one).
    std::string key_prefix = "clink-gateway:events:v1:";
    // How long events are kept (by the stream's Redis time).
    absl::Duration retention = absl::Hours(168);
    // How long a duplicate is recognised at least (from the first Append).
    absl::Duration dedup_window = absl::Hours(72);
    // How far before a new subscription's start_time its group starts
    // reading (see above): larger than the clock skew between the gateways
    // and Redis.
    absl::Duration start_time_slack = absl::Minutes(15);
    absl::Duration connect_timeout = absl::Milliseconds(500);
    // Limit for each socket read or write on a connection.
    absl::Duration command_timeout = absl::Milliseconds(500);
    absl::Duration reconnect_backoff = absl::Milliseconds(200);
    // Connections open at once at most (calls beyond wait for one, at most
    // command_timeout, then fail with kUnavailable).
    size_t max_connections = 4;
    size_t max_subscriptions_per_merchant =
        internal::kDefaultMaxSubscriptionsPerMerchant;
    // A subscription's consumer (one per stream ever opened) with nothing
    // pending is deleted from its group after this long idle (Claim looks at
    // most once a minute).
    absl::Duration idle_consumer_expiry = absl::Minutes(10);
    // Stream entries one List call reads at most.
    size_t list_scan_limit = 10000;
    // Time source for a receive_time left unset; nullptr means SystemClock().
    // Must outlive the store.
    const Clock* clock = nullptr;
    // Told of each newly stored event; may be null. Must outlive the store.
    EventListener* listener = nullptr;
  };

  // kInvalidArgument for a malformed address or a non-positive setting;
  // kNotFound / kInvalidArgument when password_file cannot be read or is
  // empty. Does not connect (the first call does).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RedisEventStore>> Create(
      Options options);

  ~RedisEventStore() override;

  RedisEventStore(const RedisEventStore&) = delete;
  RedisEventStore& operator=(const RedisEventStore&) = delete;

  absl::StatusOr<AppendResult> Append(const StoredEvent& event) override;
  absl::Status EnsureSubscription(const SubscriptionSpec& spec) override;
  absl::StatusOr<std::vector<Delivery>> Claim(
      absl::string_view merchant, absl::string_view subscription,
      absl::string_view consumer, int max_events,
      absl::Duration ack_deadline) override;
  absl::StatusOr<int> Acknowledge(
      absl::string_view merchant, absl::string_view subscription,
      const std::vector<std::string>& event_ids) override;
  absl::StatusOr<std::optional<absl::Time>> OldestUnacknowledged(
      absl::string_view merchant, absl::string_view subscription) override;
  absl::StatusOr<std::optional<StoredEvent>> Get(
      absl::string_view merchant, absl::string_view event_id) override;
  absl::StatusOr<ListPage> List(const ListQuery& query) override;
  absl::StatusOr<int64_t> Prune(absl::Time cutoff) override;

 private:
  // A subscription as stored (immutable once created).
  struct Subscription {
    std::vector<std::string> types;
    int64_t start_us = 0;
  };

  RedisEventStore(Options options, std::unique_ptr<internal::RedisPool> pool);

  std::string MerchantKey(absl::string_view merchant,
                          absl::string_view suffix) const;
  // kNotFound when it does not exist.
  absl::StatusOr<Subscription> FindSubscription(absl::string_view merchant,
                                                absl::string_view name);
  void ForgetSubscription(absl::string_view merchant, absl::string_view name);
  // `status` of a command on the subscription's group; kNotFound (and the
  // subscription forgotten) when Redis says the group does not exist.
  absl::Status GroupError(absl::Status status, absl::string_view merchant,
                          absl::string_view subscription);
  // At most once a minute (or idle_consumer_expiry) per subscription:
  // deletes its consumers with nothing pending, idle past
  // idle_consumer_expiry.
  void ForgetIdleConsumers(absl::string_view merchant,
                           absl::string_view subscription,
                           const std::string& stream);

  const Options options_;
  const Clock& clock_;
  std::unique_ptr<internal::RedisPool> pool_;
  Mutex mu_;
  // Subscriptions seen, by merchant + '\0' + name.
  absl::flat_hash_map<std::string, Subscription> subscriptions_
      ABSL_GUARDED_BY(mu_);
  // When each subscription's idle consumers are next looked for.
  absl::flat_hash_map<std::string, absl::Time> next_consumer_sweep_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::events

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_REDIS_EVENT_STORE_H_
