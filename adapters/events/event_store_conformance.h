// The behaviour every EventStore must have, as a value-parameterized
// GoogleTest suite. A store's test instantiates it with an environment that
// opens stores over one backing state and controls their time:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Sqlite, EventStoreConformanceTest,
//       ::testing::Values(EventConformanceParam{"Sqlite", &MakeSqliteEnv}),
//       [](const auto& info) { return info.param.name; });
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_CONFORMANCE_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_CONFORMANCE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "gtest/gtest.h"

namespace clink_gateway::events {

// Opens stores over one backing state (a state directory, a Redis) and moves
// their time.
class EventStoreTestEnv {
 public:
  struct StoreOptions {
    size_t max_subscriptions_per_merchant = 100;
  };

  virtual ~EventStoreTestEnv() = default;

  // A store as one gateway process would have it. Every store of one
  // environment sees the same events and subscriptions, and several may be
  // open at once (two replicas; a reopened file).
  virtual absl::StatusOr<std::unique_ptr<EventStore>> OpenStore(
      StoreOptions options) = 0;
  // Now, as the stores see it (for receive times and start times).
  virtual absl::Time Now() = 0;
  // Lets `delta` pass for the stores' leases: a fake clock jumps; with real
  // time (Redis) this does nothing and the tests poll in bounded loops.
  virtual void Advance(absl::Duration delta) = 0;
  // An ack deadline the lease tests use (short for real time).
  virtual absl::Duration ShortAckDeadline() const = 0;
};

struct EventConformanceParam {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<EventStoreTestEnv>>()> make_env;
};

class EventStoreConformanceTest
    : public ::testing::TestWithParam<EventConformanceParam> {
 protected:
  void SetUp() override;

  std::unique_ptr<EventStore> OpenStore(
      EventStoreTestEnv::StoreOptions options = {});
  // An event of merchant "m1" with id `id`, received at base_time_ + `offset`,
  // its body naming both.
  StoredEvent NewEvent(absl::string_view id,
                       absl::string_view type = "order.succeeded",
                       absl::Duration offset = absl::ZeroDuration());

  std::unique_ptr<EventStoreTestEnv> env_;
  std::unique_ptr<EventStore> store_;
  // env_->Now() when the test started.
  absl::Time base_time_;
};

}  // namespace clink_gateway::events

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_CONFORMANCE_H_
