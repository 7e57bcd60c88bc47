// GatewayMetrics as the webhook listener's observer
// (webhooks::WebhookObserver): deliveries by result, ingest duration, events
// stored by type.
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/events/event_types.h"
#include "adapters/webhooks/webhook_listener.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/metrics.h"
#include "server/metrics_internal.h"

namespace clink_gateway::server {

using metrics_internal::Add;
using metrics_internal::At;

namespace {
// The merchant label of a request whose path named no configured merchant.
constexpr char kUnknownMerchant[] = "unknown";
}  // namespace

void GatewayMetrics::RegisterWebhooks(
    const std::vector<std::string>& merchants) {
  prometheus::Registry& r = *registry_;
  auto& received =
      prometheus::BuildCounter()
          .Name("clink_gateway_webhooks_received_total")
          .Help("Clink webhook deliveries received, by merchant (\"unknown\" "
                "when the path named none) and result.")
          .Register(r);
  auto& ingest =
      prometheus::BuildHistogram()
          .Name("clink_gateway_webhook_ingest_duration_seconds")
          .Help("Time from a webhook request's start to the event store's "
                "answer (accepted and duplicate deliveries).")
          .Register(r);
  auto& stored = prometheus::BuildCounter()
                     .Name("clink_gateway_events_stored_total")
                     .Help("Webhook events newly stored, by merchant and "
                           "event type (a Clink event name, else \"other\").")
                     .Register(r);
  std::vector<std::string> names = merchants;
  names.push_back(kUnknownMerchant);
  for (const std::string& merchant : names) {
    WebhookSeries& s = webhooks_[merchant];
    for (int i = 0; i < webhooks::kWebhookResults; ++i) {
      s.received[i] = &received.Add(
          {{"merchant", merchant},
           {"result", std::string(webhooks::WebhookResultName(
                          static_cast<webhooks::WebhookResult>(i)))}});
    }
    if (merchant == kUnknownMerchant) continue;
    s.ingest = &ingest.Add({{"merchant", merchant}},
                           prometheus::Histogram::BucketBoundaries(
                               LatencyBuckets()));
    for (const std::string& type : events::KnownEventTypes()) {
      s.stored[type] = &stored.Add({{"merchant", merchant}, {"type", type}});
    }
    s.stored_other = &stored.Add({{"merchant", merchant}, {"type", "other"}});
  }
}

void GatewayMetrics::OnWebhookReceived(absl::string_view merchant,
                                       webhooks::WebhookResult result) {
  auto it = webhooks_.find(merchant);
  if (it == webhooks_.end()) it = webhooks_.find(kUnknownMerchant);
  if (it == webhooks_.end()) return;
  Add(At(it->second.received, result));
}

void GatewayMetrics::OnWebhookIngested(absl::string_view merchant,
                                       absl::Duration duration) {
  const auto it = webhooks_.find(merchant);
  if (it == webhooks_.end() || it->second.ingest == nullptr) return;
  it->second.ingest->Observe(absl::ToDoubleSeconds(duration));
}

void GatewayMetrics::OnWebhookEventStored(absl::string_view merchant,
                                          absl::string_view type) {
  const auto it = webhooks_.find(merchant);
  if (it == webhooks_.end()) return;
  const auto counter = it->second.stored.find(type);
  Add(counter != it->second.stored.end() ? counter->second
                                         : it->second.stored_other);
}

}  // namespace clink_gateway::server
