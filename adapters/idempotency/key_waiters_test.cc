#include "adapters/idempotency/key_waiters.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::idempotency {
namespace {

using Admission = KeyWaiters::Admission;
using Kind = BeginResult::Kind;

constexpr std::chrono::seconds kTimeout(30);

// Records answers by label, with the thread each ran on.
class Answers {
 public:
  KeyWaiters::Callback For(std::string label) {
    return [this, label = std::move(label)](absl::StatusOr<BeginResult> r) {
      std::lock_guard<std::mutex> lock(mu_);
      entries_.push_back({label, std::move(r), std::this_thread::get_id()});
      cv_.notify_all();
    };
  }
  bool WaitFor(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kTimeout,
                        [&] { return entries_.size() >= count; });
  }
  struct Entry {
    std::string label;
    absl::StatusOr<BeginResult> result;
    std::thread::id thread;
  };
  std::vector<Entry> entries() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> entries_;
};

BeginResult Claimed(std::string token) {
  BeginResult result;
  result.kind = Kind::kClaimed;
  result.lease_token = std::move(token);
  return result;
}

class KeyWaitersTest : public ::testing::Test {
 protected:
  KeyWaiters::Options Options(size_t per_key, size_t total) {
    KeyWaiters::Options options;
    options.max_per_key = per_key;
    options.max_total = total;
    options.clock = &clock_;
    return options;
  }
  absl::Time Far() { return clock_.Now() + absl::Hours(1); }

  FakeClock clock_;
};

TEST_F(KeyWaitersTest, HandsWaitersOutInArrivalOrder) {
  Answers answers;
  KeyWaiters waiters(Options(10, 100));
  for (const char* label : {"a1", "a2", "a3"}) {
    KeyWaiters::Callback done = answers.For(label);
    ASSERT_EQ(waiters.Wait("a", Far(), done), Admission::kWaiting);
  }
  KeyWaiters::Callback b = answers.For("b1");
  ASSERT_EQ(waiters.Wait("b", Far(), b), Admission::kWaiting);
  EXPECT_EQ(waiters.size(), 4u);

  std::optional<KeyWaiters::Callback> first = waiters.TakeFirst("a");
  ASSERT_TRUE(first.has_value());
  (*std::move(first))(Claimed("t"));
  std::vector<KeyWaiters::Callback> rest = waiters.TakeAll("a");
  ASSERT_EQ(rest.size(), 2u);
  for (auto& done : rest) std::move(done)(Claimed("x"));
  EXPECT_FALSE(waiters.TakeFirst("a").has_value());
  EXPECT_TRUE(waiters.TakeAll("a").empty());
  EXPECT_EQ(waiters.size(), 1u);  // b1 still waits.

  std::vector<Answers::Entry> got = answers.entries();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].label, "a1");
  EXPECT_EQ(got[1].label, "a2");
  EXPECT_EQ(got[2].label, "a3");
}

TEST_F(KeyWaitersTest, CapsWaitersPerKeyAndInTotal) {
  Answers answers;
  KeyWaiters waiters(Options(2, 3));
  std::vector<KeyWaiters::Callback> callbacks;
  for (int i = 0; i < 8; ++i) callbacks.push_back(answers.For("w"));
  EXPECT_EQ(waiters.Wait("a", Far(), callbacks[0]), Admission::kWaiting);
  EXPECT_EQ(waiters.Wait("a", Far(), callbacks[1]), Admission::kWaiting);
  EXPECT_EQ(waiters.Wait("a", Far(), callbacks[2]), Admission::kKeyFull);
  EXPECT_TRUE(callbacks[2] != nullptr);  // Left for the caller to answer.
  EXPECT_EQ(waiters.Wait("b", Far(), callbacks[3]), Admission::kWaiting);
  EXPECT_EQ(waiters.Wait("c", Far(), callbacks[4]), Admission::kAllFull);
  EXPECT_EQ(waiters.refused(), 2u);
  EXPECT_EQ(waiters.size(), 3u);
  // Room again once a waiter leaves.
  ASSERT_TRUE(waiters.TakeFirst("a").has_value());
  EXPECT_EQ(waiters.Wait("c", Far(), callbacks[5]), Admission::kWaiting);
}

TEST_F(KeyWaitersTest, APassedDeadlineIsAnsweredInProgress) {
  Answers answers;
  KeyWaiters waiters(Options(10, 100));
  KeyWaiters::Callback now = answers.For("now");
  EXPECT_EQ(waiters.Wait("a", clock_.Now(), now), Admission::kDeadlinePassed);

  KeyWaiters::Callback soon = answers.For("soon");
  KeyWaiters::Callback late = answers.For("late");
  ASSERT_EQ(waiters.Wait("a", clock_.Now() + absl::Seconds(1), soon),
            Admission::kWaiting);
  ASSERT_EQ(waiters.Wait("a", Far(), late), Admission::kWaiting);
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(answers.WaitFor(1));
  std::vector<Answers::Entry> got = answers.entries();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].label, "soon");
  ASSERT_TRUE(got[0].result.ok());
  EXPECT_EQ(got[0].result->kind, Kind::kInProgress);
  EXPECT_NE(got[0].thread, std::this_thread::get_id());
  EXPECT_EQ(waiters.size(), 1u);
}

