#include "adapters/idempotency/idempotency_store_conformance.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errors/error_details.h"
#include "common/sync.h"
#include "google/rpc/error_details.pb.h"

namespace clink_gateway::idempotency {

void StdNotification::Notify() {
  std::lock_guard<std::mutex> lock(mu_);
  notified_ = true;
  cv_.notify_all();
}

bool StdNotification::WaitForNotificationWithTimeout(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [this] { return notified_; });
}

void StdNotification::WaitForNotification() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return notified_; });
}

BeginCollector::BeginCollector() : state_(std::make_shared<State>()) {}

IdempotencyStore::BeginCallback BeginCollector::Callback(
    std::function<void(const absl::StatusOr<BeginResult>&)> on_result) {
  return [state = state_, on_result = std::move(on_result)](
             absl::StatusOr<BeginResult> result) {
    // Recorded before `on_result` runs: a test that `on_result` wakes finds
    // the result in results().
    const absl::StatusOr<BeginResult> seen =
        on_result ? result : absl::StatusOr<BeginResult>();
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->results.push_back(std::move(result));
      state->cv.notify_all();
    }
    if (on_result) on_result(seen);
  };
}

bool BeginCollector::WaitForCount(size_t count, absl::Duration timeout) {
  State& state = *state_;
  std::unique_lock<std::mutex> lock(state.mu);
  return state.cv.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [&] { return state.results.size() >= count; });
}

std::vector<absl::StatusOr<BeginResult>> BeginCollector::results() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->results;
}

namespace {

template <typename T>
struct Slot {
  StdNotification done;
  T value;
};

template <typename T>
T AwaitSlot(const std::shared_ptr<Slot<T>>& slot) {
  if (!slot->done.WaitForNotificationWithTimeout(kCallbackTimeout)) {
    return absl::DeadlineExceededError("no callback");
  }
  return std::move(slot->value);
}

}  // namespace

absl::StatusOr<BeginResult> BeginAndWait(IdempotencyStore& store,
                                         const IdempotencyKey& key,
                                         absl::string_view request_hash,
                                         absl::Time wait_deadline) {
  auto slot = std::make_shared<Slot<absl::StatusOr<BeginResult>>>();
  store.Begin(key, request_hash, wait_deadline,
              [slot](absl::StatusOr<BeginResult> result) {
                slot->value = std::move(result);
                slot->done.Notify();
              });
  return AwaitSlot(slot);
}

absl::Status CompleteAndWait(IdempotencyStore& store, const IdempotencyKey& key,
                             absl::string_view lease_token,
                             StoredResult result) {
  auto slot = std::make_shared<Slot<absl::Status>>();
  store.Complete(key, lease_token, std::move(result),
                 [slot](absl::Status status) {
                   slot->value = std::move(status);
                   slot->done.Notify();
                 });
  return AwaitSlot(slot);
}

absl::Status ReleaseAndWait(IdempotencyStore& store, const IdempotencyKey& key,
                            absl::string_view lease_token) {
  auto slot = std::make_shared<Slot<absl::Status>>();
  store.Release(key, lease_token, [slot](absl::Status status) {
    slot->value = std::move(status);
    slot->done.Notify();
  });
  return AwaitSlot(slot);
}

absl::Status SettleUnknownAndWait(IdempotencyStore& store,
                                  const IdempotencyKey& key,
                                  absl::string_view request_hash,
                                  const StoredResult& expected,
                                  StoredResult result) {
  auto slot = std::make_shared<Slot<absl::Status>>();
  store.SettleUnknown(key, request_hash, expected, std::move(result),
                      [slot](absl::Status status) {
                        slot->value = std::move(status);
                        slot->done.Notify();
                      });
  return AwaitSlot(slot);
}

void IdempotencyStoreConformanceTest::SetUp() {
  absl::StatusOr<std::unique_ptr<StoreTestEnv>> env = GetParam().make_env();
  ASSERT_TRUE(env.ok()) << env.status();
  env_ = *std::move(env);
  store_ = NewStore({});
  ASSERT_NE(store_, nullptr);
}

