// The gateway's one table from an upstream outcome to a gRPC-compatible status.
//
// | Outcome                                              | Code | ErrorInfo
// outcome |
// |------------------------------------------------------|-----------------------|-------------------|
// | deadline passed before sending                       | DEADLINE_EXCEEDED |
// not_sent          | | DNS / connect / TLS failure (nothing sent)           |
// UNAVAILABLE           | not_sent          | | timeout or reset after sending,
// GET                  | DEADLINE_EXCEEDED / UNAVAILABLE | unknown | | timeout
// or reset after sending, POST                 | UNKNOWN (never retry blindly)
// | unknown   | | ... POST that Clink deduplicates (refunds)           |
// UNAVAILABLE (retry with the same reference) | unknown | | HTTP 401/403, or
// Clink code 401/403/80102221-3       | INTERNAL: the gateway's key was refused
// (never UNAUTHENTICATED: the caller is fine) | rejected | | Clink code
// 80102203/80102212/80102213                | INTERNAL: the gateway's timestamp
// was refused (clock skew) | rejected | | HTTP 404, or Clink code 404/71160007
// | NOT_FOUND             | rejected          | | HTTP 429, or Clink code 429
// | RESOURCE_EXHAUSTED + RetryInfo (Retry-After) | rejected | | HTTP 5xx (or
// Clink code 5xx), GET                    | UNAVAILABLE           | unknown |
// | HTTP 5xx (or Clink code 5xx), POST                   | UNKNOWN (UNAVAILABLE
// if Clink deduplicates) | unknown | | HTTP 400/422, or Clink code 400 |
// INVALID_ARGUMENT      | rejected          | | HTTP 409, or Clink code 409 |
// ABORTED               | rejected          | | any other Clink code (declined,
// insufficient balance, ...) | FAILED_PRECONDITION | rejected      | | any
// other HTTP status                                | INTERNAL (GET) / UNKNOWN
// (POST) | unknown | | 2xx whose body is not a JSON object, GET             |
// INTERNAL              | committed         | | 2xx whose body is not a JSON
// object, POST            | UNKNOWN               | unknown           | |
// gateway shutting down                                | UNAVAILABLE | not_sent
// / unknown |
//
// Every error carries a google.rpc.ErrorInfo: `reason` is Clink's own code when
// Clink sent one (domain "clinkbill.com"), otherwise a gateway reason such as
// UPSTREAM_OUTCOME_UNKNOWN (domain "gateway.clink"); metadata holds
// `http_status` (when a response arrived), `outcome` (not_sent, unknown,
// rejected, committed) and `endpoint`. Messages never contain headers, bodies
// or keys.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_ERROR_MAPPING_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_ERROR_MAPPING_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/http/http_types.h"

namespace clink_gateway::clink {

// Everything known about how one upstream call ended.
struct UpstreamOutcome {
  std::string endpoint;   // "POST /payment": for messages and metadata.
  bool mutating = false;  // POST/PUT/DELETE.
  bool idempotent_upstream =
      false;  // Clink deduplicates it (RestRule.idempotent_upstream).
  // Transport result: non-OK when no complete response arrived.
  absl::Status transport_status;
  http::Delivery delivery = http::Delivery::kNotSent;
  // When a response arrived:
  int http_status = 0;
  bool body_is_json = true;  // The body parsed as a JSON object.
  bool has_envelope_code = false;
  int64_t envelope_code = 0;
  std::string
      envelope_msg;         // Clink's msg (kept to 200 characters in messages).
  std::string retry_after;  // Retry-After header value, if any.
  absl::Time now = absl::UnixEpoch();  // For an HTTP-date Retry-After.
};

// OK iff a 2xx response carried a JSON body with envelope code 200 (or no
// envelope at all).
absl::Status MapUpstreamOutcome(const UpstreamOutcome& outcome);

// Parses Retry-After (delta-seconds or an HTTP-date) into a delay; 1 s when
// absent or invalid.
absl::Duration ParseRetryAfter(absl::string_view value, absl::Time now);

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_ERROR_MAPPING_H_
