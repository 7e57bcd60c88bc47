// An EventStore in one SQLite file in the gateway's state directory: the
// store of a single-replica gateway (server/main.cc --state_dir, when no
// --event_redis is set).
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_SQLITE_EVENT_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_SQLITE_EVENT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
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
class SqliteEventDb;
}  // namespace internal

// The file {state_dir}/events.sqlite (+ -wal, -shm), in WAL mode with
// synchronous=FULL: Append returns kStored only once the event is committed
// and the WAL fsync()ed. Tables:
//   events         one row per stored event (seq = arrival order, never
//                  reused), the body as received;
//   dedup          (merchant, event id) -> expiry: kept max(dedup_window,
//                  retention) from the Append, so a duplicate is recognised
//                  after its event was pruned;
//   subscriptions  (merchant, name) -> event types, start time and a cursor
//                  (the last seq considered for delivery);
//   leases         (subscription, event) -> consumer, lease expiry, attempts,
//                  acked: one row per event handed out.
// Times are Unix microseconds of `clock` (leases, retention, dedup) and of the
// caller (receive_time).
//
// Every call is one transaction (BEGIN IMMEDIATE), so the file may be shared
// by processes, though the gateway opens it from one. Calls are serialized
// by a mutex and block on the disk: never call them on a gRPC handler thread.
//
// Pruning: Append drops events older than `retention` (and expired dedup
// entries) at most once per `prune_interval`; Prune(cutoff) does so at once.
//
// Errors: kInvalidArgument for out-of-bounds input (see event_store_util.h),
// kUnavailable when SQLite fails (disk full, I/O error: nothing of the call
// happened), kResourceExhausted past max_subscriptions_per_merchant.
class SqliteEventStore final : public EventStore {
 public:
  struct Options {
    // Directory of events.sqlite; created (mode 0700, with missing parents)
    // if it does not exist. Required.
    std::string state_dir;
    // How long events are kept (from their receive_time).
    absl::Duration retention = absl::Hours(168);
    // How long a duplicate is recognised at least (from the first Append).
    absl::Duration dedup_window = absl::Hours(72);
    // How often Append drops expired events and dedup entries at most.
    absl::Duration prune_interval = absl::Minutes(1);
    size_t max_subscriptions_per_merchant =
        internal::kDefaultMaxSubscriptionsPerMerchant;
    // Time source for leases, dedup and retention; nullptr means
    // SystemClock(). Must outlive the store.
    const Clock* clock = nullptr;
    // Told of each newly stored event after it is durable; may be null. Must
    // outlive the store.
    EventListener* listener = nullptr;
  };

  // Creates the directory if needed and opens (or creates) the database.
  // kInvalidArgument for an empty state_dir or non-positive durations;
  // kFailedPrecondition for a database of a newer schema; kPermissionDenied /
  // kUnavailable / kDataLoss for what the file system or SQLite reports.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqliteEventStore>> Open(
      Options options);

  ~SqliteEventStore() override;

  SqliteEventStore(const SqliteEventStore&) = delete;
  SqliteEventStore& operator=(const SqliteEventStore&) = delete;

  // The database file.
  const std::string& path() const { return path_; }

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
  SqliteEventStore(Options options, std::string path,
                   std::unique_ptr<internal::SqliteEventDb> db);

  absl::StatusOr<int64_t> PruneLocked(absl::Time cutoff, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::string path_;
  const Clock& clock_;
  Mutex mu_;
  std::unique_ptr<internal::SqliteEventDb> db_ ABSL_GUARDED_BY(mu_);
  absl::Time next_prune_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace clink_gateway::events

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_SQLITE_EVENT_STORE_H_