std::unique_ptr<IdempotencyStore> IdempotencyStoreConformanceTest::NewStore(
    StoreTestEnv::StoreOptions options) {
  absl::StatusOr<std::unique_ptr<IdempotencyStore>> store =
      env_->NewStore(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

namespace {

using Kind = BeginResult::Kind;

const IdempotencyKey kKey{"caller-1", "clink.gateway.v1.PaymentService/Create",
                          "key-1", "acme"};

StoredResult RichError() {
  StoredResult result;
  result.status = absl::FailedPreconditionError("payment declined");
  google::rpc::ErrorInfo info;
  info.set_reason("CARD_DECLINED");
  info.set_domain(std::string(errors::kClinkDomain));
  (*info.mutable_metadata())["decline_code"] = "51";
  // Any payload round-trips (not only what errors::AttachErrorInfo builds).
  result.status.SetPayload(errors::kErrorInfoTypeUrl,
                           absl::Cord(info.SerializeAsString()));
  errors::AttachRetryInfo(result.status, absl::Seconds(2));
  result.status.SetPayload("type.example/bytes",
                           absl::Cord(std::string("\0\xfe\x01", 3)));
  return result;
}

StoreTestEnv::StoreOptions Options(absl::Duration retention,
                                   absl::Duration lease) {
  StoreTestEnv::StoreOptions options;
  options.retention = retention;
  options.lease = lease;
  return options;
}

StoredResult OkResponse(absl::string_view bytes) {
  StoredResult result;
  result.response = std::string(bytes);
  return result;
}

void ExpectAbandoned(const absl::StatusOr<BeginResult>& begun) {
  ASSERT_TRUE(begun.ok()) << begun.status();
  ASSERT_EQ(begun->kind, Kind::kCompleted);
  EXPECT_EQ(begun->result.status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(begun->result.status, AbandonedResult().status);
  absl::optional<google::rpc::ErrorInfo> info =
      errors::GetErrorInfo(begun->result.status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), kAbandonedReason);
  EXPECT_EQ(info->domain(), errors::kGatewayDomain);
  EXPECT_EQ(info->metadata().at("outcome"), "unknown");
}

// Claims kKey on `store`; the lease token.
std::string Claim(IdempotencyStore& store, absl::Time wait_deadline,
                  const IdempotencyKey& key = kKey,
                  absl::string_view hash = "hash-a") {
  absl::StatusOr<BeginResult> begun =
      BeginAndWait(store, key, hash, wait_deadline);
  EXPECT_TRUE(begun.ok()) << begun.status();
  if (!begun.ok()) return "";
  EXPECT_EQ(begun->kind, Kind::kClaimed);
  EXPECT_FALSE(begun->lease_token.empty());
  return begun->lease_token;
}

TEST_P(IdempotencyStoreConformanceTest, ReplaysAStoredErrorExactly) {
  const std::string token = Claim(*store_, FarDeadline());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, RichError()).ok());

  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<BeginResult> replay =
        BeginAndWait(*store_, kKey, "hash-a", FarDeadline());
    ASSERT_TRUE(replay.ok()) << replay.status();
    ASSERT_EQ(replay->kind, Kind::kCompleted);
    EXPECT_EQ(replay->result.status, RichError().status);
    EXPECT_EQ(replay->result.status.message(), "payment declined");
    EXPECT_EQ(replay->result.status.GetPayload("type.example/bytes"),
              absl::Cord(std::string("\0\xfe\x01", 3)));
    ASSERT_TRUE(errors::GetRetryInfo(replay->result.status).has_value());
    EXPECT_EQ(replay->result.response, "");
    EXPECT_TRUE(replay->lease_token.empty());
  }
}

TEST_P(IdempotencyStoreConformanceTest, ReplaysAStoredResponseExactly) {
  const std::string response("\x08\x96\x01\x12\x00payment\xff", 12);
  const std::string token = Claim(*store_, FarDeadline());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse(response)).ok());

  absl::StatusOr<BeginResult> replay =
      BeginAndWait(*store_, kKey, "hash-a", FarDeadline());
  ASSERT_TRUE(replay.ok()) << replay.status();
  ASSERT_EQ(replay->kind, Kind::kCompleted);
  EXPECT_TRUE(replay->result.status.ok()) << replay->result.status;
  EXPECT_EQ(replay->result.response, response);
}

TEST_P(IdempotencyStoreConformanceTest, DifferentHashMismatchesInFlight) {
  const std::string token = Claim(*store_, FarDeadline());
  // Answered at once, not after waiting for the holder.
  absl::StatusOr<BeginResult> other =
      BeginAndWait(*store_, kKey, "hash-b", FarDeadline());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->kind, Kind::kMismatch);
  // The holder is unaffected.
  EXPECT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse("r")).ok());
}

