#include "adapters/idempotency/memory_idempotency_store.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace clink_gateway::idempotency {
namespace {

// The longest the timer thread sleeps while it has a lease or record to time,
// so a clock that jumps (or is faked) is re-read at least this often.
constexpr absl::Duration kMaxTimerSleep = absl::Milliseconds(200);

KeyWaiters::Options WaiterOptions(
    const MemoryIdempotencyStore::Options& options) {
  KeyWaiters::Options waiters;
  waiters.max_per_key = options.max_waiters_per_key;
  waiters.max_total = options.max_waiters;
  waiters.clock = options.clock;
  return waiters;
}

}  // namespace

MemoryIdempotencyStore::MemoryIdempotencyStore()
    : MemoryIdempotencyStore(Options()) {}

MemoryIdempotencyStore::MemoryIdempotencyStore(Options options)
    : retention_(options.retention),
      lease_(options.in_flight_lease),
      max_keys_(options.max_keys),
      clock_(options.clock != nullptr ? *options.clock : SystemClock()),
      waiters_(WaiterOptions(options)),
      timer_([this] { TimerLoop(); }) {}

MemoryIdempotencyStore::~MemoryIdempotencyStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutting_down_ = true;
    timer_cv_.notify_one();
  }
  timer_.join();
  // Answers every waiter (and any hand-off not yet delivered) kUnavailable.
  waiters_.Shutdown();
}

void MemoryIdempotencyStore::Begin(const IdempotencyKey& key,
                                   absl::string_view request_hash,
                                   absl::Time wait_deadline,
                                   BeginCallback done) {
  const std::string digest = key.Digest();
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = clock_.Now();
    ProcessDueLocked(now, &ready);
    auto it = records_.find(digest);
    if (shutting_down_) {
      // Only reachable from a callback the destructor runs.
      ready.push_back({std::move(done), StoreShuttingDownError()});
    } else if (it == records_.end()) {
      if (records_.size() >= max_keys_) {
        ready.push_back(
            {std::move(done), absl::ResourceExhaustedError(
                                  "idempotency store is full of live keys")});
      } else {
        Record& record = records_[digest];
        record.request_hash = std::string(request_hash);
        ready.push_back(
            {std::move(done), ClaimedResult(ClaimLocked(digest, record, now))});
      }
    } else if (Record& record = it->second;
               record.request_hash != request_hash) {
      ready.push_back(
          {std::move(done), BeginResultOf(BeginResult::Kind::kMismatch)});
    } else if (record.final) {
      ready.push_back({std::move(done), CompletedResult(record.result)});
    } else {
      switch (waiters_.Wait(digest, wait_deadline, done)) {
        case KeyWaiters::Admission::kWaiting:
          break;
        case KeyWaiters::Admission::kShutDown:
          ready.push_back({std::move(done), StoreShuttingDownError()});
          break;
        case KeyWaiters::Admission::kDeadlinePassed:
        case KeyWaiters::Admission::kAborted:
        case KeyWaiters::Admission::kKeyFull:
        case KeyWaiters::Admission::kAllFull:
          // The caller is told the first call is still running (retry with
          // the same key); nothing is sent for it.
          ready.push_back(
              {std::move(done), BeginResultOf(BeginResult::Kind::kInProgress)});
          break;
      }
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
    std::lock_guard<std::mutex> lock(mu_);
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
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = clock_.Now();
    ProcessDueLocked(now, &ready);
    if (Record* record = FindHeldLocked(digest, lease_token, &status)) {
      lease_index_.erase({record->lease_expiry, digest});
      if (std::optional<BeginCallback> next = waiters_.TakeFirst(digest)) {
        // The earliest waiter becomes the holder; the others wait on it. Its
        // answer runs on the waiters' thread, not here: its call may fail at
        // once and release the key again, which must queue the next hand-off
        // rather than recurse into it.
        waiters_.Post(*std::move(next),
                      ClaimedResult(ClaimLocked(digest, *record, now)));
      } else {
        expiry_index_.erase({record->expiry, digest});
        records_.erase(digest);
      }
    }
  }
  RunReady(ready);
  std::move(done)(std::move(status));
}

