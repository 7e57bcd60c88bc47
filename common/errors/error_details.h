// Rich error details (google.rpc.ErrorInfo, BadRequest, RetryInfo) carried as
// absl::Status payloads. server/status_util.cc turns every payload into a
// google.rpc.Status detail, so the adapters never depend on gRPC.
#ifndef CLINK_GATEWAY_COMMON_ERRORS_ERROR_DETAILS_H_
#define CLINK_GATEWAY_COMMON_ERRORS_ERROR_DETAILS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "google/rpc/error_details.pb.h"

namespace clink_gateway::errors {

inline constexpr absl::string_view kErrorInfoTypeUrl =
    "type.googleapis.com/google.rpc.ErrorInfo";
inline constexpr absl::string_view kBadRequestTypeUrl =
    "type.googleapis.com/google.rpc.BadRequest";
inline constexpr absl::string_view kRetryInfoTypeUrl =
    "type.googleapis.com/google.rpc.RetryInfo";

// ErrorInfo domains: errors Clink reported, and errors the gateway decided
// itself.
inline constexpr absl::string_view kClinkDomain = "clinkbill.com";
inline constexpr absl::string_view kGatewayDomain = "gateway.clink";

struct FieldViolation {
  std::string
      field;  // Proto field path, e.g. "price_data_list[0].unit_amount".
  std::string description;  // Why it is invalid.
};

// INVALID_ARGUMENT naming every violation in the message and in a BadRequest
// payload.
absl::Status InvalidArgumentWithViolations(
    const std::vector<FieldViolation>& violations);

void AttachErrorInfo(absl::Status& status, const google::rpc::ErrorInfo& info);
void AttachRetryInfo(absl::Status& status, absl::Duration retry_delay);

// Reads the payloads back (tests, logging).
absl::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& status);
absl::optional<google::rpc::BadRequest> GetBadRequest(
    const absl::Status& status);
absl::optional<google::rpc::RetryInfo> GetRetryInfo(const absl::Status& status);

}  // namespace clink_gateway::errors

#endif  // CLINK_GATEWAY_COMMON_ERRORS_ERROR_DETAILS_H_
