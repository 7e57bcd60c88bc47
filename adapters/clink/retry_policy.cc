#include "adapters/clink/retry_policy.h"

#include <algorithm>
#include <cmath>

namespace clink_gateway::clink {
namespace {

bool IsTransientCode(int64_t code) {
  return code == 429 || (code >= 500 && code <= 599);
}

}  // namespace

bool IsRetryable(bool mutating, bool idempotent_upstream,
                 const http::HttpResult& result, int64_t envelope_code) {
  using http::FailureKind;
  if (!result.status.ok()) {
    switch (result.failure) {
      case FailureKind::kConnect:
        // Provably never left (the transport only says kConnect when nothing
        // was written).
        return result.delivery == http::Delivery::kNotSent;
      case FailureKind::kConnectionLost:
        return !mutating || idempotent_upstream;
      case FailureKind::kNone:
      case FailureKind::kInvalidRequest:
      case FailureKind::kDeadline:
      case FailureKind::kResponseTooLarge:
      case FailureKind::kShutdown:
      case FailureKind::kOther:
      // A policy decision: another attempt would be refused the same way.
      case FailureKind::kEgressDenied:
        return false;
    }
    return false;
  }
  if (mutating && !idempotent_upstream) return false;
  return IsTransientCode(result.response.status_code) ||
         IsTransientCode(envelope_code);
}

absl::Duration Backoff(const RetryOptions& options, int retry,
                       absl::BitGenRef gen) {
  absl::Duration ceiling = options.initial_backoff;
  for (int i = 1; i < retry && ceiling < options.max_backoff; ++i) {
    ceiling *= 2;
  }
  ceiling = std::min(ceiling, options.max_backoff);
  if (ceiling <= absl::ZeroDuration()) return absl::ZeroDuration();
  const int64_t micros = absl::ToInt64Microseconds(ceiling);
  return absl::Microseconds(absl::Uniform(gen, int64_t{0}, micros));
}

RetryBudget::RetryBudget(const RetryOptions& options)
    : ratio_(options.budget_ratio),
      min_retries_(static_cast<int64_t>(options.budget_min_per_second) *
                   std::max<int64_t>(
                       1, absl::ToInt64Seconds(options.budget_window))),
      buckets_(static_cast<size_t>(std::max<int64_t>(
          1, absl::ToInt64Seconds(options.budget_window)))) {}

RetryBudget::Bucket& RetryBudget::BucketFor(int64_t second) {
  Bucket& bucket = buckets_[static_cast<size_t>(second) % buckets_.size()];
  if (bucket.second != second) bucket = Bucket{second, 0, 0};
  return bucket;
}

void RetryBudget::RecordCall(absl::Time now) {
  MutexLock lock(&mu_);
  ++BucketFor(absl::ToUnixSeconds(now)).calls;
}

bool RetryBudget::TryRetry(absl::Time now) {
  const int64_t second = absl::ToUnixSeconds(now);
  MutexLock lock(&mu_);
  const int64_t oldest = second - static_cast<int64_t>(buckets_.size()) + 1;
  int64_t calls = 0;
  int64_t retries = 0;
  for (const Bucket& bucket : buckets_) {
    if (bucket.second >= oldest && bucket.second <= second) {
      calls += bucket.calls;
      retries += bucket.retries;
    }
  }
  const double allowed =
      static_cast<double>(min_retries_) + ratio_ * static_cast<double>(calls);
  if (static_cast<double>(retries) + 1 > allowed) return false;
  ++BucketFor(second).retries;
  return true;
}

}  // namespace clink_gateway::clink
