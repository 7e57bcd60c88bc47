// An IdempotencyStore for one gateway process: a bounded in-memory map.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_MEMORY_IDEMPOTENCY_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_MEMORY_IDEMPOTENCY_STORE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store.h"
#include "common/clock.h"

namespace clink_gateway::idempotency {

// Records live in memory, keyed by IdempotencyKey::Digest(), so a restart
// forgets them (use RedisIdempotencyStore for a fleet, or to survive
// restarts).
//
// Lifetimes: a claimed record is kept for max(retention, in_flight_lease)
// from the claim; a completed one for `retention` from Complete(). A holder
// that neither completes nor releases within `in_flight_lease` has vanished:
// the record becomes final with AbandonedResult() (and keeps its expiry).
//
// Bounded: at most `max_keys` records. Expired records are dropped (on every
// call, through an index ordered by expiry); when every slot holds a live
// record, Begin fails kResourceExhausted rather than forget a record early.
//
// Threads: Begin never blocks a thread while it waits for an in-flight key;
// its callback is kept and run when the holder completes or releases, when the
// holder's lease expires, when `wait_deadline` passes, or when AbortWaits()
// is called. One timer thread (owned by the store, joined by the destructor)
// handles expiring leases and deadlines. Callbacks run inline (immediate
// answers), on the thread of the Complete, Release or AbortWaits that settled
// the wait, or on the timer thread; never under the store's lock, so they may
// call the store again.
class MemoryIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    // How long a final result is replayed.
    absl::Duration retention = absl::Hours(24);
    // How long a claimed key may stay in flight before it is settled as
    // abandoned. Must exceed the longest call the gateway makes.
    absl::Duration in_flight_lease = absl::Minutes(2);
    // Records held at most (in flight and final).
    size_t max_keys = 100000;
    // Time source for leases, retention and wait deadlines; nullptr means
    // SystemClock(). Must outlive the store. The timer thread re-reads it at
    // least every 200 ms while it has something to time, so an injected clock
    // that jumps (a FakeClock in tests) is noticed within that.
    const Clock* clock = nullptr;
  };

  MemoryIdempotencyStore();
  explicit MemoryIdempotencyStore(Options options);
  // Runs every waiting Begin callback with kUnavailable ("store shutting
  // down") and joins the timer thread. No call may be in progress.
  ~MemoryIdempotencyStore() override;

  MemoryIdempotencyStore(const MemoryIdempotencyStore&) = delete;
  MemoryIdempotencyStore& operator=(const MemoryIdempotencyStore&) = delete;

  void Begin(const IdempotencyKey& key, absl::string_view request_hash,
             absl::Time wait_deadline, BeginCallback done) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void Complete(const IdempotencyKey& key, absl::string_view lease_token,
                StoredResult result, DoneCallback done) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void Release(const IdempotencyKey& key, absl::string_view lease_token,
               DoneCallback done) override ABSL_LOCKS_EXCLUDED(mu_);
  // Answers every waiting Begin with kInProgress on the calling thread
  // before it returns; later Begins never wait.
  void AbortWaits() override ABSL_LOCKS_EXCLUDED(mu_);

  // Records held now, expired ones not yet dropped included (tests, metrics).
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);
  // Begin calls waiting on an in-flight key (tests, metrics).
  size_t waiting() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    absl::Time deadline;
    BeginCallback done;
  };
  struct Record {
    std::string request_hash;
    bool final = false;
    // In flight only.
    std::string lease_token;
    absl::Time lease_expiry;
    // Final only.
    StoredResult result;
    // When the record is dropped.
    absl::Time expiry;
    // Begin calls waiting for this in-flight record, in arrival order (by
    // waiter id).
    std::map<uint64_t, Waiter> waiters;
  };
  // A callback to run once the lock is released.
  struct Ready {
    BeginCallback done;
    absl::StatusOr<BeginResult> result;
  };

  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  // Settles expired leases, answers waiters whose deadline passed, drops
  // expired records.
  void ProcessDueLocked(absl::Time now, std::vector<Ready>* ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes an in-flight record final and answers its waiters.
  void FinishLocked(const std::string& digest, Record& record,
                    StoredResult result, std::vector<Ready>* ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives an existing or new record to a new holder.
  std::string ClaimLocked(const std::string& digest, Record& record,
                          absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetExpiryLocked(const std::string& digest, Record& record,
                       absl::Time expiry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveWaiterDeadlinesLocked(const std::string& digest,
                                   const Record& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks that `lease_token` holds `digest`'s record (after settling due
  // leases); returns the record or nullptr with `*error` set.
  Record* FindHeldLocked(const std::string& digest,
                         absl::string_view lease_token, absl::Status* error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes the timer if `when` is earlier than what it waits for.
  void WakeTimerForLocked(absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static void RunReady(std::vector<Ready>& ready);

  const absl::Duration retention_;
  const absl::Duration lease_;
  const size_t max_keys_;
  const Clock& clock_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Record> records_ ABSL_GUARDED_BY(mu_);
  // (expiry, digest) of every record.
  std::set<std::pair<absl::Time, std::string>> expiry_index_
      ABSL_GUARDED_BY(mu_);
  // (lease expiry, digest) of every in-flight record.
  std::set<std::pair<absl::Time, std::string>> lease_index_
      ABSL_GUARDED_BY(mu_);
  // (deadline, waiter id, digest) of every waiter.
  std::set<std::tuple<absl::Time, uint64_t, std::string>> waiter_deadlines_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_waiter_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Set by AbortWaits(): Begin answers kInProgress instead of waiting.
  bool waits_aborted_ ABSL_GUARDED_BY(mu_) = false;
  // What the timer thread sleeps until (InfiniteFuture when idle).
  absl::Time timer_wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::CondVar timer_cv_;
  std::thread timer_;
};

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_MEMORY_IDEMPOTENCY_STORE_H_
