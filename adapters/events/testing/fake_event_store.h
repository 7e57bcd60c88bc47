// Test helper: a map-based, in-memory EventStore. Append deduplicates on
// (merchant, event id) forever (no dedup window); subscriptions keep one
// cursor set per name; Claim hands out unacknowledged events in receive order
// with leases on the fake's own clock (absl::Now()). SetUnavailable makes
// every method answer UNAVAILABLE (the listener's 503 path). Thread-safe.
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_TESTING_FAKE_EVENT_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_TESTING_FAKE_EVENT_STORE_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "common/sync.h"

namespace clink_gateway::events::testing {

class FakeEventStore : public EventStore {
 public:
  // While true, every method answers UNAVAILABLE and changes nothing.
  void SetUnavailable(bool unavailable) {
    MutexLock lock(&mu_);
    unavailable_ = unavailable;
  }

  // How many Append calls there were (stored, duplicate or refused).
  int append_calls() const {
    MutexLock lock(&mu_);
    return append_calls_;
  }

  // Every event stored, in append order.
  std::vector<StoredEvent> events() const {
    MutexLock lock(&mu_);
    return events_;
  }

  absl::StatusOr<AppendResult> Append(const StoredEvent& event) override {
    MutexLock lock(&mu_);
    ++append_calls_;
    if (unavailable_) return Unavailable();
    if (Find(event.merchant, event.event_id) != nullptr) {
      return AppendResult::kDuplicate;
    }
    events_.push_back(event);
    return AppendResult::kStored;
  }

  absl::Status EnsureSubscription(const SubscriptionSpec& spec) override {
    MutexLock lock(&mu_);
    if (unavailable_) return Unavailable();
    auto [it, inserted] =
        subscriptions_.try_emplace(Key(spec.merchant, spec.name));
    std::vector<std::string> types = spec.event_types;
    std::sort(types.begin(), types.end());
    types.erase(std::unique(types.begin(), types.end()), types.end());
    if (!inserted) {
      if (it->second.spec.event_types != types) {
        return absl::FailedPreconditionError(
            "subscription exists with other event types");
      }
      return absl::OkStatus();
    }
    it->second.spec = spec;
    it->second.spec.event_types = std::move(types);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Delivery>> Claim(
      absl::string_view merchant, absl::string_view subscription,
      absl::string_view consumer, int max_events,
      absl::Duration ack_deadline) override {
    MutexLock lock(&mu_);
    if (unavailable_) return Unavailable();
    Subscription* sub = FindSubscription(merchant, subscription);
    if (sub == nullptr) return absl::NotFoundError("no such subscription");
    const absl::Time now = absl::Now();
    std::vector<Delivery> out;
    for (const StoredEvent& event : events_) {
      if (static_cast<int>(out.size()) >= max_events) break;
      if (!Takes(*sub, event)) continue;
      State& state = sub->states[event.event_id];
      if (state.acked || state.lease_until > now) continue;
      if (!Wants(*sub, event.type)) {
        state.acked = true;
        continue;
      }
      ++state.attempts;
      state.lease_until = now + ack_deadline;
      state.consumer = std::string(consumer);
      out.push_back(Delivery{event, state.attempts});
    }
    return out;
  }

  absl::StatusOr<int> Acknowledge(
      absl::string_view merchant, absl::string_view subscription,
      const std::vector<std::string>& event_ids) override {
    MutexLock lock(&mu_);
    if (unavailable_) return Unavailable();
    Subscription* sub = FindSubscription(merchant, subscription);
    if (sub == nullptr) return absl::NotFoundError("no such subscription");
    int acked = 0;
    for (const std::string& id : event_ids) {
      const StoredEvent* event = Find(sub->spec.merchant, id);
      if (event == nullptr || !Takes(*sub, *event)) continue;
      State& state = sub->states[id];
      if (state.acked) continue;
      state.acked = true;
      ++acked;
    }
    return acked;
  }

  absl::StatusOr<std::optional<absl::Time>> OldestUnacknowledged(
      absl::string_view merchant, absl::string_view subscription) override {
    MutexLock lock(&mu_);
    if (unavailable_) return Unavailable();
    Subscription* sub = FindSubscription(merchant, subscription);
    if (sub == nullptr) return absl::NotFoundError("no such subscription");
    std::optional<absl::Time> oldest;
    for (const StoredEvent& event : events_) {
      if (!Takes(*sub, event) || !Wants(*sub, event.type)) continue;
      const auto it = sub->states.find(event.event_id);
      if (it != sub->states.end() && it->second.acked) continue;
      if (!oldest.has_value() || event.receive_time < *oldest) {
        oldest = event.receive_time;
      }
    }
    return oldest;
  }

  absl::StatusOr<std::optional<StoredEvent>> Get(
      absl::string_view merchant, absl::string_view event_id) override {
    MutexLock lock(&mu_);
    if (unavailable_) return Unavailable();
    const StoredEvent* event = Find(merchant, event_id);
    if (event == nullptr) return std::optional<StoredEvent>();
    return std::optional<StoredEvent>(*event);
  }

  // Page tokens are the offset into the matching events, newest first.
  absl::StatusOr<ListPage> List(const ListQuery& query) override {
    MutexLock lock(&mu_);
    if (unavailable_) return Unavailable();
    size_t offset = 0;
    if (!query.page_token.empty() &&
        !absl::SimpleAtoi(query.page_token, &offset)) {
      return absl::InvalidArgumentError("bad page token");
    }
    std::vector<const StoredEvent*> matching;
    for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
      if (it->merchant != query.merchant ||
          it->receive_time < query.start_time ||
          it->receive_time >= query.end_time) {
        continue;
      }
      if (!query.event_types.empty() &&
          std::find(query.event_types.begin(), query.event_types.end(),
                    it->type) == query.event_types.end()) {
        continue;
      }
      matching.push_back(&*it);
    }
    ListPage page;
    const size_t end = std::min(
        matching.size(), offset + static_cast<size_t>(query.page_size));
    for (size_t i = offset; i < end; ++i) page.events.push_back(*matching[i]);
    if (end < matching.size()) page.next_page_token = std::to_string(end);
    return page;
  }

