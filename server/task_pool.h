// A few worker threads running posted tasks, at once or after a delay: where
// the EventService runs its blocking EventStore calls, off the gRPC handler
// threads.
#ifndef CLINK_GATEWAY_SERVER_TASK_POOL_H_
#define CLINK_GATEWAY_SERVER_TASK_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace clink_gateway::server {

class TaskPool {
 public:
  // Starts `threads` (at least 1) workers.
  explicit TaskPool(int threads);
  // Stop().
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // Runs `task` on a worker as soon as one is free (in posting order). After
  // Stop, nothing runs.
  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `task` once `delay` (real time) has passed.
  void PostAfter(absl::Duration delay, std::function<void()> task)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Runs the tasks already due, drops the delayed ones and joins the workers.
  // Idempotent; not from a worker.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Work() ABSL_LOCKS_EXCLUDED(mu_);

  Mutex mu_;
  CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> ready_ ABSL_GUARDED_BY(mu_);
  // By due time, then posting order.
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> delayed_
      ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_TASK_POOL_H_
