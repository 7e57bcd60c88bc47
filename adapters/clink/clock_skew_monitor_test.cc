#include "adapters/clink/clock_skew_monitor.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/logging.h"
#include "common/sync.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

std::string HttpDate(absl::Time t) {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", t, absl::UTCTimeZone());
}

absl::Time Utc(int year, int month, int day, int hour, int minute, int second) {
  return absl::FromCivil(
      absl::CivilSecond(year, month, day, hour, minute, second),
      absl::UTCTimeZone());
}

// Records every call; checks that calls never overlap and that the monitor
// already returns what it is told.
class RecordingObserver final : public ClockSkewObserver {
 public:
  struct Call {
    std::string merchant;
    absl::Duration offset;
    ClockSkewLevel level;
  };

  void set_monitor(const ClockSkewMonitor* monitor) { monitor_ = monitor; }

  void OnClockOffset(absl::string_view merchant, absl::Duration offset,
                     ClockSkewLevel level) override {
    EXPECT_FALSE(inside_.exchange(true)) << "overlapping observer calls";
    if (monitor_ != nullptr) {
      EXPECT_EQ(monitor_->offset(), offset);
      EXPECT_EQ(monitor_->level(), level);
    }
    {
      MutexLock lock(&mu_);
      calls_.push_back({std::string(merchant), offset, level});
    }
    inside_.store(false);
  }

  std::vector<Call> calls() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return calls_;
  }

 private:
  const ClockSkewMonitor* monitor_ = nullptr;
  std::atomic<bool> inside_{false};
  mutable Mutex mu_;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
};

class ClockSkewMonitorTest : public ::testing::Test {
 protected:
  // The clock sits 0.6 s past a whole second, so a request sent 0.2 s before
  // now has its midpoint 0.5 s past one, and a whole-second offset gives a
  // whole-second Date: the sample is then exactly `offset`.
  ClockSkewMonitorTest()
      : clock_(absl::FromUnixSeconds(FakeClock::kDefaultStartUnixSeconds) +
               absl::Milliseconds(600)) {}

  // A response whose sample is exactly `offset` (whole seconds), then one
  // second on, so the next Respond is sampled too.
  void Respond(ClockSkewMonitor& monitor, absl::Duration offset) {
    const absl::Time received = clock_.Now();
    const absl::Time sent = received - absl::Milliseconds(200);
    const absl::Time date = received - absl::Milliseconds(600) + offset;
    monitor.OnResponse(HttpDate(date), sent, received);
    clock_.Advance(absl::Seconds(1));
  }

  static ClockSkewOptions WindowOf(int window) {
    ClockSkewOptions options;
    options.window = window;
    return options;
  }

  FakeClock clock_;
  RecordingObserver observer_;
};

TEST(ClockSkewLevelNameTest, NamesEachLevel) {
  EXPECT_EQ(ClockSkewLevelName(ClockSkewLevel::kOk), "ok");
  EXPECT_EQ(ClockSkewLevelName(ClockSkewLevel::kWarning), "warning");
  EXPECT_EQ(ClockSkewLevelName(ClockSkewLevel::kCritical), "critical");
}

TEST(ParseHttpDateTest, ParsesImfFixdate) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Utc(1994, 11, 6, 8, 49, 37));
  EXPECT_EQ(ParseHttpDate("Thu, 29 Feb 2024 00:00:00 GMT"),
            Utc(2024, 2, 29, 0, 0, 0));
  EXPECT_EQ(ParseHttpDate("Fri, 31 Dec 1999 23:59:59 GMT"),
            Utc(1999, 12, 31, 23, 59, 59));
  // A leap second reads as the next minute.
  EXPECT_EQ(ParseHttpDate("Sat, 31 Dec 2016 23:59:60 GMT"),
            Utc(2017, 1, 1, 0, 0, 0));
}

TEST(ParseHttpDateTest, RoundTripsWhatAbslFormats) {
  const absl::Time start = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i < 400; ++i) {
    // Steps of a little over 3 days cover every weekday and month.
    const absl::Time t = start + i * absl::Seconds(271381);
    EXPECT_EQ(ParseHttpDate(HttpDate(t)), t) << HttpDate(t);
  }
}

