#include "server/clock_probe.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/http/http_transport.h"
#include "adapters/http/http_types.h"
#include "adapters/http/request_signer.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

using clink::ClockSkewLevel;
using clink::ClockSkewMonitor;
using clink::ClockSkewOptions;

// Records every call; the test answers them (or not) when it chooses.
class FakeTransport final : public http::HttpTransport {
 public:
  struct Sent {
    http::HttpRequest request;
    http::SendOptions options;
    DoneCallback done;
  };

  void Send(http::HttpRequest request, http::SendOptions options,
            DoneCallback done) override {
    calls.push_back({std::move(request), std::move(options), std::move(done)});
  }

  std::vector<Sent> calls;
};

// An IMF-fixdate Date header for `t` (truncated to the second).
std::string DateHeader(absl::Time t) {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", t, absl::UTCTimeZone());
}

http::HttpResult Answer(absl::Status status, absl::Time date) {
  http::HttpResult result;
  result.status = std::move(status);
  result.delivery = http::Delivery::kReceived;
  result.response.status_code = 404;  // GET / has no resource; Date is enough
  result.response.headers.emplace_back("date", DateHeader(date));
  return result;
}

ClockSkewOptions EverySample() {
  ClockSkewOptions options;
  options.min_sample_interval = absl::ZeroDuration();
  options.window = 1;
  return options;
}

class ClockProbeTest : public ::testing::Test {
 protected:
  // Puts `monitor` 100.5 s behind Clink: critical (threshold 90 s).
  void MakeCritical(ClockSkewMonitor& monitor) {
    const absl::Time now = clock_.Now();
    monitor.OnResponse(DateHeader(now + absl::Seconds(100)), now, now);
    ASSERT_EQ(monitor.level(), ClockSkewLevel::kCritical);
  }

  FakeClock clock_;
  ClockSkewMonitor critical_{"critical", clock_, EverySample()};
  ClockSkewMonitor fine_{"fine", clock_, EverySample()};
  FakeTransport critical_transport_;
  FakeTransport fine_transport_;
  // The thread never fires on its own: the test runs the rounds.
  ClockProbe probe_{
      {{&critical_transport_, &critical_}, {&fine_transport_, &fine_}},
      clock_,
      absl::InfiniteDuration()};
};

TEST_F(ClockProbeTest, ProbesNothingWhileNoClockIsCritical) {
  probe_.ProbeOnce();
  EXPECT_TRUE(critical_transport_.calls.empty());
  EXPECT_TRUE(fine_transport_.calls.empty());
}

TEST_F(ClockProbeTest, ProbesOnlyTheCriticalMerchantWithAnUnsignedGet) {
  MakeCritical(critical_);
  const absl::Time sent = clock_.Now();
  probe_.ProbeOnce();

  EXPECT_TRUE(fine_transport_.calls.empty());
  ASSERT_EQ(critical_transport_.calls.size(), 1u);
  const FakeTransport::Sent& call = critical_transport_.calls[0];
  EXPECT_EQ(call.request.method, http::Method::kGet);
  EXPECT_EQ(call.request.path_and_query, "/");
  EXPECT_TRUE(call.request.idempotent);
  EXPECT_TRUE(call.request.body.empty());
  EXPECT_EQ(call.options.deadline, sent + absl::Seconds(5));
  // A signer of its own that adds nothing: no API key goes out.
  ASSERT_NE(call.options.signer, nullptr);
  http::HttpRequest signed_request = call.request;
  ASSERT_TRUE(call.options.signer->Sign(signed_request).ok());
  EXPECT_TRUE(signed_request.headers.empty());
}

TEST_F(ClockProbeTest, EachRoundProbesAgainWhileStillCritical) {
  MakeCritical(critical_);
  probe_.ProbeOnce();
  probe_.ProbeOnce();
  EXPECT_EQ(critical_transport_.calls.size(), 2u);
}

TEST_F(ClockProbeTest, TheAnswersDateIsMeasuredAgainstSentAndReceived) {
  MakeCritical(critical_);
  const absl::Time sent = clock_.Now();
  probe_.ProbeOnce();
  ASSERT_EQ(critical_transport_.calls.size(), 1u);

  // Answered 2 s later; Clink's clock read sent + 1 s (the midpoint).
  clock_.Advance(absl::Seconds(2));
  std::move(critical_transport_.calls[0].done)(
      Answer(absl::OkStatus(), sent + absl::Seconds(1)));

  // Date + 0.5 s (truncated to the second) minus the midpoint of sent and
  // received: back in sync, so readiness recovers.
  ASSERT_TRUE(critical_.offset().has_value());
  EXPECT_EQ(*critical_.offset(), absl::Milliseconds(500));
  EXPECT_EQ(critical_.level(), ClockSkewLevel::kOk);

  probe_.ProbeOnce();  // no longer critical: no more probes
  EXPECT_EQ(critical_transport_.calls.size(), 1u);
}

TEST_F(ClockProbeTest, AFailedProbeIsNotMeasured) {
  MakeCritical(critical_);
  const absl::Duration before = *critical_.offset();
  probe_.ProbeOnce();
  ASSERT_EQ(critical_transport_.calls.size(), 1u);

  std::move(critical_transport_.calls[0].done)(Answer(
      absl::UnavailableError("GET /: connection refused"), clock_.Now()));

  EXPECT_EQ(*critical_.offset(), before);
  EXPECT_EQ(critical_.level(), ClockSkewLevel::kCritical);
}

}  // namespace
}  // namespace clink_gateway::server
