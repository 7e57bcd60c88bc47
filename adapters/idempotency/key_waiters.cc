#include "adapters/idempotency/key_waiters.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/status/status.h"

namespace clink_gateway::idempotency {
namespace {

// The longest the thread sleeps while a deadline is pending, so a clock that
// jumps (or is faked) is re-read at least this often.
constexpr absl::Duration kMaxSleep = absl::Milliseconds(200);

BeginResult InProgress() {
  BeginResult result;
  result.kind = BeginResult::Kind::kInProgress;
  return result;
}

}  // namespace

KeyWaiters::KeyWaiters() : KeyWaiters(Options()) {}

KeyWaiters::KeyWaiters(Options options)
    : max_per_key_(options.max_per_key),
      max_total_(options.max_total),
      clock_(options.clock != nullptr ? *options.clock : SystemClock()),
      thread_([this] { Loop(); }) {}

KeyWaiters::~KeyWaiters() { Shutdown(); }

KeyWaiters::Admission KeyWaiters::Wait(const std::string& key,
                                       absl::Time deadline, Callback& done) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return Admission::kShutDown;
  if (aborted_) return Admission::kAborted;
  if (deadline <= clock_.Now()) return Admission::kDeadlinePassed;
  auto it = waiters_.find(key);
  if (it != waiters_.end() && it->second.size() >= max_per_key_) {
    ++refused_;
    return Admission::kKeyFull;
  }
  if (total_ >= max_total_) {
    ++refused_;
    return Admission::kAllFull;
  }
  if (it == waiters_.end()) it = waiters_.try_emplace(key).first;
  const uint64_t id = next_id_++;
  it->second.emplace(id, Waiter{deadline, std::move(done)});
  auto [entry, inserted] = deadlines_.emplace(deadline, id, key);
  ++total_;
  // The thread sleeps until the earliest deadline: wake it for an earlier one.
  if (entry == deadlines_.begin()) cv_.notify_one();
  return Admission::kWaiting;
}

std::optional<KeyWaiters::Callback> KeyWaiters::TakeFirst(
    const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = waiters_.find(key);
  if (it == waiters_.end() || it->second.empty()) return std::nullopt;
  auto first = it->second.begin();
  deadlines_.erase({first->second.deadline, first->first, key});
  Callback done = std::move(first->second.done);
  it->second.erase(first);
  --total_;
  if (it->second.empty()) waiters_.erase(it);
  return done;
}

std::vector<KeyWaiters::Callback> KeyWaiters::TakeAll(const std::string& key) {
  std::vector<Callback> all;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = waiters_.find(key);
  if (it == waiters_.end()) return all;
  all.reserve(it->second.size());
  for (auto& [id, waiter] : it->second) {
    deadlines_.erase({waiter.deadline, id, key});
    all.push_back(std::move(waiter.done));
  }
  total_ -= it->second.size();
  waiters_.erase(it);
  return all;
}

void KeyWaiters::Post(Callback done, absl::StatusOr<BeginResult> result,
                      absl::AnyInvocable<void() &&> if_dropped) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      posted_.push_back(
          Posted{std::move(done), std::move(result), std::move(if_dropped)});
      cv_.notify_one();
      return;
    }
  }
  if (if_dropped) std::move(if_dropped)();
  std::move(done)(StoreShuttingDownError());
}

void KeyWaiters::AbortAll() {
  std::vector<Callback> aborted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    aborted.reserve(total_);
    for (auto& [key, waiters] : waiters_) {
      for (auto& [id, waiter] : waiters)
        aborted.push_back(std::move(waiter.done));
    }
    waiters_.clear();
    deadlines_.clear();
    total_ = 0;
  }
  for (Callback& done : aborted) std::move(done)(InProgress());
}

void KeyWaiters::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  std::vector<Callback> waiting;
  std::deque<Posted> posted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, waiters] : waiters_) {
      for (auto& [id, waiter] : waiters)
        waiting.push_back(std::move(waiter.done));
    }
    waiters_.clear();
    deadlines_.clear();
    total_ = 0;
    posted.swap(posted_);
  }
  for (Posted& p : posted) {
    if (p.if_dropped) std::move(p.if_dropped)();
    std::move(p.done)(StoreShuttingDownError());
  }
  for (Callback& done : waiting) std::move(done)(StoreShuttingDownError());
}

size_t KeyWaiters::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

uint64_t KeyWaiters::refused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

void KeyWaiters::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    // Hand-offs first, in order: each runs with the lock dropped, so what it
    // starts (a call that fails at once and Releases the key again) only
    // queues the next hand-off here.
    if (!posted_.empty()) {
      Posted p = std::move(posted_.front());
      posted_.pop_front();
      lock.unlock();
      std::move(p.done)(std::move(p.result));
      lock.lock();
      continue;
    }
    const absl::Time now = clock_.Now();
    std::vector<Callback> expired;
    while (!deadlines_.empty() && std::get<0>(*deadlines_.begin()) <= now) {
      auto node = deadlines_.extract(deadlines_.begin());
      const auto& [deadline, id, key] = node.value();
      auto it = waiters_.find(key);
      if (it == waiters_.end()) continue;  // Cannot happen.
      auto waiter = it->second.extract(id);
      if (waiter.empty()) continue;  // Cannot happen.
      expired.push_back(std::move(waiter.mapped().done));
      --total_;
      if (it->second.empty()) waiters_.erase(it);
    }
    if (!expired.empty()) {
      lock.unlock();
      for (Callback& done : expired) std::move(done)(InProgress());
      lock.lock();
      continue;
    }
    if (deadlines_.empty()) {
      cv_.wait(lock);
    } else {
      const absl::Duration sleep =
          std::min(std::get<0>(*deadlines_.begin()) - now, kMaxSleep);
      cv_.wait_for(lock, absl::ToChronoNanoseconds(sleep));
    }
  }
}

}  // namespace clink_gateway::idempotency
