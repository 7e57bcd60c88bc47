// Value types exchanged with the HTTP transport.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_HTTP_TYPES_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_HTTP_TYPES_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace clink_gateway::http {

enum class Method { kGet, kPost, kPut, kDelete, kPatch };

// "GET", "POST", "PUT", "DELETE", "PATCH".
absl::string_view MethodName(Method method);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// One request to the upstream. `path_and_query` is relative to the transport's
// base URL (for example "/checkout/session/sess_1" or
// "/order?pageNum=1&pageSize=20").
struct HttpRequest {
  Method method = Method::kGet;
  std::string path_and_query;
  HeaderList
      headers;  // Extra headers; the signer adds X-API-KEY and X-Timestamp.
  // JSON, or what `headers`' Content-Type says (e.g. a multipart/form-data body
  // built by multipart.h); empty means no body (and no Content-Type). Sent as
  // it is, with Content-Length, for POST, PUT, PATCH and DELETE; a GET cannot
  // have one.
  std::string body;
  // True when sending the request twice is harmless (a GET, or a POST the
  // upstream deduplicates). When false, the transport never lets it leave
  // twice: libcurl's silent resend on a reused connection that died before
  // answering is aborted, and the call fails with Delivery::kUnknown instead.
  // (A resend is still allowed when no byte of the request was written: the
  // pooled connection was already dead, so the upstream saw nothing.)
  bool idempotent = false;
};

struct HttpResponse {
  int status_code = 0;
  HeaderList headers;  // Names lower-cased.
  std::string body;

  // Value of the first header named `name` (lower case), or empty.
  absl::string_view Header(absl::string_view name) const;
};

class RequestSigner;  // request_signer.h

// Per-call options.
struct SendOptions {
  // The call must complete by this time; a call whose deadline has already
  // passed when it would be sent is failed with kDeadlineExceeded and nothing
  // is sent.
  absl::Time deadline = absl::InfiniteFuture();
  // Sent upstream as X-Request-Id when not empty.
  std::string request_id;
  // The request is not started before this time (a retry's backoff, or a wait
  // for the client-side rate limit). The deadline still applies: a call whose
  // deadline passes while it waits fails with kDeadlineExceeded / kNotSent.
  absl::Time not_before = absl::InfinitePast();
  // Signs this call instead of the transport's own signer (a merchant's key
  // set chooses the key per attempt); null uses the transport's. Must stay
  // valid until the call completes.
  const RequestSigner* signer = nullptr;
  // When set and it is notified (the caller gave up), the call is aborted: not
  // started if it has not been, else its transfer is dropped, within the
  // transport loop's poll interval (1 s at most). It then fails with
  // kCancelled and FailureKind::kOther (kNotSent if it never started,
  // kUnknown once the request may have been written). Only for calls that
  // are safe to abandon (reads): a write must never be cut off mid-flight.
  std::shared_ptr<const Notification> cancelled;
};

// Whether a failed call may have reached the upstream. Drives error mapping: a
// POST that may have been received must never look safe to retry. The transport
// decides it from whether libcurl started writing the request on an established
// (TLS) connection, not from the error code alone.
enum class Delivery {
  kNotSent,   // Provably never left: invalid request, deadline already passed,
              // DNS, connect or TLS handshake failure, shutdown before sending.
  kUnknown,   // Some or all of the request may have been written; no complete
              // response (timeout, reset, truncated or oversized response,
              // shutdown in flight).
  kReceived,  // A complete HTTP response arrived (any status code).
};

absl::string_view DeliveryName(Delivery delivery);

// Why a call produced no complete response: drives retries (only a connect
// failure or a lost connection is worth another attempt) and the transport
// error metrics.
enum class FailureKind {
  kNone,            // A complete response arrived.
  kInvalidRequest,  // Rejected before sending (path, header bytes, signer).
  kDeadline,        // The deadline passed (before or after sending).
  kConnect,         // DNS, TCP connect or TLS handshake failed; nothing sent.
  kConnectionLost,  // Reset, closed or truncated after the request was
                    // (possibly) written.
  kResponseTooLarge,
  kShutdown,        // The transport was shutting down.
  kOther,           // Any other libcurl error.
  kEgressDenied,    // The egress policy refused every address (or the pooled
                    // connection) the call would have used; nothing sent.
                    // Never retried.
};

absl::string_view FailureKindName(FailureKind kind);

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_HTTP_TYPES_H_
