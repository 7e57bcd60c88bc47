// The non-blocking HTTP transport interface the Clink client sends through.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_HTTP_TRANSPORT_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_HTTP_TRANSPORT_H_

#include <cstdint>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "adapters/http/http_types.h"

namespace clink_gateway::http {

// The result of one call: either a complete HTTP response (any status code), or
// a transport failure with how far the request got.
struct HttpResult {
  absl::Status status;  // OK iff `response` holds a complete response.
  Delivery delivery = Delivery::kNotSent;
  FailureKind failure = FailureKind::kNone;  // kNone iff status.ok().
  HttpResponse response;                     // Valid when status.ok().
  // New connections the call opened (CURLINFO_NUM_CONNECTS): 0 when it ran on
  // a pooled connection or never got as far as connecting. For metrics.
  int connections_opened = 0;
  // Response bytes received (status line, headers and body), also when the
  // call failed part way. For metrics.
  int64_t response_bytes = 0;
  // FailureKind::kEgressDenied only: why the address was refused, the egress
  // policy's AddressClassName ("loopback", "private", ...).
  std::string egress_reason;
};

class HttpTransport {
 public:
  using DoneCallback = absl::AnyInvocable<void(HttpResult) &&>;

  virtual ~HttpTransport() = default;

  // Starts `request` and returns at once; never blocks on the network, nor
  // for options.not_before (the transport holds a delayed call itself and
  // starts it when due; no thread sleeps). `done` runs exactly once, on a
  // transport thread (or inline when the call fails before it starts, e.g. an
  // invalid request or after Shutdown), and must not block. Failures (status,
  // HttpResult::failure):
  //   kDeadlineExceeded, kDeadline: the deadline passed (before sending, also
  //     while waiting for not_before, or when not_before is not before the
  //     deadline: kNotSent).
  //   kUnavailable, kConnect: DNS, connect or TLS failure (always kNotSent).
  //   kUnavailable, kConnectionLost: reset, closed or truncated once the
  //     request may have been written (kUnknown).
  //   kUnavailable, kShutdown: the transport shut down (kNotSent if the call
  //     had not started, kUnknown if it was being sent).
  //   kInvalidArgument, kInvalidRequest: malformed path or header bytes
  //     (kNotSent). A signer's failure keeps the signer's code
  //     (kInvalidRequest, kNotSent).
  //   kInternal, kResponseTooLarge: a response larger than the cap.
  //   kPermissionDenied, kEgressDenied: the egress policy refused the address
  //     (kNotSent; HttpResult::egress_reason says why). Never retried.
  //   Anything else: kOther.
  // Status messages name the method and path, never the query, headers or
  // body.
  virtual void Send(HttpRequest request, SendOptions options,
                    DoneCallback done) = 0;
};

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_HTTP_TRANSPORT_H_
