#include "common/sync.h"

#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace clink_gateway {
namespace {

TEST(MutexTest, SerialisesWriters) {
  Mutex mu;
  int counter = 0;  // Guarded by mu.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        MutexLock lock(&mu);
        ++counter;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  MutexLock lock(&mu);
  EXPECT_EQ(counter, 40000);
}

TEST(CondVarTest, WakesTheWaiterAndHandsOverTheData) {
  Mutex mu;
  CondVar cv;
  int value = 0;  // Guarded by mu.
  std::thread producer([&] {
    MutexLock lock(&mu);
    value = 42;
    cv.Signal();
  });
  {
    MutexLock lock(&mu);
    while (value == 0) cv.Wait(&mu);
    EXPECT_EQ(value, 42);
  }
  producer.join();
}

TEST(CondVarTest, TimeoutsAndDeadlinesExpire) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::Milliseconds(1)));
  EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::ZeroDuration()));
  EXPECT_TRUE(cv.WaitWithTimeout(&mu, -absl::InfiniteDuration()));
  EXPECT_TRUE(cv.WaitWithDeadline(&mu, absl::InfinitePast()));
  EXPECT_TRUE(cv.WaitWithDeadline(&mu, absl::Now() - absl::Seconds(1)));
}

TEST(CondVarTest, InfiniteTimeoutWaitsForTheSignal) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // Guarded by mu.
  std::thread signaller([&] {
    MutexLock lock(&mu);
    ready = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    // An infinite wait must not overflow the clock arithmetic (UBSan checks).
    while (!ready)
      EXPECT_FALSE(cv.WaitWithTimeout(&mu, absl::InfiniteDuration()));
  }
  signaller.join();
}

TEST(MutexTest, AwaitWakesWhenAnotherThreadMakesTheConditionTrue) {
  Mutex mu;
  int stage = 0;  // Guarded by mu.
  std::thread worker([&] {
    for (int i = 0; i < 3; ++i) {
      MutexLock lock(&mu);
      ++stage;
    }
  });
  {
    MutexLock lock(&mu);
    mu.Await([&] { return stage == 3; });
    EXPECT_EQ(stage, 3);
  }
  worker.join();
  MutexLock lock(&mu);
  EXPECT_FALSE(
      mu.AwaitWithTimeout([&] { return stage == 4; }, absl::Milliseconds(1)));
  EXPECT_TRUE(
      mu.AwaitWithTimeout([&] { return stage == 3; }, absl::ZeroDuration()));
}

// A thread that changes the state and then Awaits something else releases the
// lock inside Await: the other Await()ers must see the change (as absl's do).
TEST(MutexTest, AwaitReleasingTheLockWakesTheOtherAwaiters) {
  Mutex mu;
  bool entered = false;   // Guarded by mu.
  bool released = false;  // Guarded by mu.
  std::thread gate;
  {
    MutexLock lock(&mu);
    // Started with the lock held, so this thread is the first to Await.
    gate = std::thread([&] {
      MutexLock lock(&mu);
      entered = true;
      mu.Await([&] { return released; });
    });
    const absl::Time start = absl::Now();
    EXPECT_TRUE(
        mu.AwaitWithTimeout([&] { return entered; }, absl::Seconds(30)));
    // Woken when the gate released the lock, not by the timeout.
    EXPECT_LT(absl::Now() - start, absl::Seconds(15));
    released = true;
  }
  gate.join();
}

TEST(NotificationTest, NotifiesEveryWaiter) {
  Notification done;
  EXPECT_FALSE(done.HasBeenNotified());
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(1)));
  EXPECT_FALSE(done.WaitForNotificationWithDeadline(absl::InfinitePast()));
  int payload = 0;  // Published by Notify, read after the wait.
  std::vector<std::thread> waiters;
  std::vector<int> seen(3, 0);
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&, i] {
      done.WaitForNotification();
      seen[i] = payload;
    });
  }
  payload = 7;
  done.Notify();
  for (std::thread& waiter : waiters) waiter.join();
  EXPECT_EQ(seen, std::vector<int>({7, 7, 7}));
  EXPECT_TRUE(done.HasBeenNotified());
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::InfiniteDuration()));
  EXPECT_TRUE(done.WaitForNotificationWithDeadline(absl::InfinitePast()));
}

}  // namespace
}  // namespace clink_gateway
