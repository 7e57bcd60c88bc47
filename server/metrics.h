// The gateway's Prometheus metrics: the only code that uses prometheus-cpp.
// It observes the RPC forwarder (RpcObserver), the Clink adapters
// (clink::UpstreamObserver, clink::ClockSkewObserver) and the key watcher
// (credentials::CredentialObserver), and serves the text exposition format on
// its own port with prometheus-cpp's pull Exposer (--metrics_listen).
//
// Every series is created at startup: per RPC and per Clink endpoint from the
// REST codec's methods, per merchant from the configured merchant names, and
// every bounded label value (gRPC codes, status classes, reasons, kinds,
// outcomes), so all of them are exported from the first scrape (at 0) and the
// hot path only increments pre-resolved counters (a lock-free lookup by
// method or merchant, then atomic adds; histograms take a per-series mutex).
// The exceptions follow state that is not known up front: the keys in use
// (their series come and go with the keys), the measured clock offset and the
// last successful key read (created with the first measurement or read). Those
// take a per-merchant mutex, on rare paths only. Label values come from
// bounded sets only: never ids, emails, amounts or anything else from a
// request, and keys only as fingerprints of the keys configured now.
//
// gRPC server metrics, go-grpc-prometheus names and labels, grpc_type="unary",
// grpc_code as Go spells it ("OK", "InvalidArgument", "Unavailable", ...),
// for the clink.gateway.v1 services (the health and reflection services are
// not counted):
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}
//   grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code,
//                             caller}
//       caller: the caller's bounded label (server/caller_labels.h): a
//       principal named in the authorization policy, "other" or "anonymous"
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}
//       histogram, from the handler's start to Finish
//   grpc_server_msg_received_total{grpc_service,grpc_method,grpc_type}
//   grpc_server_msg_sent_total{grpc_service,grpc_method,grpc_type}
// Toward Clink (endpoint = the path template, e.g. "/order/{order_id}";
// method = GET/POST/...), per HTTP attempt unless said otherwise:
//   clink_gateway_upstream_requests_total{endpoint,method,status_class,caller}
//       status_class 1xx..5xx, or "error" when no response arrived; caller
//       as for grpc_server_handled_total
//   clink_gateway_upstream_request_duration_seconds{endpoint}   histogram
//   clink_gateway_upstream_response_bytes_total{endpoint}
//   clink_gateway_upstream_connections_opened_total
//   clink_gateway_upstream_connections_reused_total   sent on a pooled one
//   clink_gateway_upstream_in_flight_requests         gauge, calls (not
//                                                      attempts) in progress
//   clink_gateway_upstream_transport_errors_total{kind}
//       one per http::FailureKind (FailureKindName): connect, deadline,
//       connection_lost, response_too_large, shutdown, invalid_request, other
//   clink_gateway_upstream_unknown_fields_total{endpoint}   Clink API drift
//   clink_gateway_upstream_throttled_total{endpoint}   Clink answered 429
//   clink_gateway_upstream_retries_total{endpoint}     further attempts sent
//   clink_gateway_upstream_retries_denied_total{reason}
//       budget, deadline, max_attempts, retry_after, rate_limited
//   clink_gateway_upstream_auth_failures_total{reason}   key, timestamp
//   clink_gateway_rejections_total{reason}   overloaded, rate_limited (calls
//       refused with RESOURCE_EXHAUSTED before anything was sent)
//   clink_gateway_idempotency_requests_total{result}
//       claimed, replayed, mismatched, in_use, store_error
// Unknown outcomes reconciled (adapters/idempotency/outcome_reconciler.h):
//   clink_gateway_outcome_reconciliations_total{merchant,result}
//       resolved (the order was found, the key settled with it) or
//       unresolved (the window passed, the reconciler was full, or the key's
//       record was no longer the unknown one)
//   clink_gateway_outcome_reconciliations_pending   gauge, in progress
// Egress policy (adapters/http/egress_policy.h), reason = the address class:
// unspecified, loopback, private, link_local, carrier_grade_nat, multicast,
// broadcast, reserved, documentation, unique_local, not_allowed_host (the
// AddressClassName values):
//   clink_gateway_egress_denied_total{reason}      addresses refused
//   clink_gateway_egress_would_deny_total{reason}  report-only: would have
//       been refused, let through
// Caller authorization (--authz_policy_file):
//   clink_gateway_authz_policy_reloads_total{result}   applied, rejected:
//       each change of the policy file the gateway saw, valid or not (an
//       invalid one leaves the last good policy in force)
//   clink_gateway_authz_denied_total{grpc_service,grpc_method}
//       calls the policy refused (PERMISSION_DENIED, nothing sent); they are
//       in grpc_server_handled_total{grpc_code="PermissionDenied"} too
// Credentials and clock, per merchant (the names given to Create: merchants
// not given there are ignored, so label values stay bounded):
//   clink_gateway_key_reloads_total{merchant,outcome}
//       every re-read of the merchant's key directory (KeyWatcher), outcome
//       applied, unchanged, missing, empty, invalid, unreadable
//       (ReloadOutcomeName); all six exist from the start
//   clink_gateway_key_last_reload_success_timestamp_seconds{merchant}
//       gauge, Unix seconds of the last successful read of the directory
//       (outcome applied or unchanged). The first key set reported for the
//       merchant (KeyWatcher::Start reports the set KeyRing::Load just read)
//       sets it to that moment if no reload has yet; until then it does not
//       exist (no fake 1970)
//   clink_gateway_key_info{merchant,slot,key_fingerprint}
//       gauge, 1 per key in use: slot "signing" (KeySet index 0) or
//       "previous" (index 1, during a key roll); the key's
//       Secret::Fingerprint(), never the key. A key leaving the set takes
//       its series with it
//   clink_gateway_upstream_key_refusals_total{merchant,key_fingerprint}
//       Clink refused that key (401/403, key codes); one series per key in
//       use, created at 0 when the key comes into use and removed when it
//       leaves. A refusal of a key not (or no longer) in use, e.g. a call
//       that started before a roll, is not counted here (it has no series;
//       OnAuthFailure still counts it under reason="key")
//   clink_gateway_key_fallbacks_total{merchant,result}
//       a refused call sent again with the merchant's other key: result
//       "recovered" (Clink accepted it) or "refused"
//   clink_gateway_clock_offset_seconds{merchant}
//       gauge, Clink's clock minus the gateway's (ClockSkewMonitor's
//       estimate); created with the first measurement, absent before
//   clink_gateway_clock_skew_critical{merchant}
//       gauge, 1 while the offset is critical (|offset| above the critical
//       threshold, 90 s by default: the gateway reports NOT_SERVING), else 0
// Webhooks (adapters/webhooks/webhook_listener.h), merchant = a configured
// merchant, or "unknown" when the request's path named none:
//   clink_gateway_webhooks_received_total{merchant,result}   every delivery,
//       result accepted, duplicate, malformed, bad_signature,
//       stale_timestamp, unknown_merchant, not_found, method_not_allowed,
//       unsupported_media_type, too_large, store_unavailable
//       (WebhookResultName); all exist from the start
//   clink_gateway_webhook_ingest_duration_seconds{merchant}   histogram,
//       request start to the store's answer, for accepted and duplicate
//       deliveries (latency buckets)
//   clink_gateway_events_stored_total{merchant,type}   events newly stored,
//       type one of the 44 §13.1 names (events::KnownEventTypes) or "other"
// Webhook events, EventService (merchant: a name given to Create, others are
// ignored; subscription: a validated subscription name, bounded by the event
// store's subscription cap per merchant):
//   clink_gateway_event_stream_subscribers{merchant,subscription}   gauge,
//       open StreamEvents streams
//   clink_gateway_event_deliveries_total{merchant,subscription,delivery}
//       events handed to a stream; delivery "first" or "redelivery"
//   clink_gateway_event_acknowledged_total{merchant,subscription}
//   clink_gateway_event_oldest_unacked_age_seconds{merchant,subscription}
//       gauge, age of the oldest unacknowledged event (0: none), refreshed
//       periodically while the subscription has open streams
//   clink_gateway_event_store_errors_total{operation}   failed EventStore
//       calls of the EventService (claim, acknowledge, ensure_subscription,
//       oldest_unacknowledged, get, list)
// The process:
//   clink_gateway_build_info{version,git_commit}   gauge, always 1
//   process_cpu_seconds_total, process_resident_memory_bytes,
//   process_virtual_memory_bytes, process_open_fds, process_max_fds,
//   process_threads, process_start_time_seconds   (from /proc at each scrape)
// prometheus-cpp's Exposer adds its own exposer_* series.
//
// Latency histograms (server and upstream) share buckets that resolve 100 µs
// to 30 s: 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25
// 0.5 1 2.5 5 10 30 (+Inf).
#ifndef CLINK_GATEWAY_SERVER_METRICS_H_
#define CLINK_GATEWAY_SERVER_METRICS_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/upstream_observer.h"
#include "adapters/idempotency/outcome_reconciler.h"
#include "adapters/credentials/key_set.h"
#include "adapters/credentials/key_watcher.h"
#include "adapters/http/egress_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/webhooks/webhook_listener.h"
#include "common/sync.h"
#include "server/caller_labels.h"
#include "server/event_observer.h"
#include "server/process_stats.h"
#include "server/rpc_observer.h"

