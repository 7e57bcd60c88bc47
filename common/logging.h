// A minimal structured logger: one JSON object per line on stdout.
//
//   Log(LogLevel::kInfo, "rpc", {{"method", "CreatePayment"}, {"code", "OK"}});
//   {"ts":"2026-11-21T19:40:01.123Z","level":"info","event":"rpc","method":"CreatePayment",...}
//
// Callers never pass secrets, card data or emails: keys are logged by
// fingerprint only.
#ifndef CLINK_GATEWAY_COMMON_LOGGING_H_
#define CLINK_GATEWAY_COMMON_LOGGING_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace clink_gateway {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning", "error"; false for anything else.
bool ParseLogLevel(absl::string_view text, LogLevel* level);

// Lines below this level are dropped. Default kInfo. Thread-safe.
void SetMinLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

using LogField = std::pair<absl::string_view, absl::string_view>;

// Queues one line if `level` is enabled, and returns without waiting for I/O: a
// background thread writes the lines to stdout, so a slow log reader never
// stalls the caller (which may be the Clink transport's thread). When the queue
// is full (kMaxQueuedLogLines) the line is dropped and counted.
void Log(LogLevel level, absl::string_view event,
         std::initializer_list<LogField> fields = {});

// As Log, for a field list built at run time, and whatever SetMinLogLevel
// says: for records that must not vanish with the log level (the audit trail,
// server/audit_log.h). Still dropped (and counted) when the queue is full.
void LogAlways(LogLevel level, absl::string_view event,
               const std::vector<LogField>& fields);

// The complete line Log would write now, timestamp and newline included (for
// sinks of their own, such as the audit file).
std::string TimestampedLogLine(LogLevel level, absl::string_view event,
                               const std::vector<LogField>& fields);

// Lines the queue can hold before Log drops new ones.
inline constexpr size_t kMaxQueuedLogLines = 16384;

// Blocks until every line queued so far is written (tests, shutdown), or 2 s.
void FlushLogs();

// Lines dropped because the queue was full, since the process started.
int64_t DroppedLogLines();

// The JSON line Log would write, without the timestamp (for tests).
std::string FormatLogLine(LogLevel level, absl::string_view event,
                          std::initializer_list<LogField> fields);

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_LOGGING_H_
