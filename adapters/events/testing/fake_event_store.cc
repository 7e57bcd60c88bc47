#include "adapters/events/testing/fake_event_store.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::events {
namespace {

bool Takes(const std::vector<std::string>& types, absl::string_view type) {
  return types.empty() ||
         std::find(types.begin(), types.end(), type) != types.end();
}

}  // namespace

void FakeEventStore::SetUnavailable(bool unavailable) {
  MutexLock lock(&mu_);
  unavailable_ = unavailable;
}

int FakeEventStore::claim_calls() const {
  MutexLock lock(&mu_);
  return claim_calls_;
}

int FakeEventStore::append_calls() const {
  MutexLock lock(&mu_);
  return append_calls_;
}

std::vector<StoredEvent> FakeEventStore::events() const {
  MutexLock lock(&mu_);
  return events_;
}

absl::Status FakeEventStore::Check() const {
  if (unavailable_) return absl::UnavailableError("fake event store is down");
  return absl::OkStatus();
}

FakeEventStore::Subscription* FakeEventStore::Find(absl::string_view merchant,
                                                   absl::string_view name) {
  const auto it = subscriptions_.find(absl::StrCat(merchant, "/", name));
  return it == subscriptions_.end() ? nullptr : &it->second;
}

absl::StatusOr<AppendResult> FakeEventStore::Append(const StoredEvent& event) {
  MutexLock lock(&mu_);
  ++append_calls_;
  if (absl::Status s = Check(); !s.ok()) return s;
  for (const StoredEvent& e : events_) {
    if (e.merchant == event.merchant && e.event_id == event.event_id) {
      return AppendResult::kDuplicate;
    }
  }
  events_.push_back(event);
  if (events_.back().receive_time == absl::InfinitePast()) {
    events_.back().receive_time = clock_.Now();
  }
  return AppendResult::kStored;
}

absl::Status FakeEventStore::EnsureSubscription(const SubscriptionSpec& spec) {
  MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  const std::string key = absl::StrCat(spec.merchant, "/", spec.name);
  const auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) {
    subscriptions_[key].spec = spec;
    return absl::OkStatus();
  }
  const std::set<std::string> have(it->second.spec.event_types.begin(),
                                   it->second.spec.event_types.end());
  const std::set<std::string> want(spec.event_types.begin(),
                                   spec.event_types.end());
  if (have != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        "subscription ", spec.name, " exists with other event types"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Delivery>> FakeEventStore::Claim(
    absl::string_view merchant, absl::string_view subscription,
    absl::string_view consumer, int max_events, absl::Duration ack_deadline) {
  MutexLock lock(&mu_);
  ++claim_calls_;
  if (absl::Status s = Check(); !s.ok()) return s;
  Subscription* sub = Find(merchant, subscription);
  if (sub == nullptr) return absl::NotFoundError("no such subscription");
  const absl::Time now = clock_.Now();
  std::vector<Delivery> out;
  auto deliver = [&](size_t i, Lease& lease) {
    ++lease.attempts;
    lease.until = now + ack_deadline;
    out.push_back({events_[i], lease.attempts});
  };
  // Expired leases first, then new events.
  for (auto& [i, lease] : sub->leases) {
    if (static_cast<int>(out.size()) >= max_events) break;
    if (!lease.acked && lease.until <= now) deliver(i, lease);
  }
  for (size_t i = 0; i < events_.size(); ++i) {
    if (static_cast<int>(out.size()) >= max_events) break;
    const StoredEvent& e = events_[i];
    if (e.merchant != merchant || sub->leases.count(i) > 0 ||
        e.receive_time < sub->spec.start_time) {
      continue;
    }
    Lease& lease = sub->leases[i];
    if (!Takes(sub->spec.event_types, e.type)) {
      lease.acked = true;
      continue;
    }
    deliver(i, lease);
  }
  return out;
}

absl::StatusOr<int> FakeEventStore::Acknowledge(
    absl::string_view merchant, absl::string_view subscription,
    const std::vector<std::string>& event_ids) {
  MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  Subscription* sub = Find(merchant, subscription);
  if (sub == nullptr) return absl::NotFoundError("no such subscription");
  int acked = 0;
  for (auto& [i, lease] : sub->leases) {
    if (lease.acked) continue;
    if (std::find(event_ids.begin(), event_ids.end(), events_[i].event_id) !=
        event_ids.end()) {
      lease.acked = true;
      ++acked;
    }
  }
  return acked;
}

absl::StatusOr<std::optional<absl::Time>> FakeEventStore::OldestUnacknowledged(
    absl::string_view merchant, absl::string_view subscription) {
  MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  Subscription* sub = Find(merchant, subscription);
  if (sub == nullptr) return absl::NotFoundError("no such subscription");
  for (size_t i = 0; i < events_.size(); ++i) {
    const StoredEvent& e = events_[i];
    if (e.merchant != merchant || e.receive_time < sub->spec.start_time ||
        !Takes(sub->spec.event_types, e.type)) {
      continue;
    }
    const auto it = sub->leases.find(i);
    if (it == sub->leases.end() || !it->second.acked) return e.receive_time;
  }
  return std::nullopt;
}

absl::StatusOr<std::optional<StoredEvent>> FakeEventStore::Get(
    absl::string_view merchant, absl::string_view event_id) {
  MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  for (const StoredEvent& e : events_) {
    if (e.merchant == merchant && e.event_id == event_id) return e;
  }
  return std::nullopt;
}

absl::StatusOr<ListPage> FakeEventStore::List(const ListQuery& query) {
  MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  size_t offset = 0;
  if (!query.page_token.empty() &&
      !absl::SimpleAtoi(query.page_token, &offset)) {
    return absl::InvalidArgumentError("bad page token");
  }
  std::vector<StoredEvent> matching;
  for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
    if (it->merchant == query.merchant && Takes(query.event_types, it->type) &&
        it->receive_time >= query.start_time &&
        it->receive_time < query.end_time) {
      matching.push_back(*it);
    }
  }
  ListPage page;
  const size_t end =
      std::min(matching.size(), offset + static_cast<size_t>(query.page_size));
  for (size_t i = offset; i < end; ++i) page.events.push_back(matching[i]);
  if (end < matching.size()) page.next_page_token = absl::StrCat(end);
  return page;
}

absl::StatusOr<int64_t> FakeEventStore::Prune(absl::Time cutoff) {
  MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  return 0;  // Leases index events_: nothing is ever dropped here.
}

}  // namespace clink_gateway::events
