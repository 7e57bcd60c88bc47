#include "common/logging.h"

#include <atomic>
#include <cstdio>
#include <deque>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
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

void AppendBody(LogLevel level, absl::string_view event,
                std::initializer_list<LogField> fields, std::string* line) {
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
class LogQueue {
 public:
  static LogQueue& Get() {
    static LogQueue* const queue = new LogQueue();
    return *queue;
  }

  void Push(std::string line) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (lines_.size() >= kMaxQueuedLogLines) {
      ++dropped_;
      return;
    }
    lines_.push_back(std::move(line));
    ++queued_;
  }

  void Flush() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    const int64_t target = queued_;
    auto written = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return written_ >= target;
    };
    // Bounded: with a stdout nobody reads, exiting beats hanging.
    mu_.AwaitWithTimeout(absl::Condition(&written), absl::Seconds(2));
  }

  int64_t dropped() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return dropped_;
  }

 private:
  LogQueue() {
    std::thread([this] { Run(); }).detach();
  }

  void Run() ABSL_LOCKS_EXCLUDED(mu_) {
    std::deque<std::string> batch;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !lines_.empty();
        };
        mu_.Await(absl::Condition(&ready));
        batch.swap(lines_);
      }
      for (const std::string& line : batch) {
        std::fwrite(line.data(), 1, line.size(), stdout);
      }
      std::fflush(stdout);
      const int64_t n = static_cast<int64_t>(batch.size());
      batch.clear();
      absl::MutexLock lock(&mu_);
      written_ += n;
    }
  }

  absl::Mutex mu_;
  std::deque<std::string> lines_ ABSL_GUARDED_BY(mu_);
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

void Log(LogLevel level, absl::string_view event,
         std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  std::string line = "{\"ts\":";
  AppendJsonString(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   &line);
  line.push_back(',');
  AppendBody(level, event, fields, &line);
  line.push_back('\n');
  LogQueue::Get().Push(std::move(line));
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
