#include "adapters/idempotency/memory_idempotency_store.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace clink_gateway::idempotency {
namespace {

// The longest the timer thread sleeps while it has a deadline to watch, so a
// clock that jumps (or is faked) is re-read at least this often.
constexpr absl::Duration kMaxTimerSleep = absl::Milliseconds(200);

BeginResult Claimed(std::string lease_token) {
  BeginResult result;
  result.kind = BeginResult::Kind::kClaimed;
  result.lease_token = std::move(lease_token);
  return result;
}

BeginResult Completed(StoredResult stored) {
  BeginResult result;
  result.kind = BeginResult::Kind::kCompleted;
  result.result = std::move(stored);
  return result;
}

BeginResult OfKind(BeginResult::Kind kind) {
  BeginResult result;
  result.kind = kind;
  return result;
}

absl::Status NotHeld() {
  return absl::FailedPreconditionError(
      "the lease token no longer holds this idempotency key (its lease "
      "expired, or it was completed or released)");
}

}  // namespace

MemoryIdempotencyStore::MemoryIdempotencyStore()
    : MemoryIdempotencyStore(Options()) {}

MemoryIdempotencyStore::MemoryIdempotencyStore(Options options)
    : retention_(options.retention),
      lease_(options.in_flight_lease),
      max_keys_(options.max_keys),
      clock_(options.clock != nullptr ? *options.clock : SystemClock()),
      timer_([this] { TimerLoop(); }) {}

MemoryIdempotencyStore::~MemoryIdempotencyStore() {
  std::vector<Ready> ready;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [digest, record] : records_) {
      for (auto& [id, waiter] : record.waiters) {
        ready.push_back(
            {std::move(waiter.done),
             absl::UnavailableError("idempotency store shutting down")});
      }
      record.waiters.clear();
    }
    waiter_deadlines_.clear();
    timer_cv_.Signal();
  }
  timer_.join();
  RunReady(ready);
}

void MemoryIdempotencyStore::Begin(const IdempotencyKey& key,
                                   absl::string_view request_hash,
                                   absl::Time wait_deadline,
                                   BeginCallback done) {
  const std::string digest = key.Digest();
  std::vector<Ready> ready;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    ProcessDueLocked(now, &ready);
    auto it = records_.find(digest);
    if (shutting_down_) {
      // Only reachable from a callback the destructor runs.
      ready.push_back(
          {std::move(done),
           absl::UnavailableError("idempotency store shutting down")});
    } else if (it == records_.end()) {
      if (records_.size() >= max_keys_) {
        ready.push_back(
            {std::move(done), absl::ResourceExhaustedError(
                                  "idempotency store is full of live keys")});
      } else {
        Record& record = records_[digest];
        record.request_hash = std::string(request_hash);
        ready.push_back(
            {std::move(done), Claimed(ClaimLocked(digest, record, now))});
      }
    } else if (Record& record = it->second;
               record.request_hash != request_hash) {
      ready.push_back({std::move(done), OfKind(BeginResult::Kind::kMismatch)});
    } else if (record.final) {
      ready.push_back({std::move(done), Completed(record.result)});
    } else if (wait_deadline <= now || waits_aborted_) {
      ready.push_back(
          {std::move(done), OfKind(BeginResult::Kind::kInProgress)});
    } else {
      const uint64_t id = next_waiter_id_++;
      record.waiters.emplace(id, Waiter{wait_deadline, std::move(done)});
      waiter_deadlines_.emplace(wait_deadline, id, digest);
      WakeTimerForLocked(wait_deadline);
    }
  }
  RunReady(ready);
}

void MemoryIdempotencyStore::Complete(const IdempotencyKey& key,
                                      absl::string_view lease_token,
                                      StoredResult result, DoneCallback done) {
  const std::string digest = key.Digest();
  std::vector<Ready> ready;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    ProcessDueLocked(now, &ready);
    if (Record* record = FindHeldLocked(digest, lease_token, &status)) {
      FinishLocked(digest, *record, std::move(result), &ready);
      SetExpiryLocked(digest, *record, now + retention_);
    }
  }
  RunReady(ready);
  std::move(done)(std::move(status));
}

void MemoryIdempotencyStore::Release(const IdempotencyKey& key,
                                     absl::string_view lease_token,
                                     DoneCallback done) {
  const std::string digest = key.Digest();
  std::vector<Ready> ready;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    ProcessDueLocked(now, &ready);
    if (Record* record = FindHeldLocked(digest, lease_token, &status)) {
      lease_index_.erase({record->lease_expiry, digest});
      if (record->waiters.empty()) {
        expiry_index_.erase({record->expiry, digest});
        records_.erase(digest);
      } else {
        // The earliest waiter becomes the holder; the others wait on it.
        auto first = record->waiters.begin();
        waiter_deadlines_.erase({first->second.deadline, first->first, digest});
        BeginCallback waiter_done = std::move(first->second.done);
        record->waiters.erase(first);
        ready.push_back({std::move(waiter_done),
                         Claimed(ClaimLocked(digest, *record, now))});
      }
    }
  }
  RunReady(ready);
  std::move(done)(std::move(status));
}

void MemoryIdempotencyStore::AbortWaits() {
  std::vector<Ready> ready;
  {
    absl::MutexLock lock(&mu_);
    waits_aborted_ = true;
    // Every waiter has exactly one entry here.
    for (const auto& [deadline, id, digest] : waiter_deadlines_) {
      auto it = records_.find(digest);
      if (it == records_.end()) continue;  // Cannot happen.
      auto waiter = it->second.waiters.extract(id);
      if (waiter.empty()) continue;  // Cannot happen.
      ready.push_back({std::move(waiter.mapped().done),
                       OfKind(BeginResult::Kind::kInProgress)});
    }
    waiter_deadlines_.clear();
  }
  RunReady(ready);
}

