#include "common/logging.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace clink_gateway {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

template <typename Fields>
void AppendBody(LogLevel level, absl::string_view event, const Fields& fields,
                std::string* line) {
  line->append("\"level\":");
  AppendJsonString(LevelName(level), line);
  line->append(",\"event\":");
  AppendJsonString(event, line);
  for (const LogField& field : fields) {
    line->push_back(',');
    AppendJsonString(field.first, line);
    line->push_back(':');
    AppendJsonString(field.second, line);
  }
  line->push_back('}');
}

}  // namespace

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  for (const LogLevel l : {LogLevel::kDebug, LogLevel::kInfo,
                           LogLevel::kWarning, LogLevel::kError}) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

void SetMinLogLevel(LogLevel level) {
  min_level.store(static_cast<int>(level));
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= min_level.load(std::memory_order_relaxed);
}

namespace {

// The queue between Log and the writer thread. Never destroyed (a
// function-local static pointer), so logging works until the process exits.
// std::mutex rather than absl::Mutex: every component logs, and Debian's
// Abseil is not built for ThreadSanitizer, which would report false races on
// the queue in every TSan run.
class LogQueue {
 public:
  static LogQueue& Get() {
    static LogQueue* const queue = new LogQueue();
    return *queue;
  }

  void Push(std::string line) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (lines_.size() >= kMaxQueuedLogLines) {
        ++dropped_;
        return;
      }
      lines_.push_back(std::move(line));
      ++queued_;
    }
    not_empty_.notify_one();
  }

  void Flush() {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t target = queued_;
    // Bounded: with a stdout nobody reads, exiting beats hanging.
    written_cv_.wait_for(lock, std::chrono::seconds(2),
                         [&] { return written_ >= target; });
  }

  int64_t dropped() {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_;
  }

 private:
  LogQueue() {
    std::thread([this] { Run(); }).detach();
  }

  void Run() {
    std::deque<std::string> batch;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        not_empty_.wait(lock, [&] { return !lines_.empty(); });
        batch.swap(lines_);
      }
      for (const std::string& line : batch) {
        std::fwrite(line.data(), 1, line.size(), stdout);
      }
      std::fflush(stdout);
      const int64_t n = static_cast<int64_t>(batch.size());
      batch.clear();
      {
        std::lock_guard<std::mutex> lock(mu_);
        written_ += n;
      }
      written_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable written_cv_;
  // Guarded by mu_:
  std::deque<std::string> lines_;
  int64_t queued_ = 0;
  int64_t written_ = 0;
  int64_t dropped_ = 0;
};

}  // namespace

namespace {

template <typename Fields>
std::string FullLine(LogLevel level, absl::string_view event,
                     const Fields& fields) {
  std::string line = "{\"ts\":";
  AppendJsonString(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   &line);
  line.push_back(',');
  AppendBody(level, event, fields, &line);
  line.push_back('\n');
  return line;
}

}  // namespace

void Log(LogLevel level, absl::string_view event,
         std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  LogQueue::Get().Push(FullLine(level, event, fields));
}

void LogAlways(LogLevel level, absl::string_view event,
               const std::vector<LogField>& fields) {
  LogQueue::Get().Push(FullLine(level, event, fields));
}

std::string TimestampedLogLine(LogLevel level, absl::string_view event,
                               const std::vector<LogField>& fields) {
  return FullLine(level, event, fields);
}

void FlushLogs() { LogQueue::Get().Flush(); }

int64_t DroppedLogLines() { return LogQueue::Get().dropped(); }

std::string FormatLogLine(LogLevel level, absl::string_view event,
                          std::initializer_list<LogField> fields) {
  std::string line = "{";
  AppendBody(level, event, fields, &line);
  return line;
}

}  // namespace clink_gateway
