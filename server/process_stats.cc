#include "server/process_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace clink_gateway::server {
namespace {

// procfs files report a size of 0: read until EOF. Bounded (these files are a
// few KiB).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  constexpr size_t kMaxBytes = 64 * 1024;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string text;
  char buffer[4096];
  ssize_t n;
  while (text.size() < kMaxBytes &&
         (n = read(fd, buffer, sizeof(buffer))) > 0) {
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

absl::Status Malformed(const std::string& path) {
  return absl::InternalError(absl::StrCat("cannot parse ", path));
}

// Number of entries in `dir` (without "." and ".."), or nullopt.
absl::optional<int64_t> CountEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return absl::nullopt;
  int64_t count = 0;
  while (const dirent* entry = readdir(d)) {
    const absl::string_view name(entry->d_name);
    if (name != "." && name != "..") ++count;
  }
  closedir(d);
  return count;
}

// The soft limit on the "Max open files" line of a limits file.
absl::optional<int64_t> MaxOpenFiles(absl::string_view limits) {
  for (absl::string_view line : absl::StrSplit(limits, '\n')) {
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    const std::vector<absl::string_view> columns =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t soft = 0;
    if (!columns.empty() && absl::SimpleAtoi(columns[0], &soft)) return soft;
    return absl::nullopt;  // "unlimited"
  }
  return absl::nullopt;
}

}  // namespace

absl::StatusOr<ProcessStats> ReadProcessStats(const ProcfsPaths& paths,
                                              int64_t ticks_per_second,
                                              int64_t page_size) {
  if (ticks_per_second <= 0) ticks_per_second = sysconf(_SC_CLK_TCK);
  if (page_size <= 0) page_size = sysconf(_SC_PAGESIZE);
  if (ticks_per_second <= 0 || page_size <= 0) {
    return absl::InternalError("sysconf(_SC_CLK_TCK / _SC_PAGESIZE) failed");
  }

  // proc(5): "pid (comm) state ppid ...". comm may hold spaces and ')', so
  // the fields are counted from the last ')'. Field 3 (state) is index 0.
  const std::string stat_path = absl::StrCat(paths.self_dir, "/stat");
  absl::StatusOr<std::string> stat = ReadSmallFile(stat_path);
  if (!stat.ok()) return stat.status();
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return Malformed(stat_path);
  const std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(*stat).substr(paren + 1), ' ', absl::SkipWhitespace());
  auto field = [&fields](int number, int64_t* value) {
    const size_t index = static_cast<size_t>(number - 3);
    return index < fields.size() &&
           absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[index]), value);
  };
  int64_t utime = 0, stime = 0, threads = 0, start_ticks = 0, vsize = 0,
          rss_pages = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(20, &threads) ||
      !field(22, &start_ticks) || !field(23, &vsize) ||
      !field(24, &rss_pages)) {
    return Malformed(stat_path);
  }

  absl::StatusOr<std::string> proc_stat = ReadSmallFile(paths.proc_stat);
  if (!proc_stat.ok()) return proc_stat.status();
  int64_t boot_time = -1;
  for (absl::string_view line : absl::StrSplit(*proc_stat, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &boot_time)) {
      break;
    }
  }
  if (boot_time < 0) return Malformed(paths.proc_stat);

  ProcessStats out;
  const double hz = static_cast<double>(ticks_per_second);
  out.cpu_seconds = static_cast<double>(utime + stime) / hz;
  out.threads = threads;
  out.start_time_seconds =
      static_cast<double>(boot_time) + static_cast<double>(start_ticks) / hz;
  out.virtual_memory_bytes = static_cast<double>(vsize);
  out.resident_memory_bytes = static_cast<double>(rss_pages) *
                              static_cast<double>(page_size);
  out.open_fds = CountEntries(absl::StrCat(paths.self_dir, "/fd"));
  if (absl::StatusOr<std::string> limits =
          ReadSmallFile(absl::StrCat(paths.self_dir, "/limits"));
      limits.ok()) {
    out.max_fds = MaxOpenFiles(*limits);
  }
  return out;
}

}  // namespace clink_gateway::server