TEST_P(IdempotencyStoreConformanceTest, DifferentHashMismatchesWhenFinal) {
  const std::string token = Claim(*store_, FarDeadline());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse("r")).ok());
  absl::StatusOr<BeginResult> other =
      BeginAndWait(*store_, kKey, "hash-b", FarDeadline());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->kind, Kind::kMismatch);
  EXPECT_TRUE(other->result.response.empty());
  // The original request still replays.
  absl::StatusOr<BeginResult> same =
      BeginAndWait(*store_, kKey, "hash-a", FarDeadline());
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->kind, Kind::kCompleted);
  EXPECT_EQ(same->result.response, "r");
}

TEST_P(IdempotencyStoreConformanceTest, FiftyConcurrentBeginsClaimOnce) {
  constexpr int kThreads = 50;
  BeginCollector collector;
  StdNotification claimed;
  std::atomic<int> claims{0};
  auto on_result = [&claimed, &claims](const absl::StatusOr<BeginResult>& r) {
    if (r.ok() && r->kind == Kind::kClaimed && claims.fetch_add(1) == 0) {
      claimed.Notify();
    }
  };
  const absl::Time deadline = FarDeadline();
  StdNotification go;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      go.WaitForNotification();
      store_->Begin(kKey, "hash-a", deadline, collector.Callback(on_result));
    });
  }
  go.Notify();
  for (std::thread& thread : threads) thread.join();

  ASSERT_TRUE(claimed.WaitForNotificationWithTimeout(kCallbackTimeout));
  std::string token;
  for (const auto& r : collector.results()) {
    if (r.ok() && r->kind == Kind::kClaimed) token = r->lease_token;
  }
  ASSERT_FALSE(token.empty());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, RichError()).ok());

  ASSERT_TRUE(collector.WaitForCount(kThreads));
  int claimed_count = 0;
  int completed_count = 0;
  for (const auto& r : collector.results()) {
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->kind == Kind::kClaimed) ++claimed_count;
    if (r->kind == Kind::kCompleted) {
      ++completed_count;
      EXPECT_EQ(r->result.status, RichError().status);
    }
  }
  EXPECT_EQ(claimed_count, 1);
  EXPECT_EQ(completed_count, kThreads - 1);
}

TEST_P(IdempotencyStoreConformanceTest, ReleaseLetsExactlyOneWaiterClaim) {
  constexpr int kWaiters = 5;
  const std::string first = Claim(*store_, FarDeadline());
  BeginCollector waiters;
  for (int i = 0; i < kWaiters; ++i) {
    store_->Begin(kKey, "hash-a", FarDeadline(), waiters.Callback());
  }
  ASSERT_TRUE(ReleaseAndWait(*store_, kKey, first).ok());

  ASSERT_TRUE(waiters.WaitForCount(1));
  std::vector<absl::StatusOr<BeginResult>> results = waiters.results();
  ASSERT_EQ(results.size(), 1u);  // The others wait on the new holder.
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  ASSERT_EQ(results[0]->kind, Kind::kClaimed);
  const std::string second = results[0]->lease_token;
  EXPECT_NE(second, first);
  // The released token no longer holds the key.
  EXPECT_EQ(CompleteAndWait(*store_, kKey, first, OkResponse("x")).code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(CompleteAndWait(*store_, kKey, second, OkResponse("r2")).ok());
  ASSERT_TRUE(waiters.WaitForCount(kWaiters));
  int claimed = 0;
  for (const auto& r : waiters.results()) {
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->kind == Kind::kClaimed) {
      ++claimed;
    } else {
      EXPECT_EQ(r->kind, Kind::kCompleted);
      EXPECT_EQ(r->result.response, "r2");
    }
  }
  EXPECT_EQ(claimed, 1);
}

TEST_P(IdempotencyStoreConformanceTest, ReleaseWithoutWaitersForgetsTheKey) {
  const std::string first = Claim(*store_, FarDeadline());
  ASSERT_TRUE(ReleaseAndWait(*store_, kKey, first).ok());
  // Forgotten entirely: even another request may now use the key.
  const std::string second = Claim(*store_, FarDeadline(), kKey, "hash-b");
  EXPECT_NE(second, first);
  EXPECT_EQ(ReleaseAndWait(*store_, kKey, first).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CompleteAndWait(*store_, kKey, second, OkResponse("b")).ok());
}

