// The HTTP response headers the gateway reads from Clink (or from whatever
// answers in its place): Retry-After (ParseRetryAfter,
// adapters/clink/error_mapping.h) and Date (ParseHttpDate and
// ClockSkewMonitor::OnResponse, adapters/clink/clock_skew_monitor.h). The first
// 16 bytes are the gateway's clock when the request was sent and when the
// answer arrived (two int64 Unix nanoseconds, so every range is reached,
// extremes included); the rest is the header value.
//
// Properties:
// - Retry-After is a delay in [0, 1 h]; delta-seconds give exactly
//   min(seconds, 3600) s; a valid HTTP-date gives the time until it (clamped).
// - A Date ParseHttpDate accepts prints back as itself (IMF-fixdate is
//   canonical; a leap second :60 reads as the next minute).
// - The clock-skew estimate from one sample is exactly Date + 0.5 s minus the
//   midpoint of sent and received, or nothing when the Date is not valid or
//   the answer arrived before the request was sent.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/clink/error_mapping.h"
#include "common/clock.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

#define SV(s) static_cast<int>((s).size()), (s).data()

int64_t ReadInt64(const uint8_t* data) {
  int64_t value;
  std::memcpy(&value, data, sizeof(value));
  return value;
}

// The monitor never reads the clock itself (OnResponse is given the times).
class UnusedClock final : public clink_gateway::Clock {
 public:
  absl::Time Now() const override { return absl::UnixEpoch(); }
};

void CheckRetryAfter(absl::string_view value, absl::Time now) {
  const absl::Duration delay =
      clink_gateway::clink::ParseRetryAfter(value, now);
  FUZZ_CHECK(delay >= absl::ZeroDuration() && delay <= absl::Hours(1),
             "Retry-After '%.*s': %s", SV(value),
             absl::FormatDuration(delay).c_str());
  const absl::string_view stripped = absl::StripAsciiWhitespace(value);
  if (!stripped.empty() && stripped.size() <= 18 &&
      std::all_of(stripped.begin(), stripped.end(),
                  [](char c) { return absl::ascii_isdigit(c); })) {
    int64_t seconds = 0;
    for (const char c : stripped) seconds = seconds * 10 + (c - '0');
    FUZZ_CHECK(delay == absl::Seconds(std::min<int64_t>(seconds, 3600)),
               "Retry-After '%.*s': %s", SV(value),
               absl::FormatDuration(delay).c_str());
  }
  if (const auto date = clink_gateway::clink::ParseHttpDate(stripped)) {
    const absl::Duration want =
        std::clamp(*date - now, absl::ZeroDuration(), absl::Hours(1));
    FUZZ_CHECK(delay == want, "Retry-After '%.*s': %s, want %s", SV(value),
               absl::FormatDuration(delay).c_str(),
               absl::FormatDuration(want).c_str());
  }
}

void CheckDate(absl::string_view value, absl::Time sent, absl::Time received) {
  const auto date = clink_gateway::clink::ParseHttpDate(value);
  if (date.has_value()) {
    const std::string printed = absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT",
                                                 *date, absl::UTCTimeZone());
    const bool leap_second = value.size() == 29 && value.substr(23, 2) == "60";
    // absl's %Y prints years before 1000 without leading zeros ("24").
    const bool short_year =
        absl::ToCivilYear(*date, absl::UTCTimeZone()).year() < 1000;
    if (!leap_second && !short_year) {
      FUZZ_CHECK(printed == value, "Date '%.*s' reads as '%s'", SV(value),
                 printed.c_str());
    }
  }

  const UnusedClock clock;
  clink_gateway::clink::ClockSkewOptions options;
  options.min_sample_interval = absl::ZeroDuration();
  options.window = 1;
  // No level transitions: nothing is logged per input.
  options.warning_threshold = absl::InfiniteDuration();
  options.critical_threshold = absl::InfiniteDuration();
  clink_gateway::clink::ClockSkewMonitor monitor("fuzz", clock, options);
  monitor.OnResponse(value, sent, received);
  const auto offset = monitor.offset();
  if (!date.has_value() || received < sent || value.empty()) {
    FUZZ_CHECK(!offset.has_value(), "Date '%.*s': an offset from nothing",
               SV(value));
    return;
  }
  FUZZ_CHECK(offset.has_value(), "Date '%.*s': no offset", SV(value));
  const absl::Time midpoint = sent + (received - sent) / 2;
  const absl::Duration want = *date + absl::Milliseconds(500) - midpoint;
  // The estimate is kept in int64 nanoseconds (saturating).
  const int64_t want_ns = absl::ToInt64Nanoseconds(want);
  const int64_t got_ns = absl::ToInt64Nanoseconds(*offset);
  FUZZ_CHECK(got_ns == want_ns || got_ns == want_ns + 1,
             "Date '%.*s': offset %s, want %s", SV(value),
             absl::FormatDuration(*offset).c_str(),
             absl::FormatDuration(want).c_str());
  FUZZ_CHECK(monitor.level() == clink_gateway::clink::ClockSkewLevel::kOk,
             "Date '%.*s'", SV(value));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 16) return 0;
  const absl::Time sent = absl::FromUnixNanos(ReadInt64(data));
  const absl::Time received = absl::FromUnixNanos(ReadInt64(data + 8));
  const absl::string_view value(reinterpret_cast<const char*>(data) + 16,
                                size - 16);
  CheckRetryAfter(value, received);
  CheckDate(value, sent, received);
  return 0;
}
