// A client-side rate limit toward Clink, so the gateway stays under Clink's own
// limit instead of collecting 429s: a token bucket of `burst` tokens refilled
// at `rate_per_second`, implemented as a virtual schedule (GCRA) so that a
// caller can reserve a future start time instead of sleeping.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_TOKEN_BUCKET_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_TOKEN_BUCKET_H_

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/sync.h"

namespace clink_gateway::clink {

class TokenBucket {
 public:
  // `rate_per_second` > 0, `burst` >= 1 (checked by the gateway's options).
  TokenBucket(double rate_per_second, int burst);

  // Takes one token: returns when the request may start (`now` when a token is
  // free, later when the bucket is empty), or nullopt without taking anything
  // when that would be after `latest_start`. Thread-safe.
  absl::optional<absl::Time> Reserve(absl::Time now, absl::Time latest_start)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const absl::Duration interval_;   // one token per interval
  const absl::Duration tolerance_;  // (burst - 1) intervals
  Mutex mu_;
  // When the bucket would be full again if nothing else were taken.
  absl::Time next_free_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_TOKEN_BUCKET_H_
