// The gateway's one table from an upstream outcome to a gRPC-compatible status.
//
// clang-format off
// | Outcome                                             | Code                | outcome   |
// |-----------------------------------------------------|---------------------|-----------|
// | deadline passed before sending                      | DEADLINE_EXCEEDED   | not_sent  |
// | DNS / connect / TLS failure (nothing sent)          | UNAVAILABLE         | not_sent  |
// | timeout after sending, GET                          | DEADLINE_EXCEEDED   | unknown   |
// | connection lost after sending, GET                  | UNAVAILABLE         | unknown   |
// | timeout or connection lost after sending, POST      | UNKNOWN             | unknown   |
// | HTTP 401/403, or Clink code 401/403/80102221-3      | INTERNAL (1)        | rejected  |
// | Clink code 80102203/80102212/80102213 (timestamp)   | INTERNAL (1)        | rejected  |
// | HTTP 404, or Clink code 404/71160007                | NOT_FOUND           | rejected  |
// | HTTP 429, or Clink code 429                         | RESOURCE_EXHAUSTED (2) | rejected |
// | HTTP 5xx (or Clink code 5xx), GET                   | UNAVAILABLE         | unknown   |
// | HTTP 5xx (or Clink code 5xx), POST                  | UNKNOWN             | unknown   |
// | HTTP 400/422, or Clink code 400                     | INVALID_ARGUMENT    | rejected  |
// | HTTP 409, or Clink code 409                         | ABORTED             | rejected  |
// | other Clink code (declined, refund too large, ...)  | FAILED_PRECONDITION | rejected  |
// | other HTTP status (3xx, 1xx, ...), GET              | INTERNAL            | unknown   |
// | other HTTP status (3xx, 1xx, ...), POST             | UNKNOWN             | unknown   |
// | 2xx, body unreadable (not JSON, no envelope), GET   | INTERNAL            | committed |
// | 2xx, body unreadable (not JSON, no envelope), POST  | UNKNOWN             | unknown   |
// | 2xx, code 200, payload missing or amount unreadable | INTERNAL            | committed |
// | gateway shutting down                               | UNAVAILABLE / UNKNOWN | not_sent / unknown |
// | egress policy refused the address (3)               | PERMISSION_DENIED   | not_sent  |
// clang-format on
//
// (1) The gateway's own key or clock was refused: an operator problem, never
//     UNAUTHENTICATED (the caller's credentials are fine). Clink's message is
//     not passed on for these.
// (2) With a google.rpc.RetryInfo from Retry-After (1 s when absent).
// (3) Reason EGRESS_DENIED (domain gateway.clink), metadata `egress_reason` =
//     the address class (egress_policy.h AddressClassName: "loopback",
//     "private", "link_local", ...). Every address Clink's host resolved to (or
//     the pooled connection, or the proxy) is one the gateway may not connect
//     to: a configuration or DNS problem (or an SSRF attempt), never retried.
//     PERMISSION_DENIED rather than FAILED_PRECONDITION: the gateway's policy
//     refused, and retrying cannot help until the policy or DNS changes. After
//     an earlier attempt that may have reached Clink, a write is UNKNOWN
//     (outcome "unknown") as usual.
//
// Every error carries a google.rpc.ErrorInfo (errors::AttachErrorInfo). When
// Clink refused the request with its own envelope code, the domain is
// "clinkbill.com", metadata `clink_code` is that code verbatim, and `reason`
// names its class: API_KEY_REFUSED, TIMESTAMP_REFUSED, REQUEST_REJECTED
// (400/422), NOT_FOUND, CONFLICT, RATE_LIMITED, SERVER_ERROR (5xx) or DECLINED
// (any other code). Otherwise the gateway decided (domain "gateway.clink"):
// UPSTREAM_TIMEOUT, HTTP_503 (a bare HTTP status, no envelope) and the like.
// Metadata: `outcome` (the column above: whether the request may have taken
// effect; also UpstreamVerdict::outcome), `endpoint`, `http_status` when a
// response arrived, and `idempotent_upstream` = "true"
// when Clink deduplicates the call (refunds: retrying with the same
// refund_merchant_order_id is safe even when the outcome is unknown). A POST
// whose outcome is unknown is always UNKNOWN, a code callers do not retry
// blindly. Messages never contain headers, bodies or keys.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_ERROR_MAPPING_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_ERROR_MAPPING_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/http/http_types.h"
#include "common/errors/error_details.h"

