#include "adapters/clink/token_bucket.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

TEST(TokenBucketTest, BurstThenOneTokenPerInterval) {
  TokenBucket bucket(/*rate_per_second=*/10, /*burst=*/3);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  const absl::Time far = t0 + absl::Hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bucket.Reserve(t0, far), t0) << i;
  EXPECT_EQ(bucket.Reserve(t0, far), t0 + absl::Milliseconds(100));
  EXPECT_EQ(bucket.Reserve(t0, far), t0 + absl::Milliseconds(200));
}

TEST(TokenBucketTest, RefusesWithoutTakingWhenTheStartWouldBeTooLate) {
  TokenBucket bucket(/*rate_per_second=*/10, /*burst=*/1);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(bucket.Reserve(t0, t0), t0);
  EXPECT_EQ(bucket.Reserve(t0, t0 + absl::Milliseconds(50)), absl::nullopt);
  // The refusal took nothing: the next token is still at +100 ms.
  EXPECT_EQ(bucket.Reserve(t0, t0 + absl::Seconds(1)),
            t0 + absl::Milliseconds(100));
}

TEST(TokenBucketTest, IdleTimeRefillsOnlyUpToTheBurst) {
  TokenBucket bucket(/*rate_per_second=*/10, /*burst=*/2);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  const absl::Time later = t0 + absl::Minutes(5);
  const absl::Time far = later + absl::Hours(1);
  EXPECT_EQ(bucket.Reserve(t0, far), t0);
  EXPECT_EQ(bucket.Reserve(later, far), later);
  EXPECT_EQ(bucket.Reserve(later, far), later);
  EXPECT_EQ(bucket.Reserve(later, far), later + absl::Milliseconds(100));
}

}  // namespace
}  // namespace clink_gateway::clink
