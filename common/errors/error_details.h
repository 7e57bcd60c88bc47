// The gateway's error vocabulary, shared by every layer: rich error details
// (google.rpc.ErrorInfo, BadRequest, RetryInfo) carried as absl::Status
// payloads, the ErrorInfo domains, and the outcome of a call.
// server/status_util.cc turns every payload into a google.rpc.Status detail,
// so the layers below the server never depend on gRPC.
//
// Every error the gateway returns carries exactly one ErrorInfo, built by
// AttachErrorInfo below (the only place one is built):
//   reason    UPPER_SNAKE_CASE (AIP-193), at most 63 characters, e.g.
//             UPSTREAM_TIMEOUT; see IsValidReason.
//   domain    who decided: kClinkDomain when Clink refused the request with
//             its own code (that code is in metadata "clink_code"),
//             kGatewayDomain for everything the gateway decided itself (its
//             checks, transport failures, bare HTTP statuses such as HTTP_503).
//   metadata  "outcome" (always; see Outcome) and whatever the producer adds
//             ("endpoint", "http_status", "clink_code", ...).
#ifndef CLINK_GATEWAY_COMMON_ERRORS_ERROR_DETAILS_H_
#define CLINK_GATEWAY_COMMON_ERRORS_ERROR_DETAILS_H_

#include <map>
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

// ErrorInfo domains: errors Clink reported with its own code, and errors the
// gateway decided itself.
inline constexpr absl::string_view kClinkDomain = "clinkbill.com";
inline constexpr absl::string_view kGatewayDomain = "gateway.clink";

// ErrorInfo reason of InvalidArgumentWithViolations: a request field the
// gateway's own checks refused (nothing was sent).
inline constexpr absl::string_view kInvalidRequestReason = "INVALID_REQUEST";

// Whether a request may have taken effect at Clink. A call's result carries it
// as a field (clink::CallResult::outcome); callers see it as ErrorInfo
// metadata "outcome".
enum class Outcome {
  kNotSent,    // Provably never reached Clink: a plain retry is safe.
  kRejected,   // Clink answered and did not act on it.
  kUnknown,    // May have reached Clink and taken effect.
  kCommitted,  // Clink acted on it.
};

// "not_sent", "rejected", "unknown", "committed".
absl::string_view OutcomeName(Outcome outcome);

// UPPER_SNAKE_CASE as AIP-193 has it: [A-Z][A-Z0-9_]*[A-Z0-9], 2-63
// characters.
bool IsValidReason(absl::string_view reason);

// Attaches the status's google.rpc.ErrorInfo: `reason` (IsValidReason; a
// programming error otherwise, caught by tests: the reason is replaced by
// INVALID_REASON so a caller never sees a malformed one) in `domain`, with
// metadata "outcome" = OutcomeName(outcome) plus `metadata`. Replaces any
// ErrorInfo the status had.
void AttachErrorInfo(absl::Status& status, absl::string_view domain,
                     absl::string_view reason, Outcome outcome,
                     std::map<std::string, std::string> metadata = {});

struct FieldViolation {
  std::string
      field;  // Proto field path, e.g. "price_data_list[0].unit_amount".
  std::string description;  // Why it is invalid.
};

// INVALID_ARGUMENT naming every violation in the message and in a BadRequest
// payload, with an ErrorInfo {`reason`, kGatewayDomain, outcome not_sent}:
// the gateway's own checks refused it before anything was sent.
absl::Status InvalidArgumentWithViolations(
    const std::vector<FieldViolation>& violations,
    absl::string_view reason = kInvalidRequestReason);

void AttachRetryInfo(absl::Status& status, absl::Duration retry_delay);

// Reads the payloads back (tests, logging, the gRPC edge).
absl::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& status);
absl::optional<google::rpc::BadRequest> GetBadRequest(
    const absl::Status& status);
absl::optional<google::rpc::RetryInfo> GetRetryInfo(const absl::Status& status);

}  // namespace clink_gateway::errors

#endif  // CLINK_GATEWAY_COMMON_ERRORS_ERROR_DETAILS_H_
