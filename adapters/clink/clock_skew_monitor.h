// Measures how far the gateway's clock is from Clink's, from the `Date` header
// of Clink's responses.
//
// Clink rejects a request whose X-Timestamp (the gateway's clock, Unix ms) is
// more than 2 minutes off Clink's own clock, so a drifting node fails every
// call with an authentication error that says nothing about time. The monitor
// turns that into an early, explicit signal: an exported offset, a warning log
// line past 30 s, and a critical level past 90 s that the gateway turns into
// NOT_SERVING (the wiring, metrics and readiness live elsewhere; they read
// offset()/level() or implement ClockSkewObserver).
//
// Precision: Date has a resolution of one second and the request's round trip
// adds up to half of it, so one sample is within about ±(0.5 s + RTT / 2) of
// the true offset. That is plenty against thresholds of tens of seconds.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_CLOCK_SKEW_MONITOR_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_CLOCK_SKEW_MONITOR_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/clock.h"
#include "common/sync.h"

namespace clink_gateway::clink {

enum class ClockSkewLevel { kOk, kWarning, kCritical };

// "ok", "warning", "critical".
absl::string_view ClockSkewLevelName(ClockSkewLevel level);

struct ClockSkewOptions {
  // |offset| above this: warning (logged). Clink refuses at 120 s.
  absl::Duration warning_threshold = absl::Seconds(30);
  // |offset| above this: critical (the gateway reports not ready). Checked
  // before warning_threshold, so a critical threshold below the warning one
  // makes the warning level unreachable.
  absl::Duration critical_threshold = absl::Seconds(90);
  // At most one Date header is parsed per this interval of the gateway's clock
  // (as read by the caller: OnResponse's `received`); other responses cost
  // one atomic load. Zero or negative: every response with a Date is sampled,
  // except that of concurrent responses racing for one slot only one is.
  absl::Duration min_sample_interval = absl::Seconds(1);
  // The estimate is the median of the last `window` samples (odd, >= 1), so
  // one stray Date header (a cache, a proxy) cannot flip readiness once the
  // window holds three samples or more. A value below 1 is taken as 1 and an
  // even value as the next odd one. Until the window is full the estimate is
  // the median of the samples so far (the mean of the middle two for an even
  // count).
  int window = 5;
};

// Told after every accepted sample. Called on the thread that called
// OnResponse (the HTTP transport's thread): must be cheap and never block.
// Calls for one monitor never overlap and arrive in the order the samples were
// taken (they are made under the monitor's internal lock, once per
// min_sample_interval at most). The observer may call offset() and level(),
// which then already return the values passed here.
class ClockSkewObserver {
 public:
  virtual ~ClockSkewObserver() = default;
  // `offset` = Clink's clock minus the gateway's (positive: the gateway is
  // behind): the monitor's new estimate (the median of the window), not the
  // raw sample. `level` is the level for that offset.
  virtual void OnClockOffset(absl::string_view merchant, absl::Duration offset,
                             ClockSkewLevel level) = 0;
};

// One per upstream merchant account (per Clink client). Thread-safe: every
// method may be called concurrently from any thread.
//
// Logging: only on level transitions, never per sample, as one line of event
// "clock_skew" with the fields merchant, offset_seconds (the estimate, one
// decimal, e.g. "-42.5"), skew_level ("ok", "warning", "critical") and message:
//   - entering warning (from ok or from critical): log level warning;
//   - entering critical: log level error, and the message says the gateway
//     reports NOT_SERVING until the offset is back under the critical
//     threshold;
//   - back to ok: log level info.
// The level starts at ok (no estimate), so a first sample within the warning
// threshold logs nothing. (The field is skew_level, not level, because the
// logger writes its own "level" key on every line.)
class ClockSkewMonitor {
 public:
  // `merchant` names the upstream account in logs and observer calls.
  // `clock` (the gateway's clock, used for the rate limit of samples) and
  // `observer` (may be null) must outlive the monitor. OnResponse's `sent` and
  // `received` must be readings of `clock`: the rate limit runs on `received`,
  // so the monitor never calls clock.Now() itself (the response path costs no
  // clock read).
  ClockSkewMonitor(std::string merchant, const Clock& clock,
                   ClockSkewOptions options = {},
                   ClockSkewObserver* observer = nullptr);

  ClockSkewMonitor(const ClockSkewMonitor&) = delete;
  ClockSkewMonitor& operator=(const ClockSkewMonitor&) = delete;

  // One complete Clink response: `date_header` is the raw Date header value
  // (IMF-fixdate, RFC 7231 §7.1.1.1, e.g. "Sun, 06 Nov 1994 08:49:37 GMT";
  // empty or unparseable values are ignored), `sent` and `received` the
  // gateway's clock when the request was started and its answer arrived. The
  // sample is Date + 0.5 s (Date is truncated to the second) minus the
  // midpoint of sent and received. Thread-safe, non-blocking.
  //
  // Cost: when the last sample slot was claimed less than min_sample_interval
  // before `received` (the common case), one atomic load. Otherwise the first
  // caller to claim the slot with a compare-exchange parses the header (an
  // unparseable header, or `received` before `sent`, still uses up the slot);
  // concurrent callers return at once. An empty `date_header` returns without
  // using up the slot. Only the claiming caller takes the internal mutex, to
  // update the window, log a transition and call the observer.
  void OnResponse(absl::string_view date_header, absl::Time sent,
                  absl::Time received) ABSL_LOCKS_EXCLUDED(mu_);

  // The current estimate (Clink's clock minus the gateway's, the median of the
  // window), or nullopt before the first sample. One atomic load.
  absl::optional<absl::Duration> offset() const;

  // The level for offset(): |offset| strictly greater than critical_threshold
  // is kCritical, else strictly greater than warning_threshold is kWarning,
  // else (or before the first sample) kOk. One atomic load.
  ClockSkewLevel level() const;

 private:
  // Adds `sample` to the window and publishes the new estimate; logs and tells
  // the observer.
  void AddSample(absl::Duration sample) ABSL_LOCKS_EXCLUDED(mu_);
  ClockSkewLevel LevelFor(absl::Duration offset) const;
  void LogTransition(ClockSkewLevel level, absl::Duration offset) const;

  const std::string merchant_;
  const ClockSkewOptions options_;
  const int64_t min_sample_interval_ns_;
  ClockSkewObserver* const observer_;

  // Unix ns of the gateway clock before which OnResponse does not sample.
  std::atomic<int64_t> next_sample_ns_;
  // The estimate in ns, or kNoOffset before the first sample.
  std::atomic<int64_t> offset_ns_;

  Mutex mu_;
  std::vector<absl::Duration> samples_ ABSL_GUARDED_BY(mu_);  // <= window
  size_t next_slot_ ABSL_GUARDED_BY(mu_) = 0;  // oldest once the window is full
  ClockSkewLevel logged_level_ ABSL_GUARDED_BY(mu_) = ClockSkewLevel::kOk;
};

// Parses an IMF-fixdate (only that form: "Sun, 06 Nov 1994 08:49:37 GMT");
// nullopt otherwise. Strict: exactly 29 characters, no surrounding whitespace,
// case-sensitive day and month names (as RFC 7231 specifies), two-digit day,
// four-digit year, "GMT" only, a real calendar date whose day name matches it,
// hour 00-23, minute 00-59, second 00-60 (a leap second :60 reads as the next
// minute's :00).
absl::optional<absl::Time> ParseHttpDate(absl::string_view value);

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_CLOCK_SKEW_MONITOR_H_
