#include "adapters/idempotency/memory_idempotency_store.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store_conformance.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::idempotency {
namespace {

using Kind = BeginResult::Kind;

class MemoryStoreEnv final : public StoreTestEnv {
 public:
  absl::StatusOr<std::unique_ptr<IdempotencyStore>> NewStore(
      StoreOptions options) override {
    MemoryIdempotencyStore::Options memory;
    memory.retention = options.retention;
    memory.in_flight_lease = options.lease;
    memory.clock = &clock_;
    memory.max_waiters_per_key = options.max_waiters_per_key;
    memory.max_waiters = options.max_waiters;
    return std::make_unique<MemoryIdempotencyStore>(memory);
  }
  absl::Time Now() override { return clock_.Now(); }
  void Advance(absl::Duration delta) override { clock_.Advance(delta); }
  absl::Duration ShortLease() const override { return absl::Minutes(2); }
  absl::Duration ShortRetention() const override { return absl::Hours(1); }

 private:
  FakeClock clock_;
};

INSTANTIATE_TEST_SUITE_P(
    Memory, IdempotencyStoreConformanceTest,
    ::testing::Values(ConformanceParam{
        "Memory",
        []() -> absl::StatusOr<std::unique_ptr<StoreTestEnv>> {
          return std::make_unique<MemoryStoreEnv>();
        }}),
    [](const ::testing::TestParamInfo<ConformanceParam>& info) {
      return info.param.name;
    });

IdempotencyKey Key(int i) {
  return IdempotencyKey{"caller", "svc/Rpc", absl::StrCat("key-", i), "m"};
}

StoredResult Response(absl::string_view bytes) {
  StoredResult result;
  result.response = std::string(bytes);
  return result;
}

class MemoryIdempotencyStoreTest : public ::testing::Test {
 protected:
  MemoryIdempotencyStore::Options Options(size_t max_keys) {
    MemoryIdempotencyStore::Options options;
    options.retention = absl::Hours(1);
    options.in_flight_lease = absl::Minutes(2);
    options.max_keys = max_keys;
    options.clock = &clock_;
    return options;
  }

  absl::Time Far() { return clock_.Now() + absl::Hours(10); }

  FakeClock clock_;
};

TEST_F(MemoryIdempotencyStoreTest, FullOfLiveRecordsFailsClosed) {
  MemoryIdempotencyStore store(Options(3));
  absl::StatusOr<BeginResult> a = BeginAndWait(store, Key(1), "h", Far());
  absl::StatusOr<BeginResult> b = BeginAndWait(store, Key(2), "h", Far());
  absl::StatusOr<BeginResult> c = BeginAndWait(store, Key(3), "h", Far());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE(
      CompleteAndWait(store, Key(3), c->lease_token, Response("3")).ok());
  EXPECT_EQ(store.size(), 3u);

  EXPECT_EQ(BeginAndWait(store, Key(4), "h", Far()).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Known keys are still answered while full.
  absl::StatusOr<BeginResult> replay = BeginAndWait(store, Key(3), "h", Far());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->kind, Kind::kCompleted);
  EXPECT_EQ(replay->result.response, "3");

  // Leases passed (keys 1 and 2 are now abandoned) but nothing reached its
  // retention: still no room, nothing is evicted early.
  clock_.Advance(absl::Minutes(30));
  EXPECT_EQ(BeginAndWait(store, Key(4), "h", Far()).status().code(),
            absl::StatusCode::kResourceExhausted);
  absl::StatusOr<BeginResult> abandoned =
      BeginAndWait(store, Key(1), "h", Far());
  ASSERT_TRUE(abandoned.ok()) << abandoned.status();
  EXPECT_EQ(abandoned->kind, Kind::kCompleted);
  EXPECT_EQ(abandoned->result.status.code(), absl::StatusCode::kUnknown);
}

TEST_F(MemoryIdempotencyStoreTest, ExpiredRecordsFreeTheirSlots) {
  MemoryIdempotencyStore store(Options(2));
  absl::StatusOr<BeginResult> a = BeginAndWait(store, Key(1), "h", Far());
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(
      CompleteAndWait(store, Key(1), a->lease_token, Response("1")).ok());
  clock_.Advance(absl::Minutes(10));
  absl::StatusOr<BeginResult> b = BeginAndWait(store, Key(2), "h", Far());
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(
      CompleteAndWait(store, Key(2), b->lease_token, Response("2")).ok());
  EXPECT_EQ(BeginAndWait(store, Key(3), "h", Far()).status().code(),
            absl::StatusCode::kResourceExhausted);

  // Key 1 reaches its retention (1 h after Complete); key 2 does not yet.
  clock_.Advance(absl::Minutes(51));
  absl::StatusOr<BeginResult> c = BeginAndWait(store, Key(3), "h", Far());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kind, Kind::kClaimed);
  EXPECT_EQ(store.size(), 2u);
  absl::StatusOr<BeginResult> two = BeginAndWait(store, Key(2), "h", Far());
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->kind, Kind::kCompleted);
  EXPECT_EQ(two->result.response, "2");
}

