// GatewayMetrics: the registry (every family and series, created in Create),
// the process collector and the /metrics exposer. The observer roles are in
// metrics_*_observer.cc.
#include "server/metrics.h"

#include <algorithm>
#include <exception>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/listener_wake.h"
#include "common/sync.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/metrics_internal.h"

namespace clink_gateway::server {
namespace {

using metrics_internal::CodeIndex;
using metrics_internal::kGrpcCodeNames;
using metrics_internal::kStatusClassNames;

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Histogram;

prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = prometheus::MetricType::Gauge;
  family.metric.emplace_back();
  family.metric.back().gauge.value = value;
  return family;
}

// The standard process_* metrics, read from procfs at each scrape.
class ProcessCollector final : public prometheus::Collectable {
 public:
  explicit ProcessCollector(ProcfsPaths paths) : paths_(std::move(paths)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    const absl::StatusOr<ProcessStats> stats = ReadProcessStats(paths_);
    if (!stats.ok()) return families;  // Nothing rather than wrong values.
    prometheus::MetricFamily cpu;
    cpu.name = "process_cpu_seconds_total";
    cpu.help = "Total user and system CPU time spent in seconds.";
    cpu.type = prometheus::MetricType::Counter;
    cpu.metric.emplace_back();
    cpu.metric.back().counter.value = stats->cpu_seconds;
    families.push_back(std::move(cpu));
    families.push_back(GaugeFamily("process_resident_memory_bytes",
                                   "Resident memory size in bytes.",
                                   stats->resident_memory_bytes));
    families.push_back(GaugeFamily("process_virtual_memory_bytes",
                                   "Virtual memory size in bytes.",
                                   stats->virtual_memory_bytes));
    families.push_back(GaugeFamily(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        stats->start_time_seconds));
    families.push_back(GaugeFamily("process_threads", "Number of OS threads.",
                                   static_cast<double>(stats->threads)));
    if (stats->open_fds.has_value()) {
      families.push_back(GaugeFamily("process_open_fds",
                                     "Number of open file descriptors.",
                                     static_cast<double>(*stats->open_fds)));
    }
    if (stats->max_fds.has_value()) {
      families.push_back(
          GaugeFamily("process_max_fds",
                      "Maximum number of open file descriptors.",
                      static_cast<double>(*stats->max_fds)));
    }
    return families;
  }

 private:
  const ProcfsPaths paths_;
};

}  // namespace

const std::vector<double>& LatencyBuckets() {
  static const auto* const buckets = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return *buckets;
}

absl::string_view GrpcCodeLabel(absl::StatusCode code) {
  return kGrpcCodeNames[CodeIndex(code)];
}

GatewayMetrics::GatewayMetrics(
    const std::vector<std::string>& caller_principals)
    : registry_(std::make_shared<prometheus::Registry>()),
      callers_(caller_principals) {}

GatewayMetrics::~GatewayMetrics() { StopServing(); }

void GatewayMetrics::StopServing() {
  if (exposer_ == nullptr) return;
  StopWithKnocks(serving_host_, serving_port_, [this] { exposer_.reset(); });
}

absl::StatusOr<std::unique_ptr<GatewayMetrics>> GatewayMetrics::Create(
    const std::vector<const clink::RestMethod*>& methods,
    const BuildInfo& build, const std::vector<std::string>& merchants,
    const ProcfsPaths& procfs,
    const std::vector<std::string>& caller_principals) {
  absl::flat_hash_set<absl::string_view> seen;
  for (const std::string& merchant : merchants) {
    if (merchant.empty()) {
      return absl::InvalidArgumentError("metrics: an empty merchant name");
    }
    if (!seen.insert(merchant).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: merchant \"", merchant, "\" given twice"));
    }
  }
  std::unique_ptr<GatewayMetrics> metrics(
      new GatewayMetrics(caller_principals));
  try {
    metrics->Register(methods, build, merchants, procfs);
    metrics->RegisterEventFamilies(*metrics->registry_);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("cannot register the metrics: ", e.what()));
  }
  return metrics;
}