TEST(ParseHttpDateTest, RejectsEverythingElse) {
  for (const absl::string_view bad : {
           "",
           "Sunday, 06-Nov-94 08:49:37 GMT",   // RFC 850
           "Sun Nov  6 08:49:37 1994",         // asctime
           "Sun, 06 Nov 1994 08:49:37",        // no zone
           "Sun, 06 Nov 1994 08:49:37 UTC",    // not GMT
           "Sun, 06 Nov 1994 08:49:37 +0000",  // numeric zone
           "Sun, 06 Nov 1994 08:49:37 gmt",
           "Sun, 06 Foo 1994 08:49:37 GMT",  // bad month
           "Sun, 06 nov 1994 08:49:37 GMT",  // names are case-sensitive
           "sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 GMTx",  // trailing junk
           "Sun, 06 Nov 1994 08:49:37 GMT ",
           "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
           " Sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 6 Nov 1994 08:49:37 GMT",  // one-digit day
           "Sun,  6 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 94 08:49:37 GMT",  // two-digit year
           "Sun, 06 Nov 1994 8:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:3a GMT",
           "Sun, 06 Nov 1994 08-49-37 GMT",
           "Sun 06 Nov 1994 08:49:37 GMT",
           "Mon, 06 Nov 1994 08:49:37 GMT",  // wrong day name
           "Thu, 31 Nov 1994 08:49:37 GMT",  // no such date
           "Fri, 29 Feb 2023 08:49:37 GMT",
           "Sun, 00 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 24:00:00 GMT",
           "Sun, 06 Nov 1994 08:60:37 GMT",
           "Sun, 06 Nov 1994 08:49:61 GMT",
           "Sun, +6 Nov 1994 08:49:37 GMT",
       }) {
    EXPECT_EQ(ParseHttpDate(bad), absl::nullopt) << '"' << bad << '"';
  }
}

TEST_F(ClockSkewMonitorTest, NoEstimateBeforeTheFirstSample) {
  ClockSkewMonitor monitor("acme", clock_);
  EXPECT_EQ(monitor.offset(), absl::nullopt);
  EXPECT_EQ(monitor.level(), ClockSkewLevel::kOk);
  monitor.OnResponse("", clock_.Now(), clock_.Now());
  monitor.OnResponse("yesterday", clock_.Now(), clock_.Now());
  EXPECT_EQ(monitor.offset(), absl::nullopt);
}

TEST_F(ClockSkewMonitorTest, ClinkAheadIsAPositiveOffset) {
  ClockSkewMonitor monitor("acme", clock_);
  // Midpoint t, Date t + 100 s: Clink's clock reads t + 100.5 s on average.
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  monitor.OnResponse(HttpDate(t + absl::Seconds(100)),
                     t - absl::Milliseconds(100), t + absl::Milliseconds(100));
  ASSERT_TRUE(monitor.offset().has_value());
  EXPECT_LE(absl::AbsDuration(*monitor.offset() - absl::Seconds(100.5)),
            absl::Milliseconds(1))
      << *monitor.offset();
  EXPECT_EQ(monitor.level(), ClockSkewLevel::kCritical);
}

TEST_F(ClockSkewMonitorTest, ClinkBehindIsANegativeOffset) {
  ClockSkewMonitor monitor("acme", clock_);
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  monitor.OnResponse(HttpDate(t - absl::Seconds(100)),
                     t - absl::Milliseconds(100), t + absl::Milliseconds(100));
  ASSERT_TRUE(monitor.offset().has_value());
  EXPECT_LE(absl::AbsDuration(*monitor.offset() - absl::Seconds(-99.5)),
            absl::Milliseconds(1))
      << *monitor.offset();
  EXPECT_EQ(monitor.level(), ClockSkewLevel::kCritical);
}

TEST_F(ClockSkewMonitorTest, TheSampleUsesTheMidpointOfTheRoundTrip) {
  ClockSkewMonitor monitor("acme", clock_);
  // Sent at t, answered at t + 4 s: midpoint t + 2 s. Date t + 10 s.
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  monitor.OnResponse(HttpDate(t + absl::Seconds(10)), t, t + absl::Seconds(4));
  EXPECT_EQ(monitor.offset(), absl::Seconds(8.5));
}

TEST_F(ClockSkewMonitorTest, IgnoresAnAnswerReceivedBeforeItWasSent) {
  ClockSkewMonitor monitor("acme", clock_);
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  monitor.OnResponse(HttpDate(t), t + absl::Seconds(1), t);
  EXPECT_EQ(monitor.offset(), absl::nullopt);
}