size_t MemoryIdempotencyStore::size() const {
  absl::MutexLock lock(&mu_);
  return records_.size();
}

size_t MemoryIdempotencyStore::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiter_deadlines_.size();
}

void MemoryIdempotencyStore::TimerLoop() {
  mu_.Lock();
  while (!shutting_down_) {
    const absl::Time now = clock_.Now();
    std::vector<Ready> ready;
    ProcessDueLocked(now, &ready);
    if (!ready.empty()) {
      mu_.Unlock();
      RunReady(ready);
      mu_.Lock();
      continue;
    }
    absl::Time next = absl::InfiniteFuture();
    if (!lease_index_.empty()) next = lease_index_.begin()->first;
    if (!waiter_deadlines_.empty()) {
      next = std::min(next, std::get<0>(*waiter_deadlines_.begin()));
    }
    timer_wake_at_ = next;
    if (next == absl::InfiniteFuture()) {
      timer_cv_.Wait(&mu_);
    } else {
      timer_cv_.WaitWithTimeout(&mu_, std::min(next - now, kMaxTimerSleep));
    }
    // Awake: nobody needs to signal until the next wait is computed.
    timer_wake_at_ = absl::InfinitePast();
  }
  mu_.Unlock();
}

void MemoryIdempotencyStore::ProcessDueLocked(absl::Time now,
                                              std::vector<Ready>* ready) {
  // Holders that vanished: settle as abandoned (their waiters get that).
  while (!lease_index_.empty() && lease_index_.begin()->first <= now) {
    const std::string digest = lease_index_.begin()->second;
    auto it = records_.find(digest);
    if (it == records_.end()) {  // Cannot happen: indexes follow records_.
      lease_index_.erase(lease_index_.begin());
      continue;
    }
    FinishLocked(digest, it->second, AbandonedResult(), ready);
  }
  // Waiters whose deadline passed.
  while (!waiter_deadlines_.empty() &&
         std::get<0>(*waiter_deadlines_.begin()) <= now) {
    auto node = waiter_deadlines_.extract(waiter_deadlines_.begin());
    const auto& [deadline, id, digest] = node.value();
    auto it = records_.find(digest);
    if (it == records_.end()) continue;
    auto waiter = it->second.waiters.extract(id);
    if (waiter.empty()) continue;
    ready->push_back({std::move(waiter.mapped().done),
                      OfKind(BeginResult::Kind::kInProgress)});
  }
  // Records past their retention.
  while (!expiry_index_.empty() && expiry_index_.begin()->first <= now) {
    auto node = expiry_index_.extract(expiry_index_.begin());
    const std::string& digest = node.value().second;
    auto it = records_.find(digest);
    if (it == records_.end()) continue;
    Record& record = it->second;
    // An in-flight record outlives its lease, so it was settled above and
    // has no waiters; stay consistent even if that ever changes.
    if (!record.final) lease_index_.erase({record.lease_expiry, digest});
    RemoveWaiterDeadlinesLocked(digest, record);
    for (auto& [id, waiter] : record.waiters) {
      ready->push_back(
          {std::move(waiter.done), OfKind(BeginResult::Kind::kInProgress)});
    }
    records_.erase(it);
  }
}

void MemoryIdempotencyStore::FinishLocked(const std::string& digest,
                                          Record& record, StoredResult result,
                                          std::vector<Ready>* ready) {
  lease_index_.erase({record.lease_expiry, digest});
  record.final = true;
  record.lease_token.clear();
  record.result = std::move(result);
  RemoveWaiterDeadlinesLocked(digest, record);
  for (auto& [id, waiter] : record.waiters) {
    ready->push_back({std::move(waiter.done), Completed(record.result)});
  }
  record.waiters.clear();
}

std::string MemoryIdempotencyStore::ClaimLocked(const std::string& digest,
                                                Record& record,
                                                absl::Time now) {
  record.final = false;
  record.lease_token = NewLeaseToken();
  record.lease_expiry = now + lease_;
  lease_index_.emplace(record.lease_expiry, digest);
  SetExpiryLocked(digest, record, now + std::max(retention_, lease_));
  WakeTimerForLocked(record.lease_expiry);
  return record.lease_token;
}

void MemoryIdempotencyStore::SetExpiryLocked(const std::string& digest,
                                             Record& record,
                                             absl::Time expiry) {
  expiry_index_.erase({record.expiry, digest});
  record.expiry = expiry;
  expiry_index_.emplace(expiry, digest);
}

void MemoryIdempotencyStore::RemoveWaiterDeadlinesLocked(
    const std::string& digest, const Record& record) {
  for (const auto& [id, waiter] : record.waiters) {
    waiter_deadlines_.erase({waiter.deadline, id, digest});
  }
}

MemoryIdempotencyStore::Record* MemoryIdempotencyStore::FindHeldLocked(
    const std::string& digest, absl::string_view lease_token,
    absl::Status* error) {
  auto it = records_.find(digest);
  if (it == records_.end() || it->second.final ||
      it->second.lease_token != lease_token) {
    *error = NotHeld();
    return nullptr;
  }
  return &it->second;
}

void MemoryIdempotencyStore::WakeTimerForLocked(absl::Time when) {
  if (when < timer_wake_at_) timer_cv_.Signal();
}

void MemoryIdempotencyStore::RunReady(std::vector<Ready>& ready) {
  for (Ready& r : ready) std::move(r.done)(std::move(r.result));
  ready.clear();
}

}  // namespace clink_gateway::idempotency
