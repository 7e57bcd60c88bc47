// What the metrics' source files share (server/metrics*.cc): label value
// tables and the small helpers that index them. Internal to //server:metrics.
#ifndef CLINK_GATEWAY_SERVER_METRICS_INTERNAL_H_
#define CLINK_GATEWAY_SERVER_METRICS_INTERNAL_H_

#include <array>
#include <cstddef>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "prometheus/counter.h"

namespace clink_gateway::server::metrics_internal {

using prometheus::Counter;

// absl::StatusCode values 0..16, in Go's spelling (codes.Code.String()).
inline constexpr absl::string_view kGrpcCodeNames[] = {
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
};

// Index 0 is "no response"; 1..5 are 1xx..5xx.
inline constexpr absl::string_view kStatusClassNames[] = {
    "error", "1xx", "2xx", "3xx", "4xx", "5xx"};

inline int StatusClassIndex(int http_status) {
  if (http_status >= 100 && http_status <= 599) return http_status / 100;
  return 0;
}

inline int CodeIndex(absl::StatusCode code) {
  const int index = static_cast<int>(code);
  return index >= 0 && index < static_cast<int>(std::size(kGrpcCodeNames))
             ? index
             : static_cast<int>(absl::StatusCode::kUnknown);
}

// Clamps an enum's value into an array's range (the arrays are sized from the
// enums; this only guards against a value added to an enum and not here).
template <typename E, size_t N>
Counter* At(const std::array<Counter*, N>& counters, E value) {
  const size_t index = static_cast<size_t>(value);
  return index < N ? counters[index] : nullptr;
}

inline void Add(Counter* counter, double value = 1) {
  if (counter != nullptr) counter->Increment(value);
}
}  // namespace clink_gateway::server::metrics_internal

#endif  // CLINK_GATEWAY_SERVER_METRICS_INTERNAL_H_