namespace prometheus {
class Collectable;
class Counter;
class Exposer;
template <typename T>
class Family;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace clink_gateway::server {

struct BuildInfo {
  std::string version;
  std::string git_commit = "unknown";
};

// The latency histograms' bucket upper bounds, in seconds.
const std::vector<double>& LatencyBuckets();

// Go's name of a gRPC status code ("OK", "Canceled", "DeadlineExceeded",
// ...): the grpc_code label value existing dashboards match on.
absl::string_view GrpcCodeLabel(absl::StatusCode code);

class GatewayMetrics final : public clink::UpstreamObserver,
                             public clink::ClockSkewObserver,
                             public credentials::CredentialObserver,
                             public http::EgressObserver,
                             public webhooks::WebhookObserver,
                             public RpcObserver,
                             public EventObserver,
                             public clink::ReconciliationObserver {
 public:
  // Registers every family and creates every series for `methods` (the REST
  // codec's; they must outlive this object) and `merchants` (the configured
  // merchant names: the only merchant label values; INVALID_ARGUMENT for an
  // empty or repeated name). prometheus-cpp reports invalid names by
  // throwing: that becomes INTERNAL here. `procfs` is where the process
  // metrics are read from. `caller_principals` are the callers with a
  // `caller` label value of their own (see CallerLabels; e.g.
  // PrincipalsFromAuthzPolicyFile): every other caller is "other", callers
  // without identity "anonymous".
  static absl::StatusOr<std::unique_ptr<GatewayMetrics>> Create(
      const std::vector<const clink::RestMethod*>& methods,
      const BuildInfo& build,
      const std::vector<std::string>& merchants = {"default"},
      const ProcfsPaths& procfs = {},
      const std::vector<std::string>& caller_principals = {});

  ~GatewayMetrics() override;
  GatewayMetrics(const GatewayMetrics&) = delete;
  GatewayMetrics& operator=(const GatewayMetrics&) = delete;

  // Serves GET /metrics on `listen` ("host:port"; port 0 picks a free one)
  // from a small civetweb thread pool, and returns the bound port.
  // UNAVAILABLE when the address cannot be bound (prometheus-cpp throws; this
  // catches it). Call once.
  absl::StatusOr<int> Serve(const std::string& listen);

  // Stops serving /metrics (joins the HTTP threads) within milliseconds.
  // Idempotent; the destructor calls it.
  void StopServing();

  // Everything a scrape of /metrics returns except the Exposer's own series,
  // in the text format (tests).
  std::string ExpositionText() const;

  // RpcObserver.
  void OnRpcStarted(const clink::RestMethod& method) override;
  void OnRpcHandled(const clink::RestMethod& method, absl::StatusCode code,
                    absl::Duration latency, absl::string_view caller) override;
  void OnRpcDenied(const clink::RestMethod& method) override;

  // clink::UpstreamObserver.
  void OnCallStarted(const clink::RestMethod& method) override;
  void OnCallFinished(const clink::RestMethod& method) override;
  void OnAttempt(const clink::AttemptInfo& attempt) override;
  void OnRetry(const clink::RestMethod& method) override;
  void OnRetryDenied(const clink::RestMethod& method,
                     clink::RetryDenial reason) override;
  void OnRejected(const clink::RestMethod& method,
                  clink::RejectReason reason) override;
  void OnUnknownFields(const clink::RestMethod& method, int count) override;
  void OnAuthFailure(const clink::RestMethod& method,
                     clink::AuthFailure reason) override;
  void OnIdempotency(const clink::RestMethod& method,
                     clink::IdempotencyResult result) override;
  void OnIdempotencyStoreRetry(clink::StoreWrite write,
                               clink::StoreRetryResult result) override;
  void OnKeyRefused(absl::string_view merchant,
                    absl::string_view key_fingerprint) override;
  void OnKeyFallback(absl::string_view merchant, bool recovered) override;

  // clink::ReconciliationObserver.
  void OnReconciliation(absl::string_view merchant,
                        clink::ReconciliationResult result) override;
  void OnReconciliationsPending(size_t pending) override;

  // clink::ClockSkewObserver.
  void OnClockOffset(absl::string_view merchant, absl::Duration offset,
                     clink::ClockSkewLevel level) override;

  // credentials::CredentialObserver. The key series follow what OnKeysInUse
  // last reported for the merchant: keys no longer in the set lose their
  // series (whatever `replaced` says), new ones get theirs.
  void OnKeyReload(absl::string_view merchant,
                   credentials::ReloadOutcome outcome,
                   absl::Time when) override;
  void OnKeysInUse(absl::string_view merchant,
                   const credentials::KeySet& keys,
                   const credentials::KeySet* replaced) override;

  // A change of the authorization policy file: applied (valid) or not.
  void OnAuthzPolicyReload(bool applied);

  // http::EgressObserver.
  void OnEgressDenied(http::AddressClass reason) override;
  void OnEgressWouldDeny(http::AddressClass reason) override;

  // webhooks::WebhookObserver (server/metrics_webhook_observer.cc).
  void OnWebhookReceived(absl::string_view merchant,
                         webhooks::WebhookResult result) override;
  void OnWebhookIngested(absl::string_view merchant,
                         absl::Duration duration) override;
  void OnWebhookEventStored(absl::string_view merchant,
                            absl::string_view type) override;
  // EventObserver (metrics_event_observer.cc). Merchants not given to Create
  // are ignored.
  void OnStreamOpened(absl::string_view merchant,
                      absl::string_view subscription) override;
  void OnStreamClosed(absl::string_view merchant,
                      absl::string_view subscription) override;
  void OnDelivered(absl::string_view merchant, absl::string_view subscription,
                   int32_t delivery_attempt) override;
  void OnAcknowledged(absl::string_view merchant,
                      absl::string_view subscription, int count) override;
  void OnOldestUnacknowledgedAge(absl::string_view merchant,
                                 absl::string_view subscription,
                                 absl::Duration age) override;
  void OnStoreError(absl::string_view operation) override;

 private:
  static constexpr int kGrpcCodes = 17;       // OK .. UNAUTHENTICATED
  static constexpr int kStatusClasses = 6;    // error, 1xx .. 5xx
  // Room for every http::FailureKind: Register() creates a series for each
  // value FailureKindName() knows (it says "invalid" past the last one), so
  // a kind added to the enum is exported without a change here.
  static constexpr int kFailureKinds = 32;    // http::FailureKind
  static constexpr int kRetryDenials = 5;     // clink::RetryDenial
  static constexpr int kRejectReasons = 2;    // clink::RejectReason
  static constexpr int kAuthFailures = 3;     // clink::AuthFailure
  static constexpr int kIdempotencyResults = 5;
  static constexpr int kStoreWrites = 2;         // clink::StoreWrite
  static constexpr int kStoreRetryResults = 4;   // clink::StoreRetryResult
  // http::AddressClass: kNone .. kNotAllowedHost.
  static constexpr int kAddressClasses =
      static_cast<int>(http::AddressClass::kNotAllowedHost) + 1;

  // The series of one RPC and of its Clink endpoint.
  struct MethodSeries {
    prometheus::Counter* started = nullptr;
    prometheus::Counter* msg_received = nullptr;
    prometheus::Counter* msg_sent = nullptr;
    prometheus::Counter* authz_denied = nullptr;
    // [CallerLabels::Index][code].
    std::vector<std::array<prometheus::Counter*, kGrpcCodes>> handled;
    prometheus::Histogram* handling_seconds = nullptr;
    // [CallerLabels::Index][status class].
    std::vector<std::array<prometheus::Counter*, kStatusClasses>>
        upstream_requests;
    prometheus::Histogram* upstream_duration = nullptr;
    prometheus::Counter* response_bytes = nullptr;
    prometheus::Counter* unknown_fields = nullptr;
    prometheus::Counter* throttled = nullptr;
    prometheus::Counter* retries = nullptr;
  };

  static constexpr int kReloadOutcomes = 6;   // credentials::ReloadOutcome
  static constexpr int kKeySlots = 2;         // signing, previous

  // The series of one key in use.
  struct KeySeries {
    std::string fingerprint;
    size_t slot = 0;
    prometheus::Gauge* info = nullptr;
    prometheus::Counter* refusals = nullptr;
  };

  // The series of one merchant. The fixed ones are resolved in Create; the
  // ones that come and go are guarded by `mu` (their callers are rare: key
  // sets change, refusals, at most one clock sample a second).
  struct MerchantSeries {
    std::string name;
    std::array<prometheus::Counter*, kReloadOutcomes> reloads{};
    prometheus::Counter* fallback_recovered = nullptr;
    prometheus::Counter* fallback_refused = nullptr;
    prometheus::Gauge* skew_critical = nullptr;
    // [clink::ReconciliationResult].
    std::array<prometheus::Counter*, 2> reconciliations{};
    Mutex mu;
    prometheus::Gauge* last_reload_success ABSL_GUARDED_BY(mu) = nullptr;
    prometheus::Gauge* clock_offset ABSL_GUARDED_BY(mu) = nullptr;
    std::vector<KeySeries> keys ABSL_GUARDED_BY(mu);
  };

  // The webhook listener's series of one merchant (and of "unknown":
  // `received` only).
  struct WebhookSeries {
    std::array<prometheus::Counter*, webhooks::kWebhookResults> received{};
    prometheus::Histogram* ingest = nullptr;
    // By §13.1 event type; other types count in stored_other.
    absl::flat_hash_map<std::string, prometheus::Counter*> stored;
    prometheus::Counter* stored_other = nullptr;
  };

  explicit GatewayMetrics(const std::vector<std::string>& caller_principals);
  // Registers the webhook families and every series (Register calls it).
  void RegisterWebhooks(const std::vector<std::string>& merchants);
  void Register(const std::vector<const clink::RestMethod*>& methods,
                const BuildInfo& build,
                const std::vector<std::string>& merchants,
                const ProcfsPaths& procfs);
  // The method's series, or null for a method not given to Create (ignored).
  const MethodSeries* Find(const clink::RestMethod& method) const;
  // The merchant's series, or null for a merchant not given to Create
  // (ignored).
  MerchantSeries* FindMerchant(absl::string_view merchant) const;
  // Sets the merchant's last-successful-read gauge (creating it) to `when`.
  void SetLastReloadSuccess(MerchantSeries& m, absl::Time when)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(m.mu);

  std::shared_ptr<prometheus::Registry> registry_;
  const CallerLabels callers_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  // Read-only after Create: lookups need no lock.
  absl::flat_hash_map<const clink::RestMethod*, MethodSeries> methods_;
  prometheus::Counter* connections_opened_ = nullptr;
  prometheus::Counter* connections_reused_ = nullptr;
  prometheus::Gauge* in_flight_ = nullptr;
  std::array<prometheus::Counter*, kFailureKinds> transport_errors_{};
  std::array<prometheus::Counter*, kRetryDenials> retries_denied_{};
  std::array<prometheus::Counter*, kRejectReasons> rejections_{};
  std::array<prometheus::Counter*, kAuthFailures> auth_failures_{};
  std::array<prometheus::Counter*, kIdempotencyResults> idempotency_{};
  prometheus::Gauge* reconciliations_pending_ = nullptr;
  // [write][result].
  std::array<std::array<prometheus::Counter*, kStoreRetryResults>,
             kStoreWrites>
      store_retries_{};
  prometheus::Counter* authz_reloads_applied_ = nullptr;
  prometheus::Counter* authz_reloads_rejected_ = nullptr;
  std::array<prometheus::Counter*, kAddressClasses> egress_denied_{};
  std::array<prometheus::Counter*, kAddressClasses> egress_would_deny_{};
  // Families whose children come and go (key sets, the clock offset).
  prometheus::Family<prometheus::Gauge>* last_reload_success_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* key_info_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* key_refusals_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* clock_offset_family_ = nullptr;
  // The map is read-only after Create (lookups need no lock); each merchant's
  // changing series are guarded by its own mutex.
  absl::flat_hash_map<std::string, std::unique_ptr<MerchantSeries>>
      merchants_;
  // Read-only after Create: lookups need no lock.
  absl::flat_hash_map<std::string, WebhookSeries> webhooks_;
  // The event metrics' families (metrics_event_observer.cc).
  struct EventFamilies;
  void RegisterEventFamilies(prometheus::Registry& registry);
  std::shared_ptr<const EventFamilies> events_;
  // Last: stopped (its threads joined) before the series go.
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string serving_host_;  // Of the listen address, to wake civetweb.
  int serving_port_ = 0;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_METRICS_H_