void MemoryIdempotencyStore::SettleUnknown(const IdempotencyKey& key,
                                           absl::string_view request_hash,
                                           const StoredResult& expected,
                                           StoredResult result,
                                           DoneCallback done) {
  absl::Status status = CheckSettleableUnknown(expected);
  if (status.ok()) {
    const std::string digest = key.Digest();
    const std::string expected_bytes = SerializeStoredResult(expected);
    std::vector<Ready> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ProcessDueLocked(clock_.Now(), &ready);
      auto it = records_.find(digest);
      if (it == records_.end() || !it->second.final ||
          it->second.request_hash != request_hash ||
          SerializeStoredResult(it->second.result) != expected_bytes) {
        status = NotTheUnknownResultError();
      } else {
        it->second.result = std::move(result);  // The expiry stays.
      }
    }
    RunReady(ready);
  }
  std::move(done)(std::move(status));
}

void MemoryIdempotencyStore::AbortWaits() { waiters_.AbortAll(); }

size_t MemoryIdempotencyStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_.size();
}

size_t MemoryIdempotencyStore::waiting() const { return waiters_.size(); }

uint64_t MemoryIdempotencyStore::waiters_refused() const {
  return waiters_.refused();
}

void MemoryIdempotencyStore::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutting_down_) {
    const absl::Time now = clock_.Now();
    std::vector<Ready> ready;
    ProcessDueLocked(now, &ready);
    if (!ready.empty()) {
      lock.unlock();
      RunReady(ready);
      lock.lock();
      continue;
    }
    absl::Time next = absl::InfiniteFuture();
    if (!lease_index_.empty()) next = lease_index_.begin()->first;
    timer_wake_at_ = next;
    if (next == absl::InfiniteFuture()) {
      timer_cv_.wait(lock);
    } else {
      timer_cv_.wait_for(lock, absl::ToChronoNanoseconds(
                                   std::min(next - now, kMaxTimerSleep)));
    }
    // Awake: nobody needs to signal until the next wait is computed.
    timer_wake_at_ = absl::InfinitePast();
  }
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
    // Kept a whole retention period from now, like any result: the claim's
    // own expiry may be about to pass, and a retry must find the UNKNOWN.
    SetExpiryLocked(digest, it->second, now + retention_);
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
    if (!record.final) {
      lease_index_.erase({record.lease_expiry, digest});
      for (BeginCallback& done : waiters_.TakeAll(digest)) {
        ready->push_back(
            {std::move(done), BeginResultOf(BeginResult::Kind::kInProgress)});
      }
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
  // A final result wakes every waiter (on this thread, once the lock is
  // dropped): none of them calls Clink, so nothing chains.
  for (BeginCallback& done : waiters_.TakeAll(digest)) {
    ready->push_back({std::move(done), CompletedResult(record.result)});
  }
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

MemoryIdempotencyStore::Record* MemoryIdempotencyStore::FindHeldLocked(
    const std::string& digest, absl::string_view lease_token,
    absl::Status* error) {
  auto it = records_.find(digest);
  if (it == records_.end() || it->second.final ||
      it->second.lease_token != lease_token) {
    *error = LeaseNotHeldError();
    return nullptr;
  }
  return &it->second;
}

void MemoryIdempotencyStore::WakeTimerForLocked(absl::Time when) {
  if (when < timer_wake_at_) timer_cv_.notify_one();
}

void MemoryIdempotencyStore::RunReady(std::vector<Ready>& ready) {
  for (Ready& r : ready) std::move(r.done)(std::move(r.result));
  ready.clear();
}

}  // namespace clink_gateway::idempotency
