// What the RPC forwarder reports about each gateway RPC, for the gRPC server
// metrics (server/metrics.h implements it). Thread-safe, cheap and
// non-blocking, like clink::UpstreamObserver; the defaults do nothing.
#ifndef CLINK_GATEWAY_SERVER_RPC_OBSERVER_H_
#define CLINK_GATEWAY_SERVER_RPC_OBSERVER_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/clink/rest_codec.h"

namespace clink_gateway::server {

class RpcObserver {
 public:
  virtual ~RpcObserver() = default;

  // The handler of `method`'s RPC started (its one request message arrived).
  virtual void OnRpcStarted(const clink::RestMethod& method) {}
  // It finished with `code` (whatever the path: validation failure, replay,
  // Clink's answer) `latency` after it started. Called once per started RPC,
  // just before the status is handed to gRPC.
  // The authorization policy refused it (before OnRpcHandled with
  // PERMISSION_DENIED).
  virtual void OnRpcDenied(const clink::RestMethod& method) {}
  virtual void OnRpcHandled(const clink::RestMethod& method,
                            absl::StatusCode code, absl::Duration latency) {}
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_RPC_OBSERVER_H_