TEST_F(ClockSkewMonitorTest, TheMedianIgnoresOneOutlier) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(5), &observer_);
  for (const int seconds : {5, 5, 500, 5, 5, 500}) {
    Respond(monitor, absl::Seconds(seconds));
    EXPECT_EQ(monitor.offset(), absl::Seconds(5)) << "after " << seconds;
    EXPECT_EQ(monitor.level(), ClockSkewLevel::kOk);
  }
  // A majority of the window moves it: [500 500 500 5 5].
  Respond(monitor, absl::Seconds(500));
  EXPECT_EQ(monitor.offset(), absl::Seconds(500));
  EXPECT_EQ(monitor.level(), ClockSkewLevel::kCritical);
  // The observer is told the estimate after every sample, not the sample.
  const std::vector<RecordingObserver::Call> calls = observer_.calls();
  ASSERT_EQ(calls.size(), 7u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(calls[i].offset, absl::Seconds(5)) << i;
    EXPECT_EQ(calls[i].level, ClockSkewLevel::kOk) << i;
    EXPECT_EQ(calls[i].merchant, "acme");
  }
  EXPECT_EQ(calls[6].offset, absl::Seconds(500));
  EXPECT_EQ(calls[6].level, ClockSkewLevel::kCritical);
}

TEST_F(ClockSkewMonitorTest, OldSamplesLeaveTheWindow) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(3));
  for (int i = 0; i < 3; ++i) Respond(monitor, absl::Seconds(100));
  EXPECT_EQ(monitor.offset(), absl::Seconds(100));
  Respond(monitor, absl::Seconds(1));
  EXPECT_EQ(monitor.offset(), absl::Seconds(100));
  Respond(monitor, absl::Seconds(1));
  EXPECT_EQ(monitor.offset(), absl::Seconds(1));
}

TEST_F(ClockSkewMonitorTest, AnEvenCountUsesTheMeanOfTheMiddleTwo) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(3));
  Respond(monitor, absl::Seconds(0));
  Respond(monitor, absl::Seconds(-85));
  EXPECT_EQ(monitor.offset(), absl::Seconds(-42.5));
}

TEST_F(ClockSkewMonitorTest, AWindowBelowOneIsOne) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(0));
  Respond(monitor, absl::Seconds(3));
  Respond(monitor, absl::Seconds(100));
  EXPECT_EQ(monitor.offset(), absl::Seconds(100));
}

TEST_F(ClockSkewMonitorTest, SamplesAtMostOncePerInterval) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(1), &observer_);
  const absl::Time t = clock_.Now();  // 0.6 s past a whole second
  auto respond = [&](absl::Time received, absl::Duration offset) {
    const absl::Time sent = received - absl::Milliseconds(200);
    monitor.OnResponse(HttpDate(received - absl::Milliseconds(600) + offset),
                       sent, received);
  };
  respond(t, absl::Seconds(10));
  EXPECT_EQ(monitor.offset(), absl::Seconds(10));
  respond(t + absl::Milliseconds(999), absl::Seconds(50));
  EXPECT_EQ(monitor.offset(), absl::Seconds(10));
  respond(t + absl::Seconds(1), absl::Seconds(50));
  EXPECT_EQ(monitor.offset(), absl::Seconds(50));
  EXPECT_EQ(observer_.calls().size(), 2u);
}

TEST_F(ClockSkewMonitorTest, AnEmptyDateDoesNotUseUpTheInterval) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(1));
  const absl::Time t = clock_.Now();
  monitor.OnResponse("", t, t);
  // t is 0.6 s past a whole second, so the Date reads t + 19.4 s.
  monitor.OnResponse(HttpDate(t + absl::Seconds(20)), t, t);
  EXPECT_EQ(monitor.offset(), absl::Milliseconds(19900));
}

TEST_F(ClockSkewMonitorTest, AnUnparseableDateUsesUpTheInterval) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(1));
  const absl::Time t = clock_.Now();
  monitor.OnResponse("Sun, 06 Nov 1994 08:49:37", t, t);
  monitor.OnResponse(HttpDate(t), t, t + absl::Milliseconds(500));
  EXPECT_EQ(monitor.offset(), absl::nullopt);
  monitor.OnResponse(HttpDate(t), t, t + absl::Seconds(1));
  EXPECT_TRUE(monitor.offset().has_value());
}

