// When the Clink client tries a call again, how long it waits first, and how
// many retries the gateway as a whole may spend (so a Clink outage is not
// amplified by the gateway's own retries).
//
// What may be retried (IsRetryable):
//   - any method, when nothing was sent: DNS, TCP connect or TLS handshake
//     failure (a stale pooled connection that failed before any byte was
//     written is already retried inside the transport);
//   - reads (GET), and writes Clink deduplicates itself (RestRule
//     .idempotent_upstream: refunds with the same refund_merchant_order_id),
//     also on a lost connection, an HTTP 5xx or 429, or a Clink envelope code
//     5xx or 429;
//   - nothing else: a payment whose request may have reached Clink is never
//     sent again; its caller gets the outcome (see error_mapping.h).
// A retry also needs: attempts left, the caller's deadline leaving room for the
// backoff plus a whole attempt, a Retry-After no longer than the configured
// maximum, and room in the retry budget.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_RETRY_POLICY_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_RETRY_POLICY_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/bit_gen_ref.h"
#include "absl/random/random.h"
#include "absl/time/time.h"
#include "adapters/http/http_transport.h"
#include "common/sync.h"

namespace clink_gateway::clink {

struct RetryOptions {
  // Attempts per call, the first included; 1 turns retries off.
  int max_attempts = 4;
  // Full-jitter exponential backoff: before retry n (1-based) the client waits
  // a uniformly random time in [0, min(max_backoff, initial_backoff * 2^(n-1))).
  absl::Duration initial_backoff = absl::Milliseconds(25);
  absl::Duration max_backoff = absl::Seconds(1);
  // The least time a retry is assumed to need (the previous attempt's duration
  // counts when longer); no retry starts unless the deadline leaves this much
  // after the backoff.
  absl::Duration min_attempt_time = absl::Milliseconds(20);
  // A Retry-After (on a 429 or 503) longer than this is not waited out: the
  // caller gets the error with a RetryInfo instead.
  absl::Duration max_retry_after = absl::Seconds(5);
  // Retry budget: over a sliding `budget_window`, retries may be at most
  // `budget_ratio` of the calls started, plus `budget_min_per_second` per
  // second of the window (so a quiet gateway can still retry).
  double budget_ratio = 0.1;
  int budget_min_per_second = 10;
  absl::Duration budget_window = absl::Seconds(10);
};

// Whether the failed attempt may be repeated at all (the policy in the file
// comment), from the transport result and, when a response arrived, its HTTP
// status and Clink envelope code (0 when none).
bool IsRetryable(bool mutating, bool idempotent_upstream,
                 const http::HttpResult& result, int64_t envelope_code);

// The wait before retry `retry` (1 for the first retry): full jitter.
absl::Duration Backoff(const RetryOptions& options, int retry,
                       absl::BitGenRef gen);

// Counts calls and retries in one-second buckets over the window. Thread-safe.
class RetryBudget {
 public:
  explicit RetryBudget(const RetryOptions& options);

  // A call's first attempt.
  void RecordCall(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // True (and the retry is counted) when the budget has room for one more.
  bool TryRetry(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Bucket {
    int64_t second = -1;  // Unix second this bucket counts; -1 unused.
    int64_t calls = 0;
    int64_t retries = 0;
  };
  Bucket& BucketFor(int64_t second) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double ratio_;
  const int64_t min_retries_;  // budget_min_per_second * window seconds
  Mutex mu_;
  std::vector<Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_RETRY_POLICY_H_
