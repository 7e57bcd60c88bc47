// GatewayMetrics as the RPC forwarder's observer (RpcObserver): the gRPC
// server series, and the authorization policy's.
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "server/metrics.h"
#include "server/metrics_internal.h"

namespace clink_gateway::server {

using metrics_internal::CodeIndex;

void GatewayMetrics::OnRpcStarted(const clink::RestMethod& method) {
  const MethodSeries* s = Find(method);
  if (s == nullptr) return;
  s->started->Increment();
  s->msg_received->Increment();
}

void GatewayMetrics::OnRpcHandled(const clink::RestMethod& method,
                                  absl::StatusCode code, absl::Duration latency,
                                  absl::string_view caller) {
  const MethodSeries* s = Find(method);
  if (s == nullptr) return;
  s->handled[callers_.Index(caller)][CodeIndex(code)]->Increment();
  s->handling_seconds->Observe(absl::ToDoubleSeconds(latency));
  if (code == absl::StatusCode::kOk) s->msg_sent->Increment();
}

void GatewayMetrics::OnRpcDenied(const clink::RestMethod& method) {
  if (const MethodSeries* s = Find(method)) s->authz_denied->Increment();
}

void GatewayMetrics::OnAuthzPolicyReload(bool applied) {
  (applied ? authz_reloads_applied_ : authz_reloads_rejected_)->Increment();
}

}  // namespace clink_gateway::server
