#include "adapters/clink/upstream_observer.h"

namespace clink_gateway::clink {

absl::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kOverloaded:
      return "overloaded";
    case RejectReason::kRateLimited:
      return "rate_limited";
  }
  return "overloaded";
}

absl::string_view RetryDenialName(RetryDenial denial) {
  switch (denial) {
    case RetryDenial::kBudget:
      return "budget";
    case RetryDenial::kDeadline:
      return "deadline";
    case RetryDenial::kMaxAttempts:
      return "max_attempts";
    case RetryDenial::kRetryAfter:
      return "retry_after";
    case RetryDenial::kRateLimited:
      return "rate_limited";
  }
  return "budget";
}

absl::string_view IdempotencyResultName(IdempotencyResult result) {
  switch (result) {
    case IdempotencyResult::kClaimed:
      return "claimed";
    case IdempotencyResult::kReplayed:
      return "replayed";
    case IdempotencyResult::kMismatched:
      return "mismatched";
    case IdempotencyResult::kInUse:
      return "in_use";
    case IdempotencyResult::kStoreError:
      return "store_error";
  }
  return "store_error";
}

absl::string_view StoreWriteName(StoreWrite write) {
  switch (write) {
    case StoreWrite::kComplete:
      return "complete";
    case StoreWrite::kRelease:
      return "release";
  }
  return "release";
}

absl::string_view StoreRetryResultName(StoreRetryResult result) {
  switch (result) {
    case StoreRetryResult::kOk:
      return "ok";
    case StoreRetryResult::kNotHeld:
      return "not_held";
    case StoreRetryResult::kFailed:
      return "failed";
    case StoreRetryResult::kGaveUp:
      return "gave_up";
  }
  return "failed";
}

UpstreamObserver& NoUpstreamObserver() {
  static UpstreamObserver* const observer = new UpstreamObserver();
  return *observer;
}

}  // namespace clink_gateway::clink
