#include "server/task_pool.h"

#include <algorithm>

namespace clink_gateway::server {

TaskPool::TaskPool(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    threads_.emplace_back([this] { Work(); });
  }
}

TaskPool::~TaskPool() { Stop(); }

void TaskPool::Post(std::function<void()> task) {
  MutexLock lock(&mu_);
  if (stopping_) return;
  ready_.push_back(std::move(task));
  cv_.Signal();
}

void TaskPool::PostAfter(absl::Duration delay, std::function<void()> task) {
  MutexLock lock(&mu_);
  if (stopping_) return;
  delayed_.emplace(std::make_pair(absl::Now() + delay, sequence_++),
                   std::move(task));
  cv_.Signal();
}

void TaskPool::Stop() {
  {
    MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    delayed_.clear();
    cv_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

void TaskPool::Work() {
  while (true) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      while (true) {
        const absl::Time now = absl::Now();
        while (!delayed_.empty() && delayed_.begin()->first.first <= now) {
          ready_.push_back(std::move(delayed_.begin()->second));
          delayed_.erase(delayed_.begin());
        }
        if (!ready_.empty()) break;
        if (stopping_) return;
        if (delayed_.empty()) {
          cv_.Wait(&mu_);
        } else {
          cv_.WaitWithDeadline(&mu_, delayed_.begin()->first.first);
        }
      }
      task = std::move(ready_.front());
      ready_.pop_front();
    }
    task();
  }
}

}  // namespace clink_gateway::server
