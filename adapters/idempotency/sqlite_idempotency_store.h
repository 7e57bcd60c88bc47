// An IdempotencyStore on local disk (SQLite), so that a crash, an OOM kill or
// a restart of the gateway never turns a client's retry into a second call to
// Clink. The gateway's default store (server/main.cc --state_dir).
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_SQLITE_IDEMPOTENCY_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_SQLITE_IDEMPOTENCY_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store.h"
#include "common/clock.h"

namespace clink_gateway::idempotency {

namespace internal {
class SqliteWorker;
}  // namespace internal

// Files in the state directory:
//   idempotency.sqlite3 (+ -wal, -shm)  the records, one row per
//                                       IdempotencyKey::Digest() (no caller
//                                       data), in WAL mode;
//   LOCK                                flock()ed for the store's lifetime.
//
// Durability: every change is committed with synchronous=FULL (the WAL is
// fsync()ed) before any callback learns of it. In particular Begin reports
// kClaimed only once the in-flight record is on disk, i.e. before the caller
// sends anything to Clink; Complete and Release report success only once the
// result (or the key's removal) is on disk.
//
// One process per state directory: Open() takes an exclusive lock on LOCK
// and fails (kFailedPrecondition) when another store, in this process or
// another, holds it; the kernel drops the lock when the process dies,
// however it dies. So every record still in flight at Open() belonged to a
// process that died mid-call: Open() settles each one as abandoned
// (AbandonedResult(): UNKNOWN, IDEMPOTENT_CALL_ABANDONED, outcome unknown),
// for the retention period, and it is never run again: the first attempt may
// have reached Clink.
//
// Lifetimes and bounds as MemoryIdempotencyStore: a claimed record is kept
// for max(retention, in_flight_lease) from the claim, a final one for
// `retention` from Complete(); a holder that neither completes nor releases
// within `in_flight_lease` is settled as abandoned; at most `max_keys`
// records (expired ones are deleted first), beyond which Begin fails
// kResourceExhausted rather than forget a record early. Times are stored as
// Unix microseconds of `clock`.
//
// Threads: no caller ever waits for the disk. Every call is queued for one
// store thread, which owns the database and runs queued calls in batches, one
// transaction (one fsync) per batch, then runs their callbacks, in order, on
// that thread. So every callback runs on the store thread, never inline (but
// for a call refused because the queue is full), and may call the store again
// (the new call is queued). A Begin that finds the
// key in flight waits in this process (no polling): it is answered when the
// holder completes (kCompleted) or releases (the earliest waiter claims it,
// after that claim is on disk), when the holder's lease expires, when
// `wait_deadline` passes or AbortWaits() is called (kInProgress), or at once
// with kInProgress when `max_waiters_per_key` or `max_waiters` Begins already
// wait. A hand-off never runs the next waiter's callback inside the releasing
// call: a chain of waiters that each release at once takes constant stack.
//
// Errors: when a batch's transaction fails (disk full, I/O error) it is
// rolled back and every call in it, and every waiter it would have answered,
// gets kUnavailable (a Complete or Release that failed leaves the key in
// flight: it is settled as abandoned when its lease ends, never re-run).
// More than `max_queued_calls` calls waiting for the store thread also fail
// with kUnavailable.
class SqliteIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    // Directory of the database and the lock file; created (mode 0700, with
    // missing parents) if it does not exist. Required.
    std::string state_dir;
    // How long a final result is replayed.
    absl::Duration retention = absl::Hours(24);
    // How long a claimed key may stay in flight before it is settled as
    // abandoned. Must exceed the longest call the gateway makes.
    absl::Duration in_flight_lease = absl::Minutes(2);
    // Records held at most (in flight and final).
    size_t max_keys = 100000;
    // Begin calls waiting on one in-flight key, and on all keys, at most;
    // more are answered kInProgress at once.
    size_t max_waiters_per_key = 100;
    size_t max_waiters = 10000;
    // Calls queued for the store thread at most.
    size_t max_queued_calls = 10000;
    // Calls committed in one transaction at most.
    size_t max_batch = 256;
    // Time source for leases, retention and wait deadlines; nullptr means
    // SystemClock(). Must outlive the store. Re-read at least every 200 ms
    // while something is timed, so a clock that jumps (a FakeClock) is
    // noticed within that.
    const Clock* clock = nullptr;
  };

  // Creates the directory if needed, takes its lock, opens (or creates) the
  // database and settles the records left in flight. kInvalidArgument for an
  // empty state_dir or non-positive settings; kFailedPrecondition when the
  // directory is locked by another store or the database was written by a
  // newer schema; kPermissionDenied / kUnavailable / kDataLoss for what the
  // file system or SQLite reports (the message names the path).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqliteIdempotencyStore>>
  Open(Options options);

  // Runs the calls already queued, answers every waiting Begin with
  // kUnavailable ("store shutting down"), joins the store thread, closes the
  // database and drops the lock. Records in flight stay in flight on disk
  // (the next Open() settles them as abandoned). No call may be in progress.
  ~SqliteIdempotencyStore() override;

  SqliteIdempotencyStore(const SqliteIdempotencyStore&) = delete;
  SqliteIdempotencyStore& operator=(const SqliteIdempotencyStore&) = delete;

  void Begin(const IdempotencyKey& key, absl::string_view request_hash,
             absl::Time wait_deadline, BeginCallback done) override;
  void Complete(const IdempotencyKey& key, absl::string_view lease_token,
                StoredResult result, DoneCallback done) override;
  void Release(const IdempotencyKey& key, absl::string_view lease_token,
               DoneCallback done) override;
  // Waiting Begins are answered on the store thread, promptly after this
  // returns.
  void SettleUnknown(const IdempotencyKey& key, absl::string_view request_hash,
                     const StoredResult& expected, StoredResult result,
                     DoneCallback done) override;
  void AbortWaits() override;

  // Records that Open() found in flight and settled as abandoned.
  int64_t abandoned_at_open() const { return abandoned_at_open_; }

 private:
  SqliteIdempotencyStore(std::unique_ptr<internal::SqliteWorker> worker,
                         int64_t abandoned_at_open);

  std::unique_ptr<internal::SqliteWorker> worker_;
  const int64_t abandoned_at_open_;
};

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_SQLITE_IDEMPOTENCY_STORE_H_
