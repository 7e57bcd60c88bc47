// Adds authentication to an outgoing request.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_REQUEST_SIGNER_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_REQUEST_SIGNER_H_

#include "absl/status/status.h"
#include "adapters/http/http_types.h"

namespace clink_gateway::http {

// Implementations must be thread-safe and cheap: the transport calls Sign() on
// its network thread immediately before each request is sent, so time-based
// headers reflect the moment of sending. A non-OK status fails the call without
// sending anything.
class RequestSigner {
 public:
  virtual ~RequestSigner();
  [[nodiscard]] virtual absl::Status Sign(HttpRequest& request) const = 0;
};

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_REQUEST_SIGNER_H_
