// The behaviour every IdempotencyStore must have, as a value-parameterized
// GoogleTest suite. A store's test instantiates it with an environment that
// makes stores and controls time:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Memory, IdempotencyStoreConformanceTest,
//       ::testing::Values(ConformanceParam{"Memory", &MakeMemoryEnv}),
//       [](const auto& info) { return info.param.name; });
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENCY_STORE_CONFORMANCE_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENCY_STORE_CONFORMANCE_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store.h"
#include "common/sync.h"
#include "gtest/gtest.h"

namespace clink_gateway::idempotency {

// How long a test waits for a callback before it fails (never reached when
// the store works; generous for loaded CI machines).
inline constexpr absl::Duration kCallbackTimeout = absl::Seconds(30);

// Makes stores over one shared backing state, and moves their time.
class StoreTestEnv {
 public:
  struct StoreOptions {
    absl::Duration retention = absl::Hours(24);
    absl::Duration lease = absl::Minutes(2);
    // Begins one store lets wait for one in-flight key / for all keys; past
    // either, Begin answers kInProgress at once. Every store must honour
    // them (the stores' defaults are kDefaultMaxWaitersPerKey and
    // kDefaultMaxWaiters, adapters/idempotency/key_waiters.h).
    size_t max_waiters_per_key = 100;
    size_t max_waiters = 10000;
  };

  virtual ~StoreTestEnv() = default;

  // A store as one gateway process would have it. Stores from one
  // environment share their records when the implementation can (Redis).
  virtual absl::StatusOr<std::unique_ptr<IdempotencyStore>> NewStore(
      StoreOptions options) = 0;
  // Now, for wait deadlines, as the stores see it.
  virtual absl::Time Now() = 0;
  // Lets `delta` pass for the stores: a fake clock jumps; with real time this
  // does nothing, and the tests wait for the effect with bounded loops.
  virtual void Advance(absl::Duration delta) = 0;
  // The lease and retention the expiry tests use (short for real time).
  virtual absl::Duration ShortLease() const = 0;
  virtual absl::Duration ShortRetention() const = 0;
};

// A one-shot event on std::mutex (not absl::Notification: Debian's Abseil is
// not built for ThreadSanitizer, and the stores' tests must run under it).
class StdNotification {
 public:
  void Notify();
  // False when `timeout` passes first.
  bool WaitForNotificationWithTimeout(absl::Duration timeout);
  void WaitForNotification();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;  // mu_
};

struct ConformanceParam {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<StoreTestEnv>>()> make_env;
};

// Collects the results of Begin callbacks; safe to outlive (the callbacks
// share its state).
class BeginCollector {
 public:
  BeginCollector();

  // A callback that records its result; `on_result` (optional) then runs on
  // the callback's thread, with the result already in results().
  IdempotencyStore::BeginCallback Callback(
      std::function<void(const absl::StatusOr<BeginResult>&)> on_result =
          nullptr);
  // Waits until at least `count` results arrived; false on timeout.
  bool WaitForCount(size_t count, absl::Duration timeout = kCallbackTimeout);
  std::vector<absl::StatusOr<BeginResult>> results() const;

 private:
  struct State {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::vector<absl::StatusOr<BeginResult>> results;  // mu
  };
  std::shared_ptr<State> state_;
};

// Synchronous wrappers: the call's result, or kDeadlineExceeded ("no
// callback") after kCallbackTimeout.
absl::StatusOr<BeginResult> BeginAndWait(IdempotencyStore& store,
                                         const IdempotencyKey& key,
                                         absl::string_view request_hash,
                                         absl::Time wait_deadline);
absl::Status CompleteAndWait(IdempotencyStore& store, const IdempotencyKey& key,
                             absl::string_view lease_token,
                             StoredResult result);
absl::Status ReleaseAndWait(IdempotencyStore& store, const IdempotencyKey& key,
                            absl::string_view lease_token);
absl::Status SettleUnknownAndWait(IdempotencyStore& store,
                                  const IdempotencyKey& key,
                                  absl::string_view request_hash,
                                  const StoredResult& expected,
                                  StoredResult result);

class IdempotencyStoreConformanceTest
    : public ::testing::TestWithParam<ConformanceParam> {
 protected:
  void SetUp() override;

  // A deadline no test reaches.
  absl::Time FarDeadline() { return env_->Now() + absl::Hours(1); }
  std::unique_ptr<IdempotencyStore> NewStore(
      StoreTestEnv::StoreOptions options);

  std::unique_ptr<StoreTestEnv> env_;
  std::unique_ptr<IdempotencyStore> store_;
};

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENCY_STORE_CONFORMANCE_H_