TEST_F(KeyWaitersTest, AbortAllAnswersEveryWaiterBeforeItReturns) {
  Answers answers;
  KeyWaiters waiters(Options(10, 100));
  for (const char* key : {"a", "a", "b"}) {
    KeyWaiters::Callback done = answers.For(key);
    ASSERT_EQ(waiters.Wait(key, Far(), done), Admission::kWaiting);
  }
  waiters.AbortAll();
  std::vector<Answers::Entry> got = answers.entries();
  ASSERT_EQ(got.size(), 3u);
  for (const auto& entry : got) {
    ASSERT_TRUE(entry.result.ok());
    EXPECT_EQ(entry.result->kind, Kind::kInProgress);
  }
  EXPECT_EQ(waiters.size(), 0u);
  KeyWaiters::Callback later = answers.For("later");
  EXPECT_EQ(waiters.Wait("a", Far(), later), Admission::kAborted);
  waiters.AbortAll();  // Idempotent.
}

// The defect this class exists for: a hand-off whose new holder fails at once
// and hands the key on again. Each Post()ed callback posts the next one, as
// a store's Release does from inside the previous holder's continuation; a
// recursion would overflow the stack long before 200,000.
TEST_F(KeyWaitersTest, HandOffChainsRunAsALoopNotARecursion) {
  KeyWaiters waiters(Options(10, 100));
  constexpr int kChain = 200000;
  std::mutex mu;
  std::condition_variable cv;
  int ran = 0;
  std::atomic<int> depth{0};
  int max_depth = 0;
  std::function<void(absl::StatusOr<BeginResult>)> step;
  step = [&](absl::StatusOr<BeginResult> result) {
    const int d = depth.fetch_add(1) + 1;
    int count;
    {
      std::lock_guard<std::mutex> lock(mu);
      count = ++ran;
      max_depth = std::max(max_depth, d);
      if (count == kChain) cv.notify_all();
    }
    if (count < kChain) waiters.Post(step, Claimed("t"));
    depth.fetch_sub(1);
  };
  waiters.Post(step, Claimed("t"));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kTimeout, [&] { return ran == kChain; }));
  }
  waiters.Shutdown();  // The last step has returned: the locals may go.
  EXPECT_EQ(max_depth, 1);
}

TEST_F(KeyWaitersTest, PostNeverRunsInline) {
  Answers answers;
  KeyWaiters waiters(Options(10, 100));
  waiters.Post(answers.For("p"), Claimed("t"));
  ASSERT_TRUE(answers.WaitFor(1));
  EXPECT_NE(answers.entries()[0].thread, std::this_thread::get_id());
  EXPECT_EQ(answers.entries()[0].result->lease_token, "t");
}

TEST_F(KeyWaitersTest, ShutdownAnswersWaitersAndDroppedHandOffs) {
  Answers answers;  // Outlives the waiters, which answer it at shutdown.
  auto waiters = std::make_unique<KeyWaiters>(Options(10, 100));
  KeyWaiters::Callback waiting = answers.For("waiting");
  ASSERT_EQ(waiters->Wait("a", Far(), waiting), Admission::kWaiting);
  // Block the thread in a posted callback so the next Post stays queued.
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;
  bool release = false;
  waiters->Post(
      [&](absl::StatusOr<BeginResult>) {
        std::unique_lock<std::mutex> lock(mu);
        blocked = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
      },
      Claimed("first"));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kTimeout, [&] { return blocked; }));
  }
  std::atomic<bool> dropped{false};
  waiters->Post(answers.For("queued"), Claimed("second"),
                [&dropped] { dropped = true; });
  std::thread shutdown([&] { waiters->Shutdown(); });
  // Shutdown has begun once Wait() says so (probes queued before that are
  // answered kUnavailable like any waiter).
  Answers probes;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (true) {
    KeyWaiters::Callback probe = probes.For("probe");
    if (waiters->Wait("probe", Far(), probe) == Admission::kShutDown) break;
    ASSERT_LT(absl::Now(), give_up);
    std::this_thread::yield();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
    cv.notify_all();
  }
  shutdown.join();
  EXPECT_TRUE(dropped);
  std::vector<Answers::Entry> got = answers.entries();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& entry : got) {
    EXPECT_EQ(entry.result.status().code(), absl::StatusCode::kUnavailable)
        << entry.label;
  }
  KeyWaiters::Callback after = answers.For("after");
  EXPECT_EQ(waiters->Wait("a", Far(), after), Admission::kShutDown);
  waiters->Post(answers.For("post-after"), Claimed("third"));
  EXPECT_EQ(answers.entries().size(), 3u);  // Answered inline.
}

}  // namespace
}  // namespace clink_gateway::idempotency