TEST_P(IdempotencyStoreConformanceTest, WaitDeadlinePassingGivesInProgress) {
  const std::string token = Claim(*store_, FarDeadline());
  // A deadline already passed: answered without waiting.
  absl::StatusOr<BeginResult> now =
      BeginAndWait(*store_, kKey, "hash-a", env_->Now());
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->kind, Kind::kInProgress);

  BeginCollector waiter;
  store_->Begin(kKey, "hash-a", env_->Now() + absl::Milliseconds(100),
                waiter.Callback());
  env_->Advance(absl::Milliseconds(200));
  ASSERT_TRUE(waiter.WaitForCount(1));
  ASSERT_TRUE(waiter.results()[0].ok()) << waiter.results()[0].status();
  EXPECT_EQ(waiter.results()[0]->kind, Kind::kInProgress);

  // Giving up did not disturb the holder.
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse("r")).ok());
  absl::StatusOr<BeginResult> replay =
      BeginAndWait(*store_, kKey, "hash-a", env_->Now());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->kind, Kind::kCompleted);
}

TEST_P(IdempotencyStoreConformanceTest, ExpiredLeaseWakesWaitersAsAbandoned) {
  std::unique_ptr<IdempotencyStore> store =
      NewStore(Options(absl::Hours(24), env_->ShortLease()));
  ASSERT_NE(store, nullptr);
  const std::string token = Claim(*store, FarDeadline());
  BeginCollector waiter;
  store->Begin(kKey, "hash-a", FarDeadline(), waiter.Callback());
  env_->Advance(env_->ShortLease() + absl::Milliseconds(1));

  ASSERT_TRUE(waiter.WaitForCount(1));
  ExpectAbandoned(waiter.results()[0]);
  // Later calls get the same; it is never run again.
  ExpectAbandoned(BeginAndWait(*store, kKey, "hash-a", FarDeadline()));
  // The vanished holder cannot write its result late.
  EXPECT_EQ(CompleteAndWait(*store, kKey, token, OkResponse("late")).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReleaseAndWait(*store, kKey, token).code(),
            absl::StatusCode::kFailedPrecondition);
  ExpectAbandoned(BeginAndWait(*store, kKey, "hash-a", FarDeadline()));
  absl::StatusOr<BeginResult> other =
      BeginAndWait(*store, kKey, "hash-b", FarDeadline());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->kind, Kind::kMismatch);
}

TEST_P(IdempotencyStoreConformanceTest, ExpiredLeaseIsSettledByTheNextBegin) {
  std::unique_ptr<IdempotencyStore> store =
      NewStore(Options(absl::Hours(24), env_->ShortLease()));
  ASSERT_NE(store, nullptr);
  const std::string token = Claim(*store, FarDeadline());
  env_->Advance(env_->ShortLease() + absl::Milliseconds(1));
  // Nobody was waiting; the next Begin (waiting, with real time, until the
  // lease passes) finds the holder gone.
  ExpectAbandoned(BeginAndWait(*store, kKey, "hash-a", FarDeadline()));
  EXPECT_EQ(CompleteAndWait(*store, kKey, token, OkResponse("late")).code(),
            absl::StatusCode::kFailedPrecondition);
}

// A retention shorter than the lease (both are flags): the UNKNOWN of an
// abandoned key is kept a whole retention period from when it is settled,
// never deleted together with the claim it replaces, or the caller's retry
// would find the key free and send the payment again.
TEST_P(IdempotencyStoreConformanceTest,
       AbandonedKeyIsKeptARetentionPeriodAfterItIsSettled) {
  const absl::Duration retention = env_->ShortRetention();
  const absl::Duration lease = 2 * retention;
  std::unique_ptr<IdempotencyStore> store = NewStore(Options(retention, lease));
  ASSERT_NE(store, nullptr);
  Claim(*store, FarDeadline());
  env_->Advance(lease + absl::Milliseconds(1));
  ExpectAbandoned(BeginAndWait(*store, kKey, "hash-a", FarDeadline()));
  env_->Advance(retention / 2);
  ExpectAbandoned(BeginAndWait(*store, kKey, "hash-a", FarDeadline()));
}

