// GatewayMetrics as the idempotency layer's observer (the idempotency part of
// clink::UpstreamObserver): keyed calls and the store's background retries.
#include <cstddef>

#include "prometheus/counter.h"
#include "server/metrics.h"
#include "server/metrics_internal.h"

namespace clink_gateway::server {

using metrics_internal::Add;
using metrics_internal::At;

void GatewayMetrics::OnIdempotency(const clink::RestMethod& method,
                                   clink::IdempotencyResult result) {
  Add(At(idempotency_, result));
}

void GatewayMetrics::OnIdempotencyStoreRetry(clink::StoreWrite write,
                                             clink::StoreRetryResult result) {
  const size_t w = static_cast<size_t>(write);
  if (w < store_retries_.size()) Add(At(store_retries_[w], result));
}

}  // namespace clink_gateway::server