TEST_F(MemoryIdempotencyStoreTest, RetentionCountsFromCompletion) {
  MemoryIdempotencyStore store(Options(10));
  absl::StatusOr<BeginResult> a = BeginAndWait(store, Key(1), "h", Far());
  ASSERT_TRUE(a.ok());
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(
      CompleteAndWait(store, Key(1), a->lease_token, Response("1")).ok());
  // 1 h after the claim, but not after Complete: still replayed.
  clock_.Advance(absl::Minutes(59) + absl::Seconds(30));
  absl::StatusOr<BeginResult> kept = BeginAndWait(store, Key(1), "h", Far());
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kind, Kind::kCompleted);
  clock_.Advance(absl::Seconds(31));
  absl::StatusOr<BeginResult> gone = BeginAndWait(store, Key(1), "h", Far());
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->kind, Kind::kClaimed);
}

TEST_F(MemoryIdempotencyStoreTest, AnsweredWaitersAreForgotten) {
  MemoryIdempotencyStore store(Options(10));
  absl::StatusOr<BeginResult> a = BeginAndWait(store, Key(1), "h", Far());
  ASSERT_TRUE(a.ok());
  BeginCollector waiters;
  store.Begin(Key(1), "h", clock_.Now() + absl::Seconds(1), waiters.Callback());
  store.Begin(Key(1), "h", Far(), waiters.Callback());
  EXPECT_EQ(store.waiting(), 2u);
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(waiters.WaitForCount(1));
  EXPECT_EQ(waiters.results()[0]->kind, Kind::kInProgress);
  ASSERT_TRUE(
      CompleteAndWait(store, Key(1), a->lease_token, Response("1")).ok());
  ASSERT_TRUE(waiters.WaitForCount(2));
  EXPECT_EQ(waiters.results()[1]->kind, Kind::kCompleted);
  EXPECT_EQ(store.waiting(), 0u);
}

TEST(MemoryIdempotencyStoreRealClockTest, TimerAnswersAWaitDeadline) {
  MemoryIdempotencyStore store;  // SystemClock.
  const IdempotencyKey key{"c", "svc/Rpc", "k", "m"};
  absl::StatusOr<BeginResult> a =
      BeginAndWait(store, key, "h", absl::InfiniteFuture());
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->kind, Kind::kClaimed);
  BeginCollector waiter;
  store.Begin(key, "h", absl::Now() + absl::Milliseconds(50),
              waiter.Callback());
  // Nothing else touches the store: only its timer can answer.
  ASSERT_TRUE(waiter.WaitForCount(1));
  EXPECT_EQ(waiter.results()[0]->kind, Kind::kInProgress);
}

TEST(MemoryIdempotencyStoreRealClockTest, TimerSettlesAnExpiredLease) {
  MemoryIdempotencyStore::Options options;
  options.in_flight_lease = absl::Milliseconds(50);
  MemoryIdempotencyStore store(options);
  const IdempotencyKey key{"c", "svc/Rpc", "k", "m"};
  absl::StatusOr<BeginResult> a =
      BeginAndWait(store, key, "h", absl::InfiniteFuture());
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->kind, Kind::kClaimed);
  BeginCollector waiter;
  store.Begin(key, "h", absl::InfiniteFuture(), waiter.Callback());
  ASSERT_TRUE(waiter.WaitForCount(1));
  ASSERT_TRUE(waiter.results()[0].ok());
  EXPECT_EQ(waiter.results()[0]->kind, Kind::kCompleted);
  EXPECT_EQ(waiter.results()[0]->result.status, AbandonedResult().status);
}

}  // namespace
}  // namespace clink_gateway::idempotency