TEST_F(ClockSkewMonitorTest, LevelsFollowTheMagnitudeOfTheOffset) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(1), &observer_);
  observer_.set_monitor(&monitor);
  struct Step {
    int seconds;
    ClockSkewLevel level;
  };
  const std::vector<Step> steps = {
      {29, ClockSkewLevel::kOk},        {30, ClockSkewLevel::kOk},
      {31, ClockSkewLevel::kWarning},   {89, ClockSkewLevel::kWarning},
      {90, ClockSkewLevel::kWarning},   {91, ClockSkewLevel::kCritical},
      {89, ClockSkewLevel::kWarning},   {29, ClockSkewLevel::kOk},
      {-29, ClockSkewLevel::kOk},       {-31, ClockSkewLevel::kWarning},
      {-89, ClockSkewLevel::kWarning},  {-91, ClockSkewLevel::kCritical},
      {-31, ClockSkewLevel::kWarning},  {-29, ClockSkewLevel::kOk},
      {-91, ClockSkewLevel::kCritical}, {0, ClockSkewLevel::kOk},
  };
  for (const Step& step : steps) {
    Respond(monitor, absl::Seconds(step.seconds));
    EXPECT_EQ(monitor.offset(), absl::Seconds(step.seconds));
    EXPECT_EQ(monitor.level(), step.level) << step.seconds << " s";
  }
  const std::vector<RecordingObserver::Call> calls = observer_.calls();
  ASSERT_EQ(calls.size(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(calls[i].merchant, "acme");
    EXPECT_EQ(calls[i].offset, absl::Seconds(steps[i].seconds)) << i;
    EXPECT_EQ(calls[i].level, steps[i].level) << i;
  }
}

TEST_F(ClockSkewMonitorTest, ThresholdsComeFromTheOptions) {
  ClockSkewOptions options = WindowOf(1);
  options.warning_threshold = absl::Seconds(5);
  options.critical_threshold = absl::Seconds(10);
  ClockSkewMonitor monitor("acme", clock_, options);
  Respond(monitor, absl::Seconds(6));
  EXPECT_EQ(monitor.level(), ClockSkewLevel::kWarning);
  Respond(monitor, absl::Seconds(-11));
  EXPECT_EQ(monitor.level(), ClockSkewLevel::kCritical);
}

// The "clock_skew" lines of `out` for `merchant`.
std::vector<std::string> SkewLines(absl::string_view out,
                                   absl::string_view merchant) {
  std::vector<std::string> lines;
  for (const absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::StrContains(line, R"("event":"clock_skew")") &&
        absl::StrContains(line,
                          absl::StrCat(R"("merchant":")", merchant, "\""))) {
      lines.emplace_back(line);
    }
  }
  return lines;
}

TEST_F(ClockSkewMonitorTest, LogsTransitionsOnly) {
  SetMinLogLevel(LogLevel::kInfo);
  FlushLogs();
  ::testing::internal::CaptureStdout();
  {
    ClockSkewMonitor monitor("acme", clock_, WindowOf(1));
    for (const int seconds : {0, 10, 31, 40, 91, 95, 31, 0, 5}) {
      Respond(monitor, absl::Seconds(seconds));
    }
  }
  FlushLogs();
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::vector<std::string> lines = SkewLines(out, "acme");
  ASSERT_EQ(lines.size(), 4u) << out;

  EXPECT_TRUE(absl::StrContains(lines[0], R"("level":"warning")")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], R"("offset_seconds":"31.0")"))
      << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], R"("skew_level":"warning")"))
      << lines[0];
  EXPECT_TRUE(absl::StrContains(
      lines[0],
      "Clink refuses request timestamps more than 120 s off; fix NTP on this "
      "node"))
      << lines[0];
  EXPECT_FALSE(absl::StrContains(lines[0], "NOT_SERVING")) << lines[0];

  EXPECT_TRUE(absl::StrContains(lines[1], R"("level":"error")")) << lines[1];
  EXPECT_TRUE(absl::StrContains(lines[1], R"("offset_seconds":"91.0")"))
      << lines[1];
  EXPECT_TRUE(absl::StrContains(lines[1], R"("skew_level":"critical")"))
      << lines[1];
  EXPECT_TRUE(absl::StrContains(
      lines[1],
      "the gateway reports NOT_SERVING until the offset is back under 90 s"))
      << lines[1];

  // Critical back to warning is a transition too.
  EXPECT_TRUE(absl::StrContains(lines[2], R"("level":"warning")")) << lines[2];
  EXPECT_TRUE(absl::StrContains(lines[2], R"("offset_seconds":"31.0")"))
      << lines[2];

  EXPECT_TRUE(absl::StrContains(lines[3], R"("level":"info")")) << lines[3];
  EXPECT_TRUE(absl::StrContains(lines[3], R"("offset_seconds":"0.0")"))
      << lines[3];
  EXPECT_TRUE(absl::StrContains(lines[3], R"("skew_level":"ok")")) << lines[3];
}

