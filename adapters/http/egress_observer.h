// What the HTTP transport reports about its egress policy's decisions, for
// metrics. The adapters know nothing of Prometheus:
// server/metrics_upstream_observer.cc implements this interface
// (clink_gateway_egress_denied_total{reason} and
// clink_gateway_egress_would_deny_total{reason}), and tests can record the
// calls.
//
// Called on the transport's loop thread (or the thread calling Create()).
// Implementations must be thread-safe, cheap and must never block. The
// defaults do nothing.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_EGRESS_OBSERVER_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_EGRESS_OBSERVER_H_

#include "adapters/http/egress_policy.h"

namespace clink_gateway::http {

class EgressObserver {
 public:
  virtual ~EgressObserver() = default;

  // The policy refused an address (a connection was not opened, or a pooled
  // connection was not used). One call per refused address per transfer.
  virtual void OnEgressDenied(AddressClass reason) {}
  // Report-only mode: the policy would have refused an address, and the
  // connection went ahead. One call per address per transfer.
  virtual void OnEgressWouldDeny(AddressClass reason) {}
};

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_EGRESS_OBSERVER_H_
