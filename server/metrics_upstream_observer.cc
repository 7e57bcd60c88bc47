// GatewayMetrics as the Clink client's observer (clink::UpstreamObserver:
// calls, attempts, retries, rejections, auth failures) and the egress
// policy's (http::EgressObserver).
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "server/metrics.h"
#include "server/metrics_internal.h"

namespace clink_gateway::server {

using metrics_internal::Add;
using metrics_internal::At;
using metrics_internal::StatusClassIndex;

void GatewayMetrics::OnCallStarted(const clink::RestMethod& method) {
  in_flight_->Increment();
}

void GatewayMetrics::OnCallFinished(const clink::RestMethod& method) {
  in_flight_->Decrement();
}

void GatewayMetrics::OnAttempt(const clink::AttemptInfo& attempt) {
  const MethodSeries* s = Find(*attempt.method);
  if (s == nullptr) return;
  s->upstream_requests[callers_.Index(attempt.caller)]
                      [StatusClassIndex(attempt.http_status)]
                          ->Increment();
  // Only requests that reached the wire: an attempt refused before sending
  // (connect failure, egress denial, shutdown) has no upstream latency, and
  // counting it as ~0 s would make Clink look faster during an outage.
  if (attempt.sent) {
    s->upstream_duration->Observe(absl::ToDoubleSeconds(attempt.duration));
  }
  if (attempt.response_bytes > 0) {
    s->response_bytes->Increment(static_cast<double>(attempt.response_bytes));
  }
  if (attempt.throttled) s->throttled->Increment();
  if (attempt.failure != http::FailureKind::kNone) {
    Add(At(transport_errors_, attempt.failure));
  }
  if (attempt.connections_opened > 0) {
    connections_opened_->Increment(attempt.connections_opened);
  } else if (attempt.sent) {
    connections_reused_->Increment();
  }
}

void GatewayMetrics::OnRetry(const clink::RestMethod& method) {
  if (const MethodSeries* s = Find(method)) s->retries->Increment();
}

void GatewayMetrics::OnRetryDenied(const clink::RestMethod& method,
                                   clink::RetryDenial reason) {
  Add(At(retries_denied_, reason));
}

void GatewayMetrics::OnRejected(const clink::RestMethod& method,
                                clink::RejectReason reason) {
  Add(At(rejections_, reason));
}

void GatewayMetrics::OnUnknownFields(const clink::RestMethod& method,
                                     int count) {
  if (const MethodSeries* s = Find(method)) s->unknown_fields->Increment(count);
}

void GatewayMetrics::OnAuthFailure(const clink::RestMethod& method,
                                   clink::AuthFailure reason) {
  Add(At(auth_failures_, reason));
}

void GatewayMetrics::OnEgressDenied(http::AddressClass reason) {
  Add(At(egress_denied_, reason));
}

void GatewayMetrics::OnEgressWouldDeny(http::AddressClass reason) {
  Add(At(egress_would_deny_, reason));
}

}  // namespace clink_gateway::server
