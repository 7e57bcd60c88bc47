#include "adapters/clink/clock_skew_monitor.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/logging.h"
#include "common/sync.h"

namespace clink_gateway::clink {
namespace {

// offset_ns_ before the first sample. A real estimate that saturates to it
// (an offset of more than 292 years) is stored one nanosecond closer to zero.
constexpr int64_t kNoOffset = std::numeric_limits<int64_t>::min();

// Clink refuses request timestamps further than this from its clock.
constexpr absl::Duration kClinkTimestampTolerance = absl::Minutes(2);

int NormalizedWindow(int window) {
  if (window < 1) return 1;
  return window % 2 == 0 ? window + 1 : window;
}

int64_t SaturatingAdd(int64_t a, int64_t b) {  // b >= 0
  return a > std::numeric_limits<int64_t>::max() - b
             ? std::numeric_limits<int64_t>::max()
             : a + b;
}

// "90" for 90 s, "2.5" for 2.5 s.
std::string SecondsText(absl::Duration d) {
  return absl::StrFormat("%g", absl::ToDoubleSeconds(d));
}

// The value of the `n` ASCII digits at `s`, or -1 if one is not a digit.
int Digits(absl::string_view s, size_t n) {
  int value = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    value = value * 10 + (s[i] - '0');
  }
  return value;
}

// The index of `name` in `names` (case-sensitive), or -1.
template <size_t N>
int IndexOf(absl::string_view name, const absl::string_view (&names)[N]) {
  for (size_t i = 0; i < N; ++i) {
    if (name == names[i]) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

absl::string_view ClockSkewLevelName(ClockSkewLevel level) {
  switch (level) {
    case ClockSkewLevel::kOk:
      return "ok";
    case ClockSkewLevel::kWarning:
      return "warning";
    case ClockSkewLevel::kCritical:
      return "critical";
  }
  return "ok";
}

absl::optional<absl::Time> ParseHttpDate(absl::string_view value) {
  // 0         1         2
  // 01234567890123456789012345678
  // Sun, 06 Nov 1994 08:49:37 GMT
  static constexpr absl::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu",
                                                "Fri", "Sat", "Sun"};
  static constexpr absl::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                                  "May", "Jun", "Jul", "Aug",
                                                  "Sep", "Oct", "Nov", "Dec"};
  if (value.size() != 29 || value.substr(3, 2) != ", " || value[7] != ' ' ||
      value[11] != ' ' || value[16] != ' ' || value[19] != ':' ||
      value[22] != ':' || value.substr(25) != " GMT") {
    return absl::nullopt;
  }
  const int weekday = IndexOf(value.substr(0, 3), kDays);
  const int month = IndexOf(value.substr(8, 3), kMonths) + 1;
  const int day = Digits(value.substr(5), 2);
  const int year = Digits(value.substr(12), 4);
  const int hour = Digits(value.substr(17), 2);
  const int minute = Digits(value.substr(20), 2);
  const int second = Digits(value.substr(23), 2);
  if (weekday < 0 || month < 1 || day < 1 || year < 0 || hour < 0 ||
      hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) {
    return absl::nullopt;
  }
  // CivilDay normalizes (Feb 30 becomes Mar 1 or 2): a changed day or month
  // means the date does not exist.
  const absl::CivilDay civil_day(year, month, day);
  if (civil_day.month() != month || civil_day.day() != day) {
    return absl::nullopt;
  }
  // absl::Weekday counts from Monday, like kDays.
  if (static_cast<int>(absl::GetWeekday(civil_day)) != weekday) {
    return absl::nullopt;
  }
  return absl::FromCivil(
      absl::CivilSecond(year, month, day, hour, minute, second),
      absl::UTCTimeZone());
}

ClockSkewMonitor::ClockSkewMonitor(std::string merchant, const Clock& clock,
                                   ClockSkewOptions options,
                                   ClockSkewObserver* observer)
    : merchant_(std::move(merchant)),
      options_(options),
      min_sample_interval_ns_(std::max<int64_t>(
          0, absl::ToInt64Nanoseconds(options.min_sample_interval))),
      observer_(observer),
      next_sample_ns_(std::numeric_limits<int64_t>::min()),
      offset_ns_(kNoOffset) {
  // `clock` is where `sent` and `received` come from; the monitor only
  // compares those readings (see the header), so it keeps no reference.
  samples_.reserve(NormalizedWindow(options_.window));
}

void ClockSkewMonitor::OnResponse(absl::string_view date_header,
                                  absl::Time sent, absl::Time received) {
  const int64_t now_ns = absl::ToUnixNanos(received);
  // The slot guards no other data (the window has its own mutex), so relaxed
  // ordering is enough for it.
  int64_t next_ns = next_sample_ns_.load(std::memory_order_relaxed);
  if (now_ns < next_ns) return;  // The fast path.
  if (date_header.empty()) return;
  if (!next_sample_ns_.compare_exchange_strong(
          next_ns, SaturatingAdd(now_ns, min_sample_interval_ns_),
          std::memory_order_relaxed)) {
    return;  // Another thread claimed this interval.
  }
  if (received < sent) return;
  const absl::optional<absl::Time> date = ParseHttpDate(date_header);
  if (!date.has_value()) return;
  const absl::Time midpoint = sent + (received - sent) / 2;
  AddSample(*date + absl::Milliseconds(500) - midpoint);
}

void ClockSkewMonitor::AddSample(absl::Duration sample) {
  MutexLock lock(&mu_);
  const size_t window = static_cast<size_t>(NormalizedWindow(options_.window));
  if (samples_.size() < window) {
    samples_.push_back(sample);
  } else {
    samples_[next_slot_] = sample;
  }
  next_slot_ = (next_slot_ + 1) % window;

  std::vector<absl::Duration> sorted = samples_;
  const size_t mid = sorted.size() / 2;
  std::nth_element(sorted.begin(), sorted.begin() + mid, sorted.end());
  absl::Duration estimate = sorted[mid];
  if (sorted.size() % 2 == 0) {
    // The lower middle is the largest of the elements before `mid`.
    const absl::Duration lower =
        *std::max_element(sorted.begin(), sorted.begin() + mid);
    estimate = lower + (estimate - lower) / 2;
  }

  int64_t estimate_ns = absl::ToInt64Nanoseconds(estimate);
  if (estimate_ns == kNoOffset) ++estimate_ns;
  offset_ns_.store(estimate_ns, std::memory_order_release);

  const ClockSkewLevel level = LevelFor(estimate);
  if (level != logged_level_) {
    logged_level_ = level;
    LogTransition(level, estimate);
  }
  if (observer_ != nullptr)
    observer_->OnClockOffset(merchant_, estimate, level);
}

absl::optional<absl::Duration> ClockSkewMonitor::offset() const {
  const int64_t ns = offset_ns_.load(std::memory_order_acquire);
  if (ns == kNoOffset) return absl::nullopt;
  return absl::Nanoseconds(ns);
}

ClockSkewLevel ClockSkewMonitor::level() const {
  const absl::optional<absl::Duration> estimate = offset();
  return estimate.has_value() ? LevelFor(*estimate) : ClockSkewLevel::kOk;
}

ClockSkewLevel ClockSkewMonitor::LevelFor(absl::Duration offset) const {
  const absl::Duration magnitude = absl::AbsDuration(offset);
  if (magnitude > options_.critical_threshold) return ClockSkewLevel::kCritical;
  if (magnitude > options_.warning_threshold) return ClockSkewLevel::kWarning;
  return ClockSkewLevel::kOk;
}

void ClockSkewMonitor::LogTransition(ClockSkewLevel level,
                                     absl::Duration offset) const {
  const std::string offset_seconds =
      absl::StrFormat("%.1f", absl::ToDoubleSeconds(offset));
  const std::string refuses = absl::StrCat(
      "Clink refuses request timestamps more than ",
      SecondsText(kClinkTimestampTolerance), " s off; fix NTP on this node");
  LogLevel log_level = LogLevel::kInfo;
  std::string message;
  switch (level) {
    case ClockSkewLevel::kOk:
      log_level = LogLevel::kInfo;
      message = absl::StrCat("clock offset back under ",
                             SecondsText(options_.warning_threshold), " s");
      break;
    case ClockSkewLevel::kWarning:
      log_level = LogLevel::kWarning;
      message = refuses;
      break;
    case ClockSkewLevel::kCritical:
      log_level = LogLevel::kError;
      message = absl::StrCat(
          refuses,
          "; the gateway reports NOT_SERVING until the offset is back "
          "under ",
          SecondsText(options_.critical_threshold), " s");
      break;
  }
  Log(log_level, "clock_skew",
      {{"merchant", merchant_},
       {"offset_seconds", offset_seconds},
       {"skew_level", ClockSkewLevelName(level)},
       {"message", message}});
}

}  // namespace clink_gateway::clink