  absl::StatusOr<int64_t> Prune(absl::Time cutoff) override {
    MutexLock lock(&mu_);
    if (unavailable_) return Unavailable();
    const size_t before = events_.size();
    events_.erase(std::remove_if(events_.begin(), events_.end(),
                                 [cutoff](const StoredEvent& e) {
                                   return e.receive_time < cutoff;
                                 }),
                  events_.end());
    return static_cast<int64_t>(before - events_.size());
  }

 private:
  struct State {
    bool acked = false;
    int32_t attempts = 0;
    absl::Time lease_until = absl::InfinitePast();
    std::string consumer;
  };
  struct Subscription {
    SubscriptionSpec spec;
    std::map<std::string, State> states;  // By event id.
  };

  static std::pair<std::string, std::string> Key(absl::string_view merchant,
                                                 absl::string_view name) {
    return {std::string(merchant), std::string(name)};
  }
  static absl::Status Unavailable() {
    return absl::UnavailableError("fake event store set unavailable");
  }
  static bool Takes(const Subscription& sub, const StoredEvent& event) {
    return event.merchant == sub.spec.merchant &&
           event.receive_time >= sub.spec.start_time;
  }
  static bool Wants(const Subscription& sub, const std::string& type) {
    return sub.spec.event_types.empty() ||
           std::binary_search(sub.spec.event_types.begin(),
                              sub.spec.event_types.end(), type);
  }

  const StoredEvent* Find(absl::string_view merchant,
                          absl::string_view event_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const StoredEvent& event : events_) {
      if (event.merchant == merchant && event.event_id == event_id) {
        return &event;
      }
    }
    return nullptr;
  }
  Subscription* FindSubscription(absl::string_view merchant,
                                 absl::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const auto it = subscriptions_.find(Key(merchant, name));
    return it == subscriptions_.end() ? nullptr : &it->second;
  }

  mutable Mutex mu_;
  bool unavailable_ ABSL_GUARDED_BY(mu_) = false;
  int append_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<StoredEvent> events_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, Subscription> subscriptions_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::events::testing

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_TESTING_FAKE_EVENT_STORE_H_