TEST_P(IdempotencyStoreConformanceTest, CallerRpcAndMerchantScopeTheKey) {
  const IdempotencyKey other_caller{"caller-2", kKey.rpc, kKey.key,
                                    kKey.merchant};
  const IdempotencyKey other_rpc{kKey.caller, "clink.gateway.v1.X/Other",
                                 kKey.key, kKey.merchant};
  const IdempotencyKey anonymous{"", kKey.rpc, kKey.key, kKey.merchant};
  const IdempotencyKey other_merchant{kKey.caller, kKey.rpc, kKey.key,
                                      "globex"};
  const std::string token = Claim(*store_, FarDeadline());
  const std::string token2 = Claim(*store_, FarDeadline(), other_caller);
  const std::string token3 = Claim(*store_, FarDeadline(), other_rpc);
  const std::string token4 = Claim(*store_, FarDeadline(), anonymous);
  const std::string token5 = Claim(*store_, FarDeadline(), other_merchant);
  ASSERT_TRUE(
      CompleteAndWait(*store_, other_merchant, token5, OkResponse("five"))
          .ok());

  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse("one")).ok());
  ASSERT_TRUE(
      CompleteAndWait(*store_, other_caller, token2, OkResponse("two")).ok());
  ASSERT_TRUE(ReleaseAndWait(*store_, other_rpc, token3).ok());
  // Tokens are per record.
  EXPECT_EQ(CompleteAndWait(*store_, anonymous, token, OkResponse("x")).code(),
            absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<BeginResult> one =
      BeginAndWait(*store_, kKey, "hash-a", FarDeadline());
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->result.response, "one");
  absl::StatusOr<BeginResult> two =
      BeginAndWait(*store_, other_caller, "hash-a", FarDeadline());
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->result.response, "two");
  Claim(*store_, FarDeadline(), other_rpc);  // Released: claimable again.
  absl::StatusOr<BeginResult> four =
      BeginAndWait(*store_, anonymous, "hash-a", env_->Now());
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(four->kind, Kind::kInProgress);
  EXPECT_TRUE(
      CompleteAndWait(*store_, anonymous, token4, OkResponse("four")).ok());
  absl::StatusOr<BeginResult> five =
      BeginAndWait(*store_, other_merchant, "hash-a", FarDeadline());
  ASSERT_TRUE(five.ok()) << five.status();
  EXPECT_EQ(five->result.response, "five");
}

TEST_P(IdempotencyStoreConformanceTest, ResultsAreForgottenAfterRetention) {
  std::unique_ptr<IdempotencyStore> store =
      NewStore(Options(env_->ShortRetention(), absl::Minutes(2)));
  ASSERT_NE(store, nullptr);
  const std::string token = Claim(*store, FarDeadline());
  ASSERT_TRUE(CompleteAndWait(*store, kKey, token, OkResponse("r")).ok());
  absl::StatusOr<BeginResult> kept =
      BeginAndWait(*store, kKey, "hash-b", env_->Now());
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kind, Kind::kMismatch);  // Still recorded.

  env_->Advance(env_->ShortRetention() + absl::Milliseconds(1));
  // With real time, wait for the expiry: a bounded loop on the condition.
  const absl::Time give_up = absl::Now() + kCallbackTimeout;
  absl::StatusOr<BeginResult> begun;
  while (true) {
    begun = BeginAndWait(*store, kKey, "hash-b", env_->Now());
    ASSERT_TRUE(begun.ok()) << begun.status();
    if (begun->kind == Kind::kClaimed) break;
    ASSERT_EQ(begun->kind, Kind::kMismatch);
    ASSERT_LT(absl::Now(), give_up) << "the record never expired";
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(begun->lease_token.empty());
}

TEST_P(IdempotencyStoreConformanceTest, WrongTokenCannotEndTheCall) {
  const std::string token = Claim(*store_, FarDeadline());
  EXPECT_EQ(
      CompleteAndWait(*store_, kKey, "not-the-token", OkResponse("x")).code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReleaseAndWait(*store_, kKey, "not-the-token").code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<BeginResult> still =
      BeginAndWait(*store_, kKey, "hash-a", env_->Now());
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->kind, Kind::kInProgress);
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse("r")).ok());
  // Completing twice is refused, and the first result stays.
  EXPECT_EQ(CompleteAndWait(*store_, kKey, token, OkResponse("again")).code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<BeginResult> replay =
      BeginAndWait(*store_, kKey, "hash-a", env_->Now());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->result.response, "r");
}

