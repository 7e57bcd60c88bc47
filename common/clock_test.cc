#include "common/clock.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway {
namespace {

TEST(SystemClockTest, IsASingletonThatTracksRealTime) {
  EXPECT_EQ(&SystemClock(), &SystemClock());
  const absl::Time before = absl::Now();
  const absl::Time now = SystemClock().Now();
  const absl::Time after = absl::Now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

TEST(FakeClockTest, StartsAtAFixedInstant) {
  FakeClock clock;
  EXPECT_EQ(clock.Now(),
            absl::FromUnixSeconds(FakeClock::kDefaultStartUnixSeconds));
  EXPECT_EQ(clock.Now(), clock.Now());
}

TEST(FakeClockTest, SetAndAdvance) {
  FakeClock clock(absl::FromUnixMillis(1000));
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(clock.Now(), absl::FromUnixMillis(1250));
  clock.SetTime(absl::FromUnixSeconds(42));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(42));
  const Clock& as_interface = clock;
  EXPECT_EQ(as_interface.Now(), absl::FromUnixSeconds(42));
}

}  // namespace
}  // namespace clink_gateway
