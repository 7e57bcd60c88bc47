// The process's own resource use, read from procfs, for the standard
// Prometheus process_* metrics (the names every exporter uses, so existing
// dashboards work): CPU time, memory, file descriptors, threads, start time.
#ifndef CLINK_GATEWAY_SERVER_PROCESS_STATS_H_
#define CLINK_GATEWAY_SERVER_PROCESS_STATS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"

namespace clink_gateway::server {

struct ProcessStats {
  double cpu_seconds = 0;  // User + system CPU time.
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  int64_t threads = 0;
  // Seconds since the Unix epoch.
  double start_time_seconds = 0;
  // Open file descriptors; absent when the fd directory cannot be read.
  absl::optional<int64_t> open_fds;
  // The soft RLIMIT_NOFILE; absent when unlimited or unreadable.
  absl::optional<int64_t> max_fds;
};

// Where to read from: `self_dir` is /proc/self (or /proc/<pid>); `proc_stat`
// is /proc/stat (for the boot time). Tests point these at fixture files.
struct ProcfsPaths {
  std::string self_dir = "/proc/self";
  std::string proc_stat = "/proc/stat";
};

// Reads <self_dir>/stat (CPU, memory, threads, start time: required),
// <proc_stat> (btime: required), <self_dir>/fd and <self_dir>/limits
// (optional). `ticks_per_second` and `page_size` default to the system's
// (sysconf). Fails with INTERNAL / NOT_FOUND when a required file is missing
// or malformed.
absl::StatusOr<ProcessStats> ReadProcessStats(const ProcfsPaths& paths = {},
                                              int64_t ticks_per_second = 0,
                                              int64_t page_size = 0);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_PROCESS_STATS_H_
