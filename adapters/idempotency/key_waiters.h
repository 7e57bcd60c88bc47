// The Begin calls of one store process that wait for an in-flight key: a
// building block for IdempotencyStore implementations whose waiters live in
// process (the memory store; any store that keeps its records elsewhere but
// wakes its own waiters).
//
// It keeps, per key, the waiting callbacks in arrival order with their wait
// deadlines, bounds them (per key and in total), answers them when their
// deadline passes or the store stops waiting (AbortAll), and runs hand-offs
// on its own thread: a store that gives a released key to the next waiter
// Post()s that waiter's kClaimed answer instead of running it, so the new
// holder's call (which may fail at once and Release again) never runs inside
// the releasing call's stack. However many waiters a key has, hand-offs are a
// loop on one thread, never a recursion.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_KEY_WAITERS_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_KEY_WAITERS_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store.h"
#include "common/clock.h"

namespace clink_gateway::idempotency {

// Default caps (also the defaults of the gateway's flags
// --idempotency_max_waiters_per_key and --idempotency_max_waiters).
inline constexpr size_t kDefaultMaxWaitersPerKey = 100;
inline constexpr size_t kDefaultMaxWaiters = 10000;

// Thread-safe. Never calls back into the store, and never runs a callback
// while holding its own lock, so a store may call it under the store's lock
// (lock order: store, then KeyWaiters) and callbacks may call the store.
class KeyWaiters {
 public:
  using Callback = IdempotencyStore::BeginCallback;

  struct Options {
    // Waiters on one key at most; the next Begin is refused at once.
    size_t max_per_key = kDefaultMaxWaitersPerKey;
    // Waiters on all keys at most.
    size_t max_total = kDefaultMaxWaiters;
    // Time source for wait deadlines; nullptr means SystemClock(). Must
    // outlive this object. Re-read at least every 200 ms while a deadline is
    // pending, so an injected clock that jumps is noticed within that.
    const Clock* clock = nullptr;
  };

  // Why Wait() did not queue the waiter.
  enum class Admission {
    kWaiting,         // Queued: `done` was moved from.
    kDeadlinePassed,  // The wait deadline is not in the future.
    kAborted,         // AbortAll() was called: nobody waits any more.
    kKeyFull,         // The key has max_per_key waiters already.
    kAllFull,         // max_total waiters already.
    kShutDown,        // Shutdown() was called.
  };

  KeyWaiters();
  explicit KeyWaiters(Options options);
  // Shutdown().
  ~KeyWaiters();

  KeyWaiters(const KeyWaiters&) = delete;
  KeyWaiters& operator=(const KeyWaiters&) = delete;

  // Queues `done` behind `key` (any string: a digest, a record name) until
  // TakeFirst/TakeAll hands it out, `deadline` passes (then it is answered
  // kInProgress on this object's thread), AbortAll() (kInProgress, on
  // AbortAll's thread) or Shutdown() (kUnavailable). Returns kWaiting and
  // moves from `done`; any other result leaves `done` untouched for the
  // caller to answer (kInProgress; kUnavailable after kShutDown), after it
  // drops its own lock.
  [[nodiscard]] Admission Wait(const std::string& key, absl::Time deadline,
                               Callback& done);

  // Removes and returns the earliest waiter on `key`, if any. For a hand-off:
  // the store makes the waiter the holder, then Post()s its kClaimed answer.
  [[nodiscard]] std::optional<Callback> TakeFirst(const std::string& key);
  // Removes and returns every waiter on `key`, in arrival order (a final
  // result: the store answers them after dropping its lock).
  [[nodiscard]] std::vector<Callback> TakeAll(const std::string& key);

  // Runs `done(result)` on this object's thread, in Post order, never inline.
  // If Shutdown() comes first, `done` gets kUnavailable ("store shutting
  // down") instead, after `if_dropped` (when set) runs: a store whose claim
  // outlives the process (on disk) releases it there.
  void Post(Callback done, absl::StatusOr<BeginResult> result,
            absl::AnyInvocable<void() &&> if_dropped = nullptr);

  // Answers every waiter kInProgress on the calling thread before it
  // returns; every later Wait() is refused with kAborted. For good;
  // idempotent.
  void AbortAll();

  // Stops the thread: every waiter and every callback Post()ed but not yet
  // run is answered kUnavailable ("store shutting down") on the calling
  // thread; later Wait()s return kShutDown and later Post()s are answered
  // that way at once. Idempotent; not to be called from a callback this
  // object runs.
  void Shutdown();

  // Waiters now (tests, metrics).
  size_t size() const;
  // Wait()s refused by a cap (kKeyFull or kAllFull) so far.
  uint64_t refused() const;

 private:
  struct Waiter {
    absl::Time deadline;
    Callback done;
  };
  struct Posted {
    Callback done;
    absl::StatusOr<BeginResult> result;
    absl::AnyInvocable<void() &&> if_dropped;
  };

  void Loop();

  const size_t max_per_key_;
  const size_t max_total_;
  const Clock& clock_;

  // std::mutex, not absl::Mutex: Debian's Abseil is not built for
  // ThreadSanitizer, and stores must be checkable with it.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Everything below: mu_.
  // Per key, its waiters by waiter id (arrival order).
  absl::flat_hash_map<std::string, std::map<uint64_t, Waiter>> waiters_;
  // (deadline, waiter id, key) of every waiter.
  std::set<std::tuple<absl::Time, uint64_t, std::string>> deadlines_;
  std::deque<Posted> posted_;
  size_t total_ = 0;
  uint64_t next_id_ = 0;
  uint64_t refused_ = 0;
  bool aborted_ = false;
  bool stopping_ = false;

  std::thread thread_;  // Last: starts once everything above exists.
};

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_KEY_WAITERS_H_