TEST_P(IdempotencyStoreConformanceTest, UnknownKeyCannotBeEnded) {
  EXPECT_EQ(CompleteAndWait(*store_, kKey, "token", OkResponse("x")).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReleaseAndWait(*store_, kKey, "token").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(IdempotencyStoreConformanceTest, DestroyingTheStoreFailsWaiters) {
  std::unique_ptr<IdempotencyStore> store = NewStore({});
  ASSERT_NE(store, nullptr);
  Claim(*store, FarDeadline());
  BeginCollector waiter;
  store->Begin(kKey, "hash-a", FarDeadline(), waiter.Callback());
  store.reset();
  ASSERT_TRUE(waiter.WaitForCount(1));
  EXPECT_EQ(waiter.results()[0].status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_P(IdempotencyStoreConformanceTest, AbortWaitsAnswersWaitersAtOnce) {
  const std::string token = Claim(*store_, FarDeadline());
  BeginCollector waiters;
  store_->Begin(kKey, "hash-a", FarDeadline(), waiters.Callback());
  store_->Begin(kKey, "hash-a", FarDeadline(), waiters.Callback());
  // A round trip on another key: the store has now seen both Begins find the
  // key in flight (stores answer in order), so they are waiting.
  const IdempotencyKey other{kKey.caller, kKey.rpc, "key-other", kKey.merchant};
  const std::string other_token = Claim(*store_, FarDeadline(), other);
  EXPECT_TRUE(waiters.results().empty());

  // The holder never finishes, and the deadline (an hour away) never passes:
  // only AbortWaits can answer the waiters.
  store_->AbortWaits();
  ASSERT_TRUE(waiters.WaitForCount(2));
  for (const auto& r : waiters.results()) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->kind, Kind::kInProgress);
  }
  // Idempotent.
  store_->AbortWaits();

  // A later Begin on an in-flight key does not wait either.
  absl::StatusOr<BeginResult> later =
      BeginAndWait(*store_, kKey, "hash-a", FarDeadline());
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->kind, Kind::kInProgress);
  // Everything else works: mismatches, new claims, Complete, Release, replay.
  absl::StatusOr<BeginResult> mismatch =
      BeginAndWait(*store_, kKey, "hash-b", FarDeadline());
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_EQ(mismatch->kind, Kind::kMismatch);
  const IdempotencyKey fresh{kKey.caller, kKey.rpc, "key-fresh", kKey.merchant};
  const std::string fresh_token = Claim(*store_, FarDeadline(), fresh);
  EXPECT_TRUE(ReleaseAndWait(*store_, fresh, fresh_token).ok());
  EXPECT_TRUE(ReleaseAndWait(*store_, other, other_token).ok());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse("r")).ok());
  absl::StatusOr<BeginResult> replay =
      BeginAndWait(*store_, kKey, "hash-a", FarDeadline());
  ASSERT_TRUE(replay.ok()) << replay.status();
  ASSERT_EQ(replay->kind, Kind::kCompleted);
  EXPECT_EQ(replay->result.response, "r");
  // Each waiter was answered exactly once.
  EXPECT_EQ(waiters.results().size(), 2u);
}

TEST_P(IdempotencyStoreConformanceTest, AbortWaitsAffectsOnlyThatStore) {
  std::unique_ptr<IdempotencyStore> other = NewStore({});
  ASSERT_NE(other, nullptr);
  const std::string token = Claim(*other, FarDeadline());
  BeginCollector waiter;
  other->Begin(kKey, "hash-a", FarDeadline(), waiter.Callback());
  store_->AbortWaits();
  ASSERT_TRUE(CompleteAndWait(*other, kKey, token, OkResponse("r")).ok());
  ASSERT_TRUE(waiter.WaitForCount(1));
  ASSERT_TRUE(waiter.results()[0].ok()) << waiter.results()[0].status();
  EXPECT_EQ(waiter.results()[0]->kind, Kind::kCompleted);
  EXPECT_EQ(waiter.results()[0]->result.response, "r");
}