void GatewayMetrics::Register(
    const std::vector<const clink::RestMethod*>& methods,
    const BuildInfo& build, const std::vector<std::string>& merchants,
    const ProcfsPaths& procfs) {
  prometheus::Registry& r = *registry_;

  // gRPC server (go-grpc-prometheus).
  auto& started = BuildCounter()
                      .Name("grpc_server_started_total")
                      .Help("Total number of RPCs started on the server.")
                      .Register(r);
  auto& handled = BuildCounter()
                      .Name("grpc_server_handled_total")
                      .Help("Total number of RPCs completed on the server, "
                            "regardless of success or failure.")
                      .Register(r);
  auto& handling = BuildHistogram()
                       .Name("grpc_server_handling_seconds")
                       .Help("Histogram of response latency (seconds) of gRPC "
                             "that had been application-level handled by the "
                             "server.")
                       .Register(r);
  auto& received = BuildCounter()
                       .Name("grpc_server_msg_received_total")
                       .Help("Total number of RPC stream messages received on "
                             "the server.")
                       .Register(r);
  auto& sent = BuildCounter()
                   .Name("grpc_server_msg_sent_total")
                   .Help("Total number of gRPC stream messages sent by the "
                         "server.")
                   .Register(r);
  auto& authz_denied =
      BuildCounter()
          .Name("clink_gateway_authz_denied_total")
          .Help("Calls the --authz_policy_file policy refused "
                "(PERMISSION_DENIED, nothing sent to Clink), by RPC.")
          .Register(r);

  // Clink.
  auto& upstream_requests =
      BuildCounter()
          .Name("clink_gateway_upstream_requests_total")
          .Help("HTTP attempts sent to Clink, by endpoint (path template), "
                "method and status class (error: no response).")
          .Register(r);
  auto& upstream_duration =
      BuildHistogram()
          .Name("clink_gateway_upstream_request_duration_seconds")
          .Help("Duration of HTTP attempts to Clink that were sent, by "
                "endpoint.")
          .Register(r);
  auto& response_bytes =
      BuildCounter()
          .Name("clink_gateway_upstream_response_bytes_total")
          .Help("Response bytes (headers and body) received from Clink.")
          .Register(r);
  auto& unknown_fields =
      BuildCounter()
          .Name("clink_gateway_upstream_unknown_fields_total")
          .Help("JSON members in Clink's successful responses that no proto "
                "field holds (API drift).")
          .Register(r);
  auto& throttled = BuildCounter()
                        .Name("clink_gateway_upstream_throttled_total")
                        .Help("Attempts Clink refused with its rate limit "
                              "(HTTP or code 429).")
                        .Register(r);
  auto& retries = BuildCounter()
                      .Name("clink_gateway_upstream_retries_total")
                      .Help("Further attempts sent after a retryable failure.")
                      .Register(r);
  connections_opened_ = &BuildCounter()
                             .Name("clink_gateway_upstream_connections_opened_"
                                   "total")
                             .Help("New connections (TCP and TLS) opened to "
                                   "Clink.")
                             .Register(r)
                             .Add({});
  connections_reused_ =
      &BuildCounter()
           .Name("clink_gateway_upstream_connections_reused_total")
           .Help("Attempts sent on an already open (pooled) connection.")
           .Register(r)
           .Add({});
  in_flight_ = &BuildGauge()
                    .Name("clink_gateway_upstream_in_flight_requests")
                    .Help("Calls to Clink in progress (retries and their "
                          "waits included).")
                    .Register(r)
                    .Add({});
  auto& transport_errors =
      BuildCounter()
          .Name("clink_gateway_upstream_transport_errors_total")
          .Help("Attempts that got no complete HTTP response, by kind.")
          .Register(r);
  for (int i = 0; i < kFailureKinds; ++i) {
    const auto kind = static_cast<http::FailureKind>(i);
    if (kind == http::FailureKind::kNone) continue;
    const absl::string_view name = http::FailureKindName(kind);
    if (name == "invalid") break;  // Past the enum's last value.
    transport_errors_[i] =
        &transport_errors.Add({{"kind", std::string(name)}});
  }
  auto& denied = BuildCounter()
                     .Name("clink_gateway_upstream_retries_denied_total")
                     .Help("Retryable failures not retried, by reason.")
                     .Register(r);
  for (int i = 0; i < kRetryDenials; ++i) {
    retries_denied_[i] = &denied.Add(
        {{"reason", std::string(clink::RetryDenialName(
                        static_cast<clink::RetryDenial>(i)))}});
  }
  auto& auth = BuildCounter()
                   .Name("clink_gateway_upstream_auth_failures_total")
                   .Help("Clink refused the gateway's own API key (reason=key) "
                         "or request timestamp (reason=timestamp).")
                   .Register(r);
  for (int i = 0; i < kAuthFailures; ++i) {
    const auto reason = static_cast<clink::AuthFailure>(i);
    if (reason == clink::AuthFailure::kNone) continue;
    auth_failures_[i] =
        &auth.Add({{"reason", std::string(clink::AuthFailureName(reason))}});
  }
  auto& rejections = BuildCounter()
                         .Name("clink_gateway_rejections_total")
                         .Help("Calls refused with RESOURCE_EXHAUSTED before "
                               "anything was sent to Clink, by reason.")
                         .Register(r);
  for (int i = 0; i < kRejectReasons; ++i) {
    rejections_[i] = &rejections.Add(
        {{"reason", std::string(clink::RejectReasonName(
                        static_cast<clink::RejectReason>(i)))}});
  }
  auto& authz_reloads =
      BuildCounter()
          .Name("clink_gateway_authz_policy_reloads_total")
          .Help("Changes of the --authz_policy_file seen: applied (valid, in "
                "force within the reload interval) or rejected (invalid, the "
                "last good policy stays in force).")
          .Register(r);
  authz_reloads_applied_ = &authz_reloads.Add({{"result", "applied"}});
  authz_reloads_rejected_ = &authz_reloads.Add({{"result", "rejected"}});
  auto& idempotency = BuildCounter()
                          .Name("clink_gateway_idempotency_requests_total")
                          .Help("Calls with an idempotency key, by what the "
                                "idempotency layer did.")
                          .Register(r);
  for (int i = 0; i < kIdempotencyResults; ++i) {
    idempotency_[i] = &idempotency.Add(
        {{"result", std::string(clink::IdempotencyResultName(
                        static_cast<clink::IdempotencyResult>(i)))}});
  }
  auto& store_retries =
      BuildCounter()
          .Name("clink_gateway_idempotency_store_retries_total")
          .Help("Background retries of idempotency store writes whose first "
                "attempt failed, by operation (complete, release) and result "
                "(ok; not_held: the lease token no longer holds the key; "
                "failed: tried again later; gave_up: the key is settled as "
                "abandoned when its lease ends).")
          .Register(r);
  for (int w = 0; w < kStoreWrites; ++w) {
    for (int i = 0; i < kStoreRetryResults; ++i) {
      store_retries_[w][i] = &store_retries.Add(
          {{"operation", std::string(clink::StoreWriteName(
                             static_cast<clink::StoreWrite>(w)))},
           {"result", std::string(clink::StoreRetryResultName(
                          static_cast<clink::StoreRetryResult>(i)))}});
    }
  }
  auto& egress_denied =
      BuildCounter()
          .Name("clink_gateway_egress_denied_total")
          .Help("Addresses the egress policy refused to connect to (or to "
                "send on, for a pooled connection), by address class.")
          .Register(r);
  auto& egress_would_deny =
      BuildCounter()
          .Name("clink_gateway_egress_would_deny_total")
          .Help("Report-only mode: addresses the egress policy would have "
                "refused, and let through, by address class.")
          .Register(r);
  for (int i = 0; i < kAddressClasses; ++i) {
    const auto reason = static_cast<http::AddressClass>(i);
    if (reason == http::AddressClass::kNone) continue;
    const std::string name(http::AddressClassName(reason));
    egress_denied_[i] = &egress_denied.Add({{"reason", name}});
    egress_would_deny_[i] = &egress_would_deny.Add({{"reason", name}});
  }
  // Credentials and clock, per merchant.
  static_assert(static_cast<int>(credentials::ReloadOutcome::kUnreadable) + 1 ==
                    kReloadOutcomes,
                "a series per credentials::ReloadOutcome");
  auto& reloads = BuildCounter()
                      .Name("clink_gateway_key_reloads_total")
                      .Help("Re-reads of a merchant's key directory, by "
                            "outcome (applied: new keys in use; unchanged; "
                            "else a bad update, rejected: the keys in use "
                            "are kept).")
                      .Register(r);
  last_reload_success_family_ =
      &BuildGauge()
           .Name("clink_gateway_key_last_reload_success_timestamp_seconds")
           .Help("Unix time of the last successful read of a merchant's key "
                 "directory (the load at startup, then reloads that were "
                 "applied or unchanged).")
           .Register(r);
  key_info_family_ =
      &BuildGauge()
           .Name("clink_gateway_key_info")
           .Help("The keys in use (value 1), by merchant, slot (signing, or "
                 "previous during a key roll) and key fingerprint.")
           .Register(r);
  key_refusals_family_ =
      &BuildCounter()
           .Name("clink_gateway_upstream_key_refusals_total")
           .Help("Clink refused a key in use (HTTP 401 or a key envelope code), "
                 "by merchant and key fingerprint.")
           .Register(r);
  auto& fallbacks =
      BuildCounter()
          .Name("clink_gateway_key_fallbacks_total")
          .Help("Calls whose key Clink refused, sent again with the "
                "merchant's other key: recovered (accepted) or refused.")
          .Register(r);
  clock_offset_family_ =
      &BuildGauge()
           .Name("clink_gateway_clock_offset_seconds")
           .Help("Clink's clock minus the gateway's (from Clink's Date "
                 "headers; positive: the gateway is behind).")
           .Register(r);
  auto& skew_critical =
      BuildGauge()
          .Name("clink_gateway_clock_skew_critical")
          .Help("1 while the clock offset to Clink is critical (the gateway "
                "reports NOT_SERVING), else 0.")
          .Register(r);
  auto& reconciliations =
      BuildCounter()
          .Name("clink_gateway_outcome_reconciliations_total")
          .Help("Keyed payments and subscriptions whose outcome was unknown, "
                "looked up at Clink: resolved (the order was found and the "
                "key settled with it) or unresolved (still UNKNOWN).")
          .Register(r);
  reconciliations_pending_ =
      &BuildGauge()
           .Name("clink_gateway_outcome_reconciliations_pending")
           .Help("Unknown outcomes being looked up at Clink now.")
           .Register(r)
           .Add({});
  for (const std::string& name : merchants) {
    auto series = std::make_unique<MerchantSeries>();
    for (const clink::ReconciliationResult result :
         {clink::ReconciliationResult::kResolved,
          clink::ReconciliationResult::kUnresolved}) {
      series->reconciliations[static_cast<size_t>(result)] =
          &reconciliations.Add(
              {{"merchant", name},
               {"result",
                std::string(clink::ReconciliationResultName(result))}});
    }
    series->name = name;
    for (int i = 0; i < kReloadOutcomes; ++i) {
      series->reloads[i] = &reloads.Add(
          {{"merchant", name},
           {"outcome", std::string(credentials::ReloadOutcomeName(
                           static_cast<credentials::ReloadOutcome>(i)))}});
    }
    series->fallback_recovered =
        &fallbacks.Add({{"merchant", name}, {"result", "recovered"}});
    series->fallback_refused =
        &fallbacks.Add({{"merchant", name}, {"result", "refused"}});
    series->skew_critical = &skew_critical.Add({{"merchant", name}});
    merchants_[name] = std::move(series);
  }

  BuildGauge()
      .Name("clink_gateway_build_info")
      .Help("The gateway's version and git commit (value 1).")
      .Register(r)
      .Add({{"version", build.version}, {"git_commit", build.git_commit}})
      .Set(1);

  for (const clink::RestMethod* method : methods) {
    const prometheus::Labels rpc = {
        {"grpc_service", method->method->service()->full_name()},
        {"grpc_method", method->method->name()},
        {"grpc_type", "unary"}};
    const std::string endpoint = method->path_template;
    MethodSeries& s = methods_[method];
    s.started = &started.Add(rpc);
    s.msg_received = &received.Add(rpc);
    s.msg_sent = &sent.Add(rpc);
    s.authz_denied = &authz_denied.Add(
        {{"grpc_service", method->method->service()->full_name()},
         {"grpc_method", method->method->name()}});
    const std::vector<std::string>& callers = callers_.values();
    s.handled.resize(callers.size());
    s.upstream_requests.resize(callers.size());
    for (size_t caller = 0; caller < callers.size(); ++caller) {
      for (int code = 0; code < kGrpcCodes; ++code) {
        prometheus::Labels labels = rpc;
        labels["grpc_code"] = std::string(kGrpcCodeNames[code]);
        labels["caller"] = callers[caller];
        s.handled[caller][code] = &handled.Add(labels);
      }
      for (int c = 0; c < kStatusClasses; ++c) {
        s.upstream_requests[caller][c] = &upstream_requests.Add(
            {{"endpoint", endpoint},
             {"method", std::string(http::MethodName(method->http_method))},
             {"status_class", std::string(kStatusClassNames[c])},
             {"caller", callers[caller]}});
      }
    }
    s.handling_seconds = &handling.Add(rpc, LatencyBuckets());
    s.upstream_duration =
        &upstream_duration.Add({{"endpoint", endpoint}}, LatencyBuckets());
    s.response_bytes = &response_bytes.Add({{"endpoint", endpoint}});
    s.unknown_fields = &unknown_fields.Add({{"endpoint", endpoint}});
    s.throttled = &throttled.Add({{"endpoint", endpoint}});
    s.retries = &retries.Add({{"endpoint", endpoint}});
  }
  process_collector_ = std::make_shared<ProcessCollector>(procfs);

  RegisterWebhooks(merchants);
}

absl::StatusOr<int> GatewayMetrics::Serve(const std::string& listen) {
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError("metrics are already served");
  }
  std::vector<int> ports;
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(listen,
                                                         /*num_threads=*/2);
    exposer->RegisterCollectable(registry_);
    exposer->RegisterCollectable(process_collector_);
    ports = exposer->GetListeningPorts();
    exposer_ = std::move(exposer);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen,
                     " (address in use or invalid?): ", e.what()));
  }
  if (ports.empty()) {
    exposer_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": no port bound"));
  }
  serving_host_ = KnockHost(listen);
  serving_port_ = ports.front();
  return ports.front();
}

std::string GatewayMetrics::ExpositionText() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : process_collector_->Collect()) {
    families.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(families);
}

const GatewayMetrics::MethodSeries* GatewayMetrics::Find(
    const clink::RestMethod& method) const {
  const auto it = methods_.find(&method);
  return it == methods_.end() ? nullptr : &it->second;
}

GatewayMetrics::MerchantSeries* GatewayMetrics::FindMerchant(
    absl::string_view merchant) const {
  const auto it = merchants_.find(merchant);
  return it == merchants_.end() ? nullptr : it->second.get();
}

}  // namespace clink_gateway::server
