#include "adapters/clink/upstream_observer.h"

namespace clink_gateway::clink {

absl::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kOverloaded:
      return "gateway_overloaded";
    case RejectReason::kRateLimited:
      return "upstream_rate_limited";
  }
  return "gateway_overloaded";
}

absl::string_view IdempotencyResultName(IdempotencyResult result) {
  switch (result) {
    case IdempotencyResult::kClaimed:
      return "claimed";
    case IdempotencyResult::kReplayed:
      return "replayed";
    case IdempotencyResult::kKeyReused:
      return "key_reused";
    case IdempotencyResult::kKeyInUse:
      return "key_in_use";
    case IdempotencyResult::kStoreFull:
      return "store_full";
    case IdempotencyResult::kStoreError:
      return "store_error";
  }
  return "store_error";
}

UpstreamObserver& NoUpstreamObserver() {
  static UpstreamObserver* const observer = new UpstreamObserver();
  return *observer;
}

}  // namespace clink_gateway::clink