TEST_P(IdempotencyStoreConformanceTest, WaitersAreCappedPerKeyAndInTotal) {
  StoreTestEnv::StoreOptions options;
  options.max_waiters_per_key = 2;
  options.max_waiters = 3;
  std::unique_ptr<IdempotencyStore> store = NewStore(options);
  ASSERT_NE(store, nullptr);
  const IdempotencyKey other{kKey.caller, kKey.rpc, "key-other", kKey.merchant};
  const std::string token = Claim(*store, FarDeadline());
  const std::string other_token = Claim(*store, FarDeadline(), other);
  BeginCollector waiters;
  store->Begin(kKey, "hash-a", FarDeadline(), waiters.Callback());
  store->Begin(kKey, "hash-a", FarDeadline(), waiters.Callback());
  // The key's cap is reached: answered at once (the deadline is an hour
  // away), told the first call is still running.
  absl::StatusOr<BeginResult> third =
      BeginAndWait(*store, kKey, "hash-a", FarDeadline());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->kind, Kind::kInProgress);
  store->Begin(other, "hash-a", FarDeadline(), waiters.Callback());
  // The total cap is reached too.
  absl::StatusOr<BeginResult> fourth =
      BeginAndWait(*store, other, "hash-a", FarDeadline());
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_EQ(fourth->kind, Kind::kInProgress);
  EXPECT_TRUE(waiters.results().empty());

  // The admitted waiters still get the holders' results.
  ASSERT_TRUE(CompleteAndWait(*store, kKey, token, OkResponse("a")).ok());
  ASSERT_TRUE(
      CompleteAndWait(*store, other, other_token, OkResponse("b")).ok());
  ASSERT_TRUE(waiters.WaitForCount(3));
  for (const auto& r : waiters.results()) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->kind, Kind::kCompleted);
  }
  // Slots are given back: a key in flight again can be waited for.
  const IdempotencyKey third_key{kKey.caller, kKey.rpc, "key-third",
                                 kKey.merchant};
  const std::string third_token = Claim(*store, FarDeadline(), third_key);
  BeginCollector later;
  store->Begin(third_key, "hash-a", FarDeadline(), later.Callback());
  store->Begin(third_key, "hash-a", FarDeadline(), later.Callback());
  ASSERT_TRUE(
      CompleteAndWait(*store, third_key, third_token, OkResponse("c")).ok());
  ASSERT_TRUE(later.WaitForCount(2));
  for (const auto& r : later.results()) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->kind, Kind::kCompleted);
    EXPECT_EQ(r->result.response, "c");
  }
}

// Each waiter, when it gets the key, gives it up at once (a call refused
// before anything was sent) and the next waiter takes it: the hand-off must
// never run the next waiter's continuation inside the releasing call (with
// thousands of waiters that recursion overflowed the stack).
TEST_P(IdempotencyStoreConformanceTest, HandOffsNeverRunInsideTheRelease) {
  constexpr int kWaiters = 20;
  IdempotencyStore& store = *store_;
  const std::string first = Claim(store, FarDeadline());
  struct Shared {
    std::atomic<int> claims{0};
    std::atomic<int> max_depth{0};
    StdNotification all_claimed;
  };
  auto shared = std::make_shared<Shared>();
  static thread_local int depth = 0;
  BeginCollector waiters;
  for (int i = 0; i < kWaiters; ++i) {
    store.Begin(kKey, "hash-a", FarDeadline(),
                waiters.Callback([&store, shared](
                                     const absl::StatusOr<BeginResult>& r) {
                  if (!r.ok() || r->kind != Kind::kClaimed) return;
                  const int d = ++depth;
                  int seen = shared->max_depth.load();
                  while (d > seen &&
                         !shared->max_depth.compare_exchange_weak(seen, d)) {
                  }
                  if (shared->claims.fetch_add(1) + 1 < kWaiters) {
                    store.Release(kKey, r->lease_token, [](absl::Status) {});
                  } else {
                    store.Complete(kKey, r->lease_token, OkResponse("last"),
                                   [](absl::Status) {});
                    shared->all_claimed.Notify();
                  }
                  --depth;
                }));
  }
  // A round trip on another key: every waiter has found the key in flight.
  const IdempotencyKey other{kKey.caller, kKey.rpc, "key-other", kKey.merchant};
  Claim(store, FarDeadline(), other);
  ASSERT_TRUE(ReleaseAndWait(store, kKey, first).ok());

  ASSERT_TRUE(
      shared->all_claimed.WaitForNotificationWithTimeout(kCallbackTimeout));
  ASSERT_TRUE(waiters.WaitForCount(kWaiters));
  EXPECT_EQ(shared->claims.load(), kWaiters);
  EXPECT_EQ(shared->max_depth.load(), 1);
  absl::StatusOr<BeginResult> replay =
      BeginAndWait(store, kKey, "hash-a", FarDeadline());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->result.response, "last");
}

TEST_P(IdempotencyStoreConformanceTest, CallbacksMayCallTheStore) {
  StdNotification completed;
  absl::Status complete_status;
  IdempotencyStore& store = *store_;
  store.Begin(kKey, "hash-a", FarDeadline(),
              [&](absl::StatusOr<BeginResult> begun) {
                if (!begun.ok() || begun->kind != Kind::kClaimed) {
                  complete_status = absl::InternalError("not claimed");
                  completed.Notify();
                  return;
                }
                store.Complete(kKey, begun->lease_token, OkResponse("nested"),
                               [&](absl::Status status) {
                                 complete_status = status;
                                 completed.Notify();
                               });
              });
  ASSERT_TRUE(completed.WaitForNotificationWithTimeout(kCallbackTimeout));
  EXPECT_TRUE(complete_status.ok()) << complete_status;
  absl::StatusOr<BeginResult> replay =
      BeginAndWait(store, kKey, "hash-a", env_->Now());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->result.response, "nested");
}