TEST_F(ClockSkewMonitorTest, LogsTheEstimateWithOneDecimal) {
  SetMinLogLevel(LogLevel::kInfo);
  FlushLogs();
  ::testing::internal::CaptureStdout();
  {
    ClockSkewMonitor monitor("globex", clock_, WindowOf(3));
    Respond(monitor, absl::Seconds(0));
    Respond(monitor, absl::Seconds(-85));  // estimate -42.5 s
  }
  FlushLogs();
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::vector<std::string> lines = SkewLines(out, "globex");
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_TRUE(absl::StrContains(lines[0], R"("offset_seconds":"-42.5")"))
      << lines[0];
}

TEST_F(ClockSkewMonitorTest, ConcurrentCallersClaimEachSlotOnce) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(1), &observer_);
  observer_.set_monitor(&monitor);
  // Every thread answers rounds 0, 1, 2, ... arriving at t + r s: the first
  // caller to reach a round always finds its slot free (no claim is ahead of
  // it), and only one caller per round may win it. So exactly one sample per
  // round, however the threads interleave.
  constexpr int kRounds = 1000;
  const absl::Time t = clock_.Now();
  std::vector<std::string> dates;
  for (int r = 0; r < kRounds; ++r) {
    dates.push_back(HttpDate(t + absl::Seconds(r) + absl::Seconds(7)));
  }
  Notification start;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      start.WaitForNotification();
      for (int r = 0; r < kRounds; ++r) {
        const absl::Time received = t + absl::Seconds(r);
        monitor.OnResponse(dates[r], received, received);
      }
    });
  }
  start.Notify();
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(observer_.calls().size(), static_cast<size_t>(kRounds));
}

TEST_F(ClockSkewMonitorTest, ConcurrentResponsesGiveAConsistentEstimate) {
  ClockSkewMonitor monitor("acme", clock_, WindowOf(5), &observer_);
  observer_.set_monitor(&monitor);
  // Response j arrives at t + j s; its sample is exactly 45 s. One thread in
  // four sends an unparseable Date, one in four none.
  constexpr int kResponses = 500;
  const absl::Time t = clock_.Now();
  std::vector<std::string> dates;
  for (int j = 0; j < kResponses; ++j) {
    dates.push_back(HttpDate(t + absl::Seconds(j) - absl::Milliseconds(600) +
                             absl::Seconds(45)));
  }
  std::atomic<int> inconsistent_reads{0};
  Notification start;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      start.WaitForNotification();
      for (int j = 0; j < kResponses; ++j) {
        const absl::Time received = t + absl::Seconds(j);
        const std::string date = i % 4 == 2   ? "not a date"
                                 : i % 4 == 3 ? ""
                                              : dates[j];
        monitor.OnResponse(date, received - absl::Milliseconds(200), received);
        const absl::optional<absl::Duration> offset = monitor.offset();
        if (offset.has_value() && *offset != absl::Seconds(45)) {
          ++inconsistent_reads;
        }
      }
    });
  }
  start.Notify();
  for (std::thread& thread : threads) thread.join();
  // After the race, one more response is always sampled.
  const absl::Time last = t + absl::Seconds(kResponses);
  monitor.OnResponse(
      HttpDate(last - absl::Milliseconds(600) + absl::Seconds(45)),
      last - absl::Milliseconds(200), last);

  EXPECT_EQ(inconsistent_reads.load(), 0);
  EXPECT_EQ(monitor.offset(), absl::Seconds(45));
  EXPECT_EQ(monitor.level(), ClockSkewLevel::kWarning);
  const std::vector<RecordingObserver::Call> calls = observer_.calls();
  ASSERT_GE(calls.size(), 1u);
  // At most one sample per second of `received`.
  EXPECT_LE(calls.size(), static_cast<size_t>(kResponses + 1));
  for (const RecordingObserver::Call& call : calls) {
    EXPECT_EQ(call.offset, absl::Seconds(45));
    EXPECT_EQ(call.level, ClockSkewLevel::kWarning);
  }
}

}  // namespace
}  // namespace clink_gateway::clink
