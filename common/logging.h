// A minimal structured logger: one JSON object per line on stdout.
//
//   Log(LogLevel::kInfo, "rpc", {{"method", "CreatePayment"}, {"code", "OK"}});
//   {"ts":"2026-11-21T19:40:01.123Z","level":"info","event":"rpc","method":"CreatePayment",...}
//
// Callers never pass secrets, card data or emails: keys are logged by
// fingerprint only.
#ifndef CLINK_GATEWAY_COMMON_LOGGING_H_
#define CLINK_GATEWAY_COMMON_LOGGING_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace clink_gateway {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning", "error"; false for anything else.
bool ParseLogLevel(absl::string_view text, LogLevel* level);

// Lines below this level are dropped. Default kInfo. Thread-safe.
void SetMinLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

using LogField = std::pair<absl::string_view, absl::string_view>;

// Writes one line (atomically with respect to other Log calls) if `level` is
// enabled.
void Log(LogLevel level, absl::string_view event,
         std::initializer_list<LogField> fields = {});

// The JSON line Log would write, without the timestamp (for tests).
std::string FormatLogLine(LogLevel level, absl::string_view event,
                          std::initializer_list<LogField> fields);

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_LOGGING_H_