// An UNKNOWN result as IdempotentClinkApi stores it (a timeout after send).
StoredResult UnknownResult(absl::string_view message = "timed out") {
  StoredResult result;
  result.status = absl::UnknownError(message);
  errors::AttachErrorInfo(result.status, errors::kGatewayDomain,
                          "UPSTREAM_TIMEOUT", errors::Outcome::kUnknown);
  return result;
}

void ExpectReplays(IdempotencyStore& store, absl::Time deadline,
                   const StoredResult& expected) {
  absl::StatusOr<BeginResult> replay =
      BeginAndWait(store, kKey, "hash-a", deadline);
  ASSERT_TRUE(replay.ok()) << replay.status();
  ASSERT_EQ(replay->kind, Kind::kCompleted);
  EXPECT_EQ(replay->result.status, expected.status);
  EXPECT_EQ(replay->result.response, expected.response);
}

TEST_P(IdempotencyStoreConformanceTest, SettleUnknownReplacesTheUnknown) {
  const std::string token = Claim(*store_, FarDeadline());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, UnknownResult()).ok());
  ASSERT_TRUE(SettleUnknownAndWait(*store_, kKey, "hash-a", UnknownResult(),
                                   OkResponse("found"))
                  .ok());
  ExpectReplays(*store_, FarDeadline(), OkResponse("found"));
  // Settled once: the same replacement again finds a known result.
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-a", UnknownResult(),
                                 OkResponse("other"))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ExpectReplays(*store_, FarDeadline(), OkResponse("found"));
}

TEST_P(IdempotencyStoreConformanceTest, SettleUnknownSettlesAnAbandonedKey) {
  std::unique_ptr<IdempotencyStore> store =
      NewStore(Options(absl::Hours(24), env_->ShortLease()));
  ASSERT_NE(store, nullptr);
  Claim(*store, FarDeadline());
  env_->Advance(env_->ShortLease() + absl::Milliseconds(1));
  ExpectAbandoned(BeginAndWait(*store, kKey, "hash-a", FarDeadline()));
  ASSERT_TRUE(SettleUnknownAndWait(*store, kKey, "hash-a", AbandonedResult(),
                                   OkResponse("found"))
                  .ok());
  ExpectReplays(*store, FarDeadline(), OkResponse("found"));
}

TEST_P(IdempotencyStoreConformanceTest, SettleUnknownNeverTouchesAKnownResult) {
  const std::string token = Claim(*store_, FarDeadline());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, RichError()).ok());
  // The record holds a decline, not the unknown the caller expects.
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-a", UnknownResult(),
                                 OkResponse("found"))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  // A known result is never an acceptable `expected`.
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-a", RichError(),
                                 OkResponse("found"))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-a", OkResponse("r"),
                                 OkResponse("found"))
                .code(),
            absl::StatusCode::kInvalidArgument);
  ExpectReplays(*store_, FarDeadline(), RichError());
}

TEST_P(IdempotencyStoreConformanceTest,
       SettleUnknownNeedsTheSameUnknownAndRequest) {
  const std::string token = Claim(*store_, FarDeadline());
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, UnknownResult()).ok());
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-b", UnknownResult(),
                                 OkResponse("found"))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-a",
                                 UnknownResult("another unknown"),
                                 OkResponse("found"))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ExpectReplays(*store_, FarDeadline(), UnknownResult());
}

TEST_P(IdempotencyStoreConformanceTest,
       SettleUnknownNeverTouchesAnInFlightOrAbsentKey) {
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-a", UnknownResult(),
                                 OkResponse("found"))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  const std::string token = Claim(*store_, FarDeadline());
  EXPECT_EQ(SettleUnknownAndWait(*store_, kKey, "hash-a", UnknownResult(),
                                 OkResponse("found"))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  // The holder still owns the key and ends it normally.
  ASSERT_TRUE(CompleteAndWait(*store_, kKey, token, OkResponse("own")).ok());
  ExpectReplays(*store_, FarDeadline(), OkResponse("own"));
}

}  // namespace
}  // namespace clink_gateway::idempotency
