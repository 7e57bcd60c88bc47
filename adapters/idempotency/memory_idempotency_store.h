// An IdempotencyStore for one gateway process: a bounded in-memory map.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_MEMORY_IDEMPOTENCY_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_MEMORY_IDEMPOTENCY_STORE_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store.h"
#include "adapters/idempotency/key_waiters.h"
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
// Waiters: a Begin that finds its key in flight waits (never blocking a
// thread) in a KeyWaiters: at most `max_waiters_per_key` per key and
// `max_waiters` in all; beyond that it is answered kInProgress at once. A
// waiter is answered when the holder completes (kCompleted, on the completing
// thread), releases (the earliest waiter claims the key: kClaimed, on the
// waiters' thread, so a new holder that fails at once and releases again
// hands the key on in a loop, never a recursion), when the holder's lease
// expires (abandoned, on the timer thread), when `wait_deadline` passes
// (kInProgress, on the waiters' thread) or on AbortWaits() (kInProgress, on
// its thread). One timer thread (owned by the store, joined by the
// destructor) handles expiring leases and records. Callbacks never run under
// the store's lock, so they may call the store again.
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
    // Begins waiting for one in-flight key at most / for all keys at most;
    // beyond either, Begin answers kInProgress without waiting.
    size_t max_waiters_per_key = kDefaultMaxWaitersPerKey;
    size_t max_waiters = kDefaultMaxWaiters;
  };

  MemoryIdempotencyStore();
  explicit MemoryIdempotencyStore(Options options);
  // Runs every waiting Begin callback with kUnavailable ("store shutting
  // down") and joins the timer thread. No call may be in progress.
  ~MemoryIdempotencyStore() override;

  MemoryIdempotencyStore(const MemoryIdempotencyStore&) = delete;
  MemoryIdempotencyStore& operator=(const MemoryIdempotencyStore&) = delete;

  void Begin(const IdempotencyKey& key, absl::string_view request_hash,
             absl::Time wait_deadline, BeginCallback done) override;
  void Complete(const IdempotencyKey& key, absl::string_view lease_token,
                StoredResult result, DoneCallback done) override;
  void Release(const IdempotencyKey& key, absl::string_view lease_token,
               DoneCallback done) override;
  void SettleUnknown(const IdempotencyKey& key, absl::string_view request_hash,
                     const StoredResult& expected, StoredResult result,
                     DoneCallback done) override;
  // Answers every waiting Begin with kInProgress on the calling thread
  // before it returns; later Begins never wait.
  void AbortWaits() override;

  // Records held now, expired ones not yet dropped included (tests, metrics).
  size_t size() const;
  // Begin calls waiting on an in-flight key (tests, metrics).
  size_t waiting() const;
  // Begins refused by a waiter cap so far (tests, metrics).
  uint64_t waiters_refused() const;

 private:
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
  };
  // A callback to run once the lock is released.
  struct Ready {
    BeginCallback done;
    absl::StatusOr<BeginResult> result;
  };

  void TimerLoop();

  // Settles expired leases and drops expired records. mu_ held.
  void ProcessDueLocked(absl::Time now, std::vector<Ready>* ready);
  // Makes an in-flight record final and answers its waiters. mu_ held.
  void FinishLocked(const std::string& digest, Record& record,
                    StoredResult result, std::vector<Ready>* ready);
  // Gives an existing or new record to a new holder. mu_ held.
  std::string ClaimLocked(const std::string& digest, Record& record,
                          absl::Time now);
  void SetExpiryLocked(const std::string& digest, Record& record,
                       absl::Time expiry);
  // Checks that `lease_token` holds `digest`'s record; returns the record or
  // nullptr with `*error` set. mu_ held.
  Record* FindHeldLocked(const std::string& digest,
                         absl::string_view lease_token, absl::Status* error);
  // Wakes the timer if `when` is earlier than what it waits for. mu_ held.
  void WakeTimerForLocked(absl::Time when);

  static void RunReady(std::vector<Ready>& ready);

  const absl::Duration retention_;
  const absl::Duration lease_;
  const size_t max_keys_;
  const Clock& clock_;

  // Lock order: mu_, then waiters_' own lock. std::mutex, not absl::Mutex:
  // Debian's Abseil is not built for ThreadSanitizer.
  mutable std::mutex mu_;
  std::condition_variable timer_cv_;
  // Everything below up to waiters_: mu_.
  absl::flat_hash_map<std::string, Record> records_;
  // (expiry, digest) of every record.
  std::set<std::pair<absl::Time, std::string>> expiry_index_;
  // (lease expiry, digest) of every in-flight record.
  std::set<std::pair<absl::Time, std::string>> lease_index_;
  bool shutting_down_ = false;
  // What the timer thread sleeps until (InfiniteFuture when idle).
  absl::Time timer_wake_at_ = absl::InfiniteFuture();

  // Begins waiting on in-flight records (by digest). Only in-flight records
  // have waiters.
  KeyWaiters waiters_;
  std::thread timer_;  // Last: starts once everything above exists.
};

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_MEMORY_IDEMPOTENCY_STORE_H_
