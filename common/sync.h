// Mutex, MutexLock, CondVar and Notification with absl::Mutex's shape and
// thread-safety annotations, built on std::mutex and std::condition_variable.
//
// Why not absl::Mutex: Debian's Abseil is not built for ThreadSanitizer, so
// TSan cannot see the happens-before edges of absl::Mutex, absl::CondVar or
// absl::Notification and reports false races on everything they guard. These
// classes lock through libstdc++'s std::mutex (pthread_mutex_*, which TSan
// intercepts), so `bazel test --config=tsan` checks the code that uses them,
// while Clang's -Wthread-safety (--config=clang) still checks ABSL_GUARDED_BY
// and friends. Use them, not absl's, in every class with a lock.
//
// Differences from Abseil: no reader locks, Await takes any callable (not an
// absl::Condition), no deadlock detection. Timeouts are absl::Duration or
// absl::Time; an infinite (or absurdly long) timeout waits without one.
#ifndef CLINK_GATEWAY_COMMON_SYNC_H_
#define CLINK_GATEWAY_COMMON_SYNC_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace clink_gateway {

// An exclusive, non-recursive lock (std::mutex).
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    WakeAwaiters();
    mu_.unlock();
  }
  // Only tells the static analysis; checks nothing at run time.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  // With the lock held: releases it until `condition()` (called with the lock
  // held, re-evaluated whenever another thread calls Unlock) is true.
  template <typename Predicate>
  void Await(Predicate condition) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitWithTimeout(condition, absl::InfiniteDuration());
  }

  // As Await, for at most `timeout`. Returns the condition's final value.
  template <typename Predicate>
  bool AwaitWithTimeout(Predicate condition, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    const absl::Time deadline = absl::Now() + timeout;
    bool satisfied = condition();
    if (satisfied) return true;
    // Releasing the lock here is an Unlock to the other Await()ers: this
    // thread may have changed what their conditions read.
    WakeAwaiters();
    ++awaiting_;
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    while (!satisfied) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      if (left >= kForever) {
        await_cv_.wait(lock);
      } else {
        await_cv_.wait_for(lock, absl::ToChronoNanoseconds(left));
      }
      satisfied = condition();
    }
    lock.release();  // The caller still holds the lock.
    --awaiting_;
    return satisfied;
  }

 private:
  friend class CondVar;

  // With the lock held, about to release it: Await()ers re-check their
  // conditions. Done before the release, so that nothing of this Mutex is
  // touched after it (a woken waiter may destroy the Mutex).
  void WakeAwaiters() {
    if (awaiting_ > 0) await_cv_.notify_all();
  }

  // Longer waits are waits without a timeout (steady_clock::now() plus a
  // huge duration would overflow).
  static constexpr absl::Duration kForever = absl::Hours(24 * 365);

  std::mutex mu_;
  std::condition_variable await_cv_;
  int awaiting_ = 0;  // Guarded by mu_: threads in AwaitWithTimeout.
};

// Holds `mu` for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable over Mutex. Wakeups may be spurious: wait in a loop
// that re-checks the condition.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` (which the caller holds), waits for a signal, re-acquires.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    mu->WakeAwaiters();
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // The caller still holds mu.
  }

  // As Wait, for at most `timeout`. Returns true if it timed out.
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (timeout >= Mutex::kForever) {
      Wait(mu);
      return false;
    }
    mu->WakeAwaiters();
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const std::cv_status status = cv_.wait_for(
        lock,
        absl::ToChronoNanoseconds(std::max(timeout, absl::ZeroDuration())));
    lock.release();
    return status == std::cv_status::timeout;
  }

  // As Wait, until `deadline` (absl::Now's clock). Returns true if it passed.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return WaitWithTimeout(mu, deadline - absl::Now());
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

// A one-shot event: Notify() once, any number of threads wait for it.
class Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  // At most once.
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }

  bool HasBeenNotified() const {
    MutexLock lock(&mu_);
    return notified_;
  }

  void WaitForNotification() const {
    MutexLock lock(&mu_);
    while (!notified_) cv_.Wait(&mu_);
  }

  // Returns whether it was notified (false: `timeout` passed first).
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    return WaitForNotificationWithDeadline(absl::Now() + timeout);
  }

  bool WaitForNotificationWithDeadline(absl::Time deadline) const {
    MutexLock lock(&mu_);
    while (!notified_) {
      if (cv_.WaitWithDeadline(&mu_, deadline) && !notified_) return false;
    }
    return true;
  }

 private:
  mutable Mutex mu_;
  mutable CondVar cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_SYNC_H_