namespace clink_gateway::clink {

// Whether a request may have taken effect at Clink (common/errors).
using errors::Outcome;
using errors::OutcomeName;

// Everything known about how one upstream call ended.
struct UpstreamOutcome {
  std::string endpoint;              // "POST /payment": messages and metadata.
  bool mutating = false;             // POST/PUT/DELETE.
  bool idempotent_upstream = false;  // RestRule.idempotent_upstream.
  // Transport result: non-OK when no complete response arrived.
  absl::Status transport_status;
  http::Delivery delivery = http::Delivery::kNotSent;
  http::FailureKind failure = http::FailureKind::kNone;
  // failure == kEgressDenied: HttpResult::egress_reason.
  std::string egress_reason;
  // Secret::Fingerprint() of the key the attempt was signed with, named in the
  // message when Clink refuses it; empty when unknown.
  std::string key_fingerprint;
  // When a response arrived:
  int http_status = 0;
  // The body read as a Clink response (a JSON object with an envelope code, or
  // a bare resource where the method allows one).
  bool body_readable = true;
  bool has_envelope_code = false;
  int64_t envelope_code = 0;
  std::string envelope_msg;  // Clink's msg; cut to 200 bytes in messages.
  // An earlier attempt of the same call may have reached Clink (its outcome
  // was unknown, e.g. a refund's 5xx before a retry): then no later answer can
  // make the call's outcome not_sent or rejected, only unknown.
  bool earlier_attempt_maybe_sent = false;
  // A success whose payload is missing, has an amount that could not be read,
  // or a value nested too deep to decode safely.
  bool incomplete = false;
  std::string retry_after;             // Retry-After header value, if any.
  absl::Time now = absl::UnixEpoch();  // For an HTTP-date Retry-After.
};

// How one upstream call ended, for the caller.
struct UpstreamVerdict {
  // OK iff a 2xx response carried a readable body with envelope code 200 (or
  // a bare resource where allowed) and a complete payload; else the error from
  // the table above, with its ErrorInfo (and RetryInfo on RESOURCE_EXHAUSTED).
  absl::Status status;
  // Whether the request may have taken effect: kCommitted when OK.
  Outcome outcome = Outcome::kCommitted;
};

UpstreamVerdict MapUpstreamOutcome(const UpstreamOutcome& outcome);

// Whether Clink refused the gateway's own credentials (alerts and metrics:
// these are operator problems, see (1) above).
enum class AuthFailure {
  kNone,
  kApiKey,     // HTTP 401/403, or Clink code 401/403/80102221-3.
  kTimestamp,  // Clink code 80102203/80102212/80102213: clock skew.
};

// "none", "key", "timestamp".
absl::string_view AuthFailureName(AuthFailure failure);

// Classifies one Clink code (an envelope code, or an HTTP status): the same
// lists MapUpstreamOutcome maps to INTERNAL.
AuthFailure AuthFailureOfCode(int64_t code);

// Classifies a response: Clink's envelope code when it names a key or
// timestamp refusal, else the HTTP status (401/403). `envelope_code` is read
// only when `has_envelope_code`.
AuthFailure AuthFailureOf(int http_status, bool has_envelope_code,
                          int64_t envelope_code);

// Parses Retry-After (delta-seconds or an HTTP-date) into a delay, at most 1 h;
// 1 s when absent or invalid.
absl::Duration ParseRetryAfter(absl::string_view value, absl::Time now);

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_ERROR_MAPPING_H_
