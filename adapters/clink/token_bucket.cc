#include "adapters/clink/token_bucket.h"

#include <algorithm>

namespace clink_gateway::clink {

TokenBucket::TokenBucket(double rate_per_second, int burst)
    : interval_(absl::Seconds(1) / rate_per_second),
      tolerance_(interval_ * (std::max(burst, 1) - 1)) {}

absl::optional<absl::Time> TokenBucket::Reserve(absl::Time now,
                                                absl::Time latest_start) {
  MutexLock lock(&mu_);
  // The schedule never lags behind `now`: unused capacity is not banked
  // beyond `burst` tokens.
  const absl::Time schedule = std::max(next_free_, now);
  const absl::Time start = std::max(now, schedule - tolerance_);
  if (start > latest_start) return absl::nullopt;
  next_free_ = schedule + interval_;
  return start;
}

}  // namespace clink_gateway::clink
