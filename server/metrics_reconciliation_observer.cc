// GatewayMetrics as the outcome reconciler's observer
// (clink::ReconciliationObserver): unknown outcomes resolved or not, and how
// many are being looked up.
#include <cstddef>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "server/metrics.h"
#include "server/metrics_internal.h"

namespace clink_gateway::server {

using metrics_internal::Add;

void GatewayMetrics::OnReconciliation(absl::string_view merchant,
                                      clink::ReconciliationResult result) {
  MerchantSeries* m = FindMerchant(merchant);
  const size_t i = static_cast<size_t>(result);
  if (m != nullptr && i < m->reconciliations.size()) {
    Add(m->reconciliations[i]);
  }
}

void GatewayMetrics::OnReconciliationsPending(size_t pending) {
  if (reconciliations_pending_ != nullptr) {
    reconciliations_pending_->Set(static_cast<double>(pending));
  }
}

}  // namespace clink_gateway::server
