// GatewayMetrics as the EventService's observer (EventObserver): the
// clink_gateway_event_* families (see metrics.h).
#include <string>

#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "server/metrics.h"

namespace clink_gateway::server {
namespace {

prometheus::Labels SubscriptionLabels(absl::string_view merchant,
                                      absl::string_view subscription) {
  return {{"merchant", std::string(merchant)},
          {"subscription", std::string(subscription)}};
}

}  // namespace

struct GatewayMetrics::EventFamilies {
  prometheus::Family<prometheus::Gauge>* subscribers = nullptr;
  prometheus::Family<prometheus::Counter>* deliveries = nullptr;
  prometheus::Family<prometheus::Counter>* acknowledged = nullptr;
  prometheus::Family<prometheus::Gauge>* oldest_unacked_age = nullptr;
  prometheus::Family<prometheus::Counter>* store_errors = nullptr;
};

void GatewayMetrics::RegisterEventFamilies(prometheus::Registry& registry) {
  auto families = std::make_shared<EventFamilies>();
  families->subscribers =
      &prometheus::BuildGauge()
           .Name("clink_gateway_event_stream_subscribers")
           .Help("Open StreamEvents streams, by subscription.")
           .Register(registry);
  families->deliveries =
      &prometheus::BuildCounter()
           .Name("clink_gateway_event_deliveries_total")
           .Help(
               "Events handed to a stream, first deliveries and "
               "redeliveries (lease expired unacknowledged).")
           .Register(registry);
  families->acknowledged =
      &prometheus::BuildCounter()
           .Name("clink_gateway_event_acknowledged_total")
           .Help("Events acknowledged (AcknowledgeEvents).")
           .Register(registry);
  families->oldest_unacked_age =
      &prometheus::BuildGauge()
           .Name("clink_gateway_event_oldest_unacked_age_seconds")
           .Help(
               "Age of the subscription's oldest unacknowledged event "
               "(0: none), refreshed while it has open streams.")
           .Register(registry);
  families->store_errors =
      &prometheus::BuildCounter()
           .Name("clink_gateway_event_store_errors_total")
           .Help(
               "Failed event store calls of the EventService, by "
               "operation.")
           .Register(registry);
  // EventService operations, so the series exist from the start.
  for (const char* operation : {"claim", "acknowledge", "ensure_subscription",
                                "oldest_unacknowledged", "get", "list"}) {
    families->store_errors->Add({{"operation", operation}});
  }
  events_ = std::move(families);
}

void GatewayMetrics::OnStreamOpened(absl::string_view merchant,
                                    absl::string_view subscription) {
  if (FindMerchant(merchant) == nullptr) return;
  events_->subscribers->Add(SubscriptionLabels(merchant, subscription))
      .Increment();
}

void GatewayMetrics::OnStreamClosed(absl::string_view merchant,
                                    absl::string_view subscription) {
  if (FindMerchant(merchant) == nullptr) return;
  events_->subscribers->Add(SubscriptionLabels(merchant, subscription))
      .Decrement();
}

void GatewayMetrics::OnDelivered(absl::string_view merchant,
                                 absl::string_view subscription,
                                 int32_t delivery_attempt) {
  if (FindMerchant(merchant) == nullptr) return;
  prometheus::Labels labels = SubscriptionLabels(merchant, subscription);
  labels["delivery"] = delivery_attempt <= 1 ? "first" : "redelivery";
  events_->deliveries->Add(labels).Increment();
}

void GatewayMetrics::OnAcknowledged(absl::string_view merchant,
                                    absl::string_view subscription, int count) {
  if (FindMerchant(merchant) == nullptr || count <= 0) return;
  events_->acknowledged->Add(SubscriptionLabels(merchant, subscription))
      .Increment(count);
}

void GatewayMetrics::OnOldestUnacknowledgedAge(absl::string_view merchant,
                                               absl::string_view subscription,
                                               absl::Duration age) {
  if (FindMerchant(merchant) == nullptr) return;
  events_->oldest_unacked_age->Add(SubscriptionLabels(merchant, subscription))
      .Set(absl::ToDoubleSeconds(age));
}

void GatewayMetrics::OnStoreError(absl::string_view operation) {
  events_->store_errors->Add({{"operation", std::string(operation)}})
      .Increment();
}

}  // namespace clink_gateway::server
