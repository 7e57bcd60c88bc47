// An in-memory EventStore for tests: maps, a fake-able clock for the leases,
// and a switch that makes every call answer kUnavailable. Not durable, no
// dedup-window expiry, no Prune; behaves like the real stores otherwise
// (event_store.h).
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_TESTING_FAKE_EVENT_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_TESTING_FAKE_EVENT_STORE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "adapters/events/event_store.h"
#include "common/clock.h"
#include "common/sync.h"

namespace clink_gateway::events {

class FakeEventStore : public EventStore {
 public:
  // `clock` (leases, receive times left unset) must outlive the store.
  explicit FakeEventStore(const Clock& clock) : clock_(clock) {}
  FakeEventStore() : FakeEventStore(SystemClock()) {}

  // While true every method answers kUnavailable.
  void SetUnavailable(bool unavailable) ABSL_LOCKS_EXCLUDED(mu_);
  // How many Claim calls were made (any outcome).
  int claim_calls() const ABSL_LOCKS_EXCLUDED(mu_);
  // How many Append calls were made (any outcome).
  int append_calls() const ABSL_LOCKS_EXCLUDED(mu_);
  // Every event stored, in append order.
  std::vector<StoredEvent> events() const ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<AppendResult> Append(const StoredEvent& event) override;
  absl::Status EnsureSubscription(const SubscriptionSpec& spec) override;
  absl::StatusOr<std::vector<Delivery>> Claim(
      absl::string_view merchant, absl::string_view subscription,
      absl::string_view consumer, int max_events,
      absl::Duration ack_deadline) override;
  absl::StatusOr<int> Acknowledge(
      absl::string_view merchant, absl::string_view subscription,
      const std::vector<std::string>& event_ids) override;
  absl::StatusOr<std::optional<absl::Time>> OldestUnacknowledged(
      absl::string_view merchant, absl::string_view subscription) override;
  absl::StatusOr<std::optional<StoredEvent>> Get(
      absl::string_view merchant, absl::string_view event_id) override;
  absl::StatusOr<ListPage> List(const ListQuery& query) override;
  absl::StatusOr<int64_t> Prune(absl::Time cutoff) override;

 private:
  struct Lease {
    int attempts = 0;
    absl::Time until = absl::InfinitePast();
    bool acked = false;
  };
  struct Subscription {
    SubscriptionSpec spec;
    std::map<size_t, Lease> leases;  // By index into events_.
  };

  absl::Status Check() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Subscription* Find(absl::string_view merchant, absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  mutable Mutex mu_;
  bool unavailable_ ABSL_GUARDED_BY(mu_) = false;
  int claim_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int append_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<StoredEvent> events_ ABSL_GUARDED_BY(mu_);  // Append order.
  // merchant + "/" + name.
  std::map<std::string, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::events

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_TESTING_FAKE_EVENT_STORE_H_
