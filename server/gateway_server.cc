#include "server/gateway_server.h"

#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/optional.h"
#include "adapters/clink/clink_client.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/credentials/key_set.h"
#include "adapters/credentials/key_watcher.h"
#include "adapters/webhooks/webhook_listener.h"
#include "adapters/webhooks/webhook_secrets.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/sharded_curl_transport.h"
#include "adapters/events/event_store_factory.h"
#include "adapters/http/egress_policy.h"
#include "adapters/idempotency/idempotent_clink_api.h"
#include "adapters/idempotency/memory_idempotency_store.h"
#include "adapters/idempotency/outcome_reconciler.h"
#include "adapters/idempotency/redis_idempotency_store.h"
#include "adapters/idempotency/sqlite_idempotency_store.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/sync.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "server/authz_policy.h"
#include "server/clock_probe.h"
#include "server/contract_services.h"
#include "server/event_service.h"
#include "server/merchant_router.h"
#include "server/metrics.h"
#include "server/rpc_forwarder.h"

namespace clink_gateway::server {
namespace {

constexpr absl::string_view kVersion = "0.1.0";

// After the drain deadline: how long gRPC has to deliver the statuses of the
// RPCs the transport shutdown completed, before it cancels what is left.
constexpr absl::Duration kStatusFlushGrace = absl::Seconds(2);

// How long a client connection is kept before the server asks the client to
// reconnect (gRPC adds ±10% jitter).
constexpr absl::Duration kMaxConnectionAge = absl::Minutes(5);

// "redis", "sqlite" or "memory", for the started log line.
const char* IdempotencyStoreName(const GatewayOptions& options) {
  if (!options.idempotency_redis.empty()) return "redis";
  return options.idempotency_store ==
                 GatewayOptions::IdempotencyStoreKind::kSqlite
             ? "sqlite"
             : "memory";
}

// Readiness follows the clock-skew guard: NOT_SERVING while any merchant's
// Clink clock is critically far from ours (Clink would soon refuse every
// request's X-Timestamp). Forwards every measurement to the metrics.
class ClockSkewReadiness final : public clink::ClockSkewObserver {
 public:
  explicit ClockSkewReadiness(clink::ClockSkewObserver& metrics)
      : metrics_(metrics) {}

  // Called once the servers exist (the API server's health service and the
  // health-only server's, if any: both report the same); before that,
  // readiness is set at start. Empty: no longer published (draining).
  void SetHealth(std::vector<grpc::HealthCheckServiceInterface*> health) {
    MutexLock lock(&mu_);
    health_ = std::move(health);
    Publish();
  }

  void OnClockOffset(absl::string_view merchant, absl::Duration offset,
                     clink::ClockSkewLevel level) override {
    metrics_.OnClockOffset(merchant, offset, level);
    MutexLock lock(&mu_);
    const bool changed = level == clink::ClockSkewLevel::kCritical
                             ? critical_.insert(std::string(merchant)).second
                             : critical_.erase(std::string(merchant)) > 0;
    if (changed) Publish();
  }

 private:
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Ignored by gRPC once the health service is shut down (draining).
    for (grpc::HealthCheckServiceInterface* health : health_) {
      health->SetServingStatus(GatewayServer::kReadinessService,
                               critical_.empty());
    }
  }

  clink::ClockSkewObserver& metrics_;
  Mutex mu_;
  std::vector<grpc::HealthCheckServiceInterface*> health_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> critical_ ABSL_GUARDED_BY(mu_);
};

// One merchant's transport: its own connection pool toward `base_url`, split
// over --upstream_shards curl loops, the gateway-wide egress policy. Calls are signed per call (SendOptions::signer)
// from the merchant's key ring, so the transport has no signer of its own.
absl::StatusOr<std::unique_ptr<http::ShardedCurlTransport>> BuildTransport(
    const GatewayOptions& options, const std::string& base_url,
    const Clock& clock, GatewayMetrics& metrics) {
  http::CurlHttpTransport::Options transport_options;
  transport_options.base_url = base_url;
  transport_options.allow_plaintext = options.allow_plaintext_upstream;
  transport_options.ca_bundle_path = options.ca_bundle;
  transport_options.user_agent = absl::StrCat("clink-gateway/", kVersion);
  transport_options.max_connections = options.max_upstream_connections;
  transport_options.connect_timeout = options.upstream_connect_timeout;
  transport_options.max_call_timeout = options.max_rpc_timeout;
  transport_options.max_response_bytes = options.max_response_bytes;
  transport_options.clock = &clock;
  transport_options.egress.allowed_hosts = options.egress_allow_hosts;
  GATEWAY_ASSIGN_OR_RETURN(transport_options.egress.allow_cidrs,
                           http::ParseCidrList(options.egress_allow_cidrs));
  transport_options.egress.report_only = options.egress_report_only;
  transport_options.egress_observer = &metrics;
  transport_options.proxy = options.egress_proxy;
  transport_options.source_address = options.egress_source_address;
  transport_options.pinned_public_key = options.clink_pinned_public_key;
  transport_options.resolve_overrides =
      options.egress_resolve_overrides_for_test;
  return http::ShardedCurlTransport::Create(transport_options,
                                            options.upstream_shards);
}

}  // namespace

// One merchant account's path to Clink. Destroyed client first, keys last.
struct MerchantChannel {
  std::string name;
  std::string base_url;
  std::unique_ptr<credentials::KeyRing> keys;
  std::unique_ptr<clink::ClockSkewMonitor> clock_skew;
  std::unique_ptr<http::ShardedCurlTransport> transport;
  std::unique_ptr<clink::ClinkClient> client;
};

namespace {

// Drops every ServerBuilder plugin (the reflection service that
// InitProtoReflectionServerBuilderPlugin adds to every server), so the
// health-only server serves grpc.health.v1.Health and nothing else.
class NoPluginsOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* args) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    plugins->clear();
  }
};

// The API port's credentials: mutual TLS from files gRPC re-reads every
// tls_reload_interval, or plaintext with --grpc_insecure.
std::shared_ptr<grpc::ServerCredentials> ApiCredentials(
    const GatewayOptions& options,
    std::shared_ptr<grpc::experimental::CertificateProviderInterface>&
        provider) {
  if (options.grpc_insecure) return grpc::InsecureServerCredentials();
  provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          options.grpc_tls_key_file, options.grpc_tls_cert_file,
          options.grpc_client_ca_file,
          static_cast<unsigned int>(
              absl::ToInt64Seconds(options.tls_reload_interval)));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  // No certificate, or one that does not chain to the client CA bundle: the
  // handshake fails and no RPC runs.
  tls.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace

namespace {

// Passes each stored event on to every listener added (Add may run while the
// webhook listener already delivers: the list is copied under the lock).
class EventListenerFanOut final : public events::EventListener {
 public:
  void Add(events::EventListener* listener) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    listeners_.push_back(listener);
  }
  void OnEventStored(const events::StoredEvent& event) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<events::EventListener*> listeners;
    {
      MutexLock lock(&mu_);
      listeners = listeners_;
    }
    for (events::EventListener* listener : listeners) {
      listener->OnEventStored(event);
    }
  }

 private:
  Mutex mu_;
  std::vector<events::EventListener*> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

struct GatewayServer::Components {
  // First: outlives everything that reports to it.
  std::unique_ptr<GatewayMetrics> metrics;
  std::unique_ptr<ClockSkewReadiness> readiness;
  int metrics_port = 0;
  const Clock* clock = nullptr;
  std::unique_ptr<clink::RestCodec> codec;
  // Outlives the clients: their last store writes finish before it goes.
  std::unique_ptr<idempotency::IdempotencyStore> idempotency_store;
  std::vector<std::unique_ptr<MerchantChannel>> merchants;
  // GatewayOptions::event_store (or the one made from the --event_* flags);
  // outlives the webhook listener and the EventService that use it.
  std::shared_ptr<events::EventStore> event_store;
  // Tells the EventService (wake-ups) and the outcome reconciler about each
  // event the webhook listener stored; outlives the listener.
  EventListenerFanOut event_listeners;
  // Reloaded by the key watcher (it follows the same directories).
  std::unique_ptr<webhooks::WebhookSecrets> webhook_secrets;
  // Stopped before the key rings it reloads go.
  std::unique_ptr<credentials::KeyWatcher> key_watcher;
  // --webhook_listen: stopped (in-flight deliveries answered) before the
  // secrets and the metrics go.
  std::unique_ptr<webhooks::WebhookListener> webhook_listener;
  int webhook_port = 0;
  // Stopped before the merchants' transports and monitors go.
  std::unique_ptr<ClockProbe> clock_probe;
  std::unique_ptr<MerchantRouter> router;
  // --authz_policy_file; outlives the forwarder that reads it.
  std::unique_ptr<AuthzPolicyFile> authz;
  // Reads through the router, settles keys in the store; goes after the
  // idempotent client that tells it about unknown outcomes. Null when
  // --reconcile_window is 0.
  std::unique_ptr<clink::OutcomeReconciler> reconciler;
  std::unique_ptr<clink::IdempotentClinkApi> idempotent_client;
  std::unique_ptr<RpcForwarder> forwarder;
  // The gRPC services, registered from the contract's descriptors.
  std::unique_ptr<ContractServices> services;
  // Served by the gateway itself over event_store; null without one.
  // Drained first at Shutdown.
  std::unique_ptr<EventService> event_service;
  // Outlive the server that uses them.
  std::shared_ptr<grpc::experimental::CertificateProviderInterface>
      certificate_provider;
  // --health_listen: a server with no service of ours (the generic service
  // answers UNIMPLEMENTED to everything but the default health service, and
  // gives gRPC the callback method it needs to start).
  grpc::CallbackGenericService health_unimplemented;
  std::unique_ptr<grpc::Server> health_server;
  std::unique_ptr<grpc::Server> server;         // Last: destroyed first.
  int port = 0;
  int health_port = 0;
  Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;

  // Every merchant's transport: in-flight calls finish now with the
  // gateway's own status.
  void ShutdownTransports() {
    for (auto& merchant : merchants) merchant->transport->Shutdown();
  }
};

GatewayServer::GatewayServer(std::unique_ptr<Components> components)
    : c_(std::move(components)) {}

GatewayServer::~GatewayServer() { Shutdown(absl::ZeroDuration()); }

int GatewayServer::port() const { return c_->port; }

events::EventListener* GatewayServer::event_listener() const {
  return c_->event_service.get();
}

int GatewayServer::metrics_port() const { return c_->metrics_port; }

int GatewayServer::health_port() const { return c_->health_port; }

int GatewayServer::webhook_port() const { return c_->webhook_port; }

events::EventListener* GatewayServer::outcome_event_listener() const {
  return c_->reconciler.get();
}

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::BuildAndStart(
    GatewayOptions options) {
  GATEWAY_RETURN_IF_ERROR(ValidateOptions(options));
  auto c = std::make_unique<Components>();
  c->clock = options.clock != nullptr ? options.clock : &SystemClock();

  // Every service of the contract is served; an RPC without a complete,
  // valid REST mapping stops the start here.
  std::vector<const google::protobuf::ServiceDescriptor*> contract =
      options.services_for_test;
  if (contract.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(contract, ContractServices::LinkedServices());
  }
  {
    absl::StatusOr<std::unique_ptr<clink::RestCodec>> codec =
        clink::RestCodec::Create(contract);
    if (!codec.ok()) {
      return absl::Status(
          codec.status().code(),
          absl::StrCat("the gateway contract's REST mapping is invalid: ",
                       codec.status().message()));
    }
    c->codec = *std::move(codec);
  }
  BuildInfo build;
  build.version = std::string(kVersion);
  build.git_commit = options.git_commit;
  std::vector<std::string> merchant_names;
  for (const MerchantOptions& m : options.merchants) {
    merchant_names.push_back(m.name);
  }
  GATEWAY_ASSIGN_OR_RETURN(
      c->metrics,
      GatewayMetrics::Create(c->codec->methods(), build, merchant_names, {},
                             options.caller_label_principals));
  // Bound before anything starts, so a taken port fails startup cleanly.
  if (!options.metrics_listen.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(c->metrics_port,
                             c->metrics->Serve(options.metrics_listen));
  }

  c->readiness = std::make_unique<ClockSkewReadiness>(*c->metrics);
  std::vector<credentials::KeyRing*> rings;
  for (const MerchantOptions& merchant : options.merchants) {
    auto m = std::make_unique<MerchantChannel>();
    m->name = merchant.name;
    m->base_url = merchant.clink_base_url.empty() ? options.clink_base_url
                                                  : merchant.clink_base_url;
    GATEWAY_ASSIGN_OR_RETURN(
        m->keys,
        credentials::KeyRing::Load(merchant.name, merchant.key_dir, *c->clock));
    m->clock_skew = std::make_unique<clink::ClockSkewMonitor>(
        merchant.name, *c->clock, options.clock_skew, c->readiness.get());
    GATEWAY_ASSIGN_OR_RETURN(
        m->transport,
        BuildTransport(options, m->base_url, *c->clock, *c->metrics));
    rings.push_back(m->keys.get());
    c->merchants.push_back(std::move(m));
  }

  // A claimed key whose holder vanishes is settled as abandoned after this;
  // it must outlast any call (and the drain), or a slow first call could be
  // declared abandoned while it still runs.
  const absl::Duration lease = options.max_rpc_timeout + absl::Minutes(1);
  if (options.idempotency_redis.empty() &&
      options.idempotency_store ==
          GatewayOptions::IdempotencyStoreKind::kSqlite) {
    idempotency::SqliteIdempotencyStore::Options store_options;
    store_options.state_dir = options.state_dir;
    store_options.retention = options.idempotency_retention;
    store_options.in_flight_lease = lease;
    store_options.max_keys = options.idempotency_max_keys;
    store_options.max_waiters_per_key = options.idempotency_max_waiters_per_key;
    store_options.max_waiters = options.idempotency_max_waiters;
    store_options.clock = c->clock;
    absl::StatusOr<std::unique_ptr<idempotency::SqliteIdempotencyStore>> store =
        idempotency::SqliteIdempotencyStore::Open(store_options);
    if (!store.ok()) {
      return absl::Status(
          store.status().code(),
          absl::StrCat("idempotency store in --state_dir=", options.state_dir,
                       ": ", store.status().message()));
    }
    c->idempotency_store = *std::move(store);
  } else if (options.idempotency_redis.empty()) {
    idempotency::MemoryIdempotencyStore::Options store_options;
    store_options.retention = options.idempotency_retention;
    store_options.in_flight_lease = lease;
    store_options.max_keys = options.idempotency_max_keys;
    store_options.max_waiters_per_key = options.idempotency_max_waiters_per_key;
    store_options.max_waiters = options.idempotency_max_waiters;
    store_options.clock = c->clock;
    c->idempotency_store =
        std::make_unique<idempotency::MemoryIdempotencyStore>(store_options);
  } else {
    idempotency::RedisIdempotencyStore::Options store_options;
    store_options.address = options.idempotency_redis;
    store_options.password_file = options.idempotency_redis_password_file;
    store_options.retention = options.idempotency_retention;
    store_options.in_flight_lease = lease;
    store_options.max_waiters_per_key = options.idempotency_max_waiters_per_key;
    store_options.max_waiters = options.idempotency_max_waiters;
    store_options.clock = c->clock;
    GATEWAY_ASSIGN_OR_RETURN(
        c->idempotency_store,
        idempotency::RedisIdempotencyStore::Create(store_options));
  }
  c->router = std::make_unique<MerchantRouter>();
  for (auto& m : c->merchants) {
    clink::ClinkClientOptions client_options = options.upstream;
    client_options.observer = c->metrics.get();
    client_options.merchant = m->name;
    client_options.keys = m->keys.get();
    client_options.clock_skew = m->clock_skew.get();
    m->client = std::make_unique<clink::ClinkClient>(*c->codec, *m->transport,
                                                     *c->clock, client_options);
    c->router->Add(m->name, m->client.get());
  }
  credentials::KeyWatcher::Options watcher_options;
  watcher_options.poll_interval = options.key_reload_interval;
  watcher_options.clock = c->clock;
  watcher_options.observer = c->metrics.get();
  c->event_store = options.event_store;
  if (c->event_store == nullptr &&
      (!options.webhook_listen.empty() || !options.event_redis.empty())) {
    events::EventStoreConfig store_config;
    store_config.redis_address = options.event_redis;
    store_config.redis_password_file = options.event_redis_password_file;
    store_config.state_dir = options.state_dir;
    store_config.retention = options.event_retention;
    store_config.dedup_window = options.event_dedup_window;
    store_config.clock = c->clock;
    GATEWAY_ASSIGN_OR_RETURN(c->event_store,
                             events::MakeEventStore(store_config));
  }
  if (options.event_listener != nullptr) {
    c->event_listeners.Add(options.event_listener);
  }
  if (!options.webhook_listen.empty()) {
    std::vector<webhooks::WebhookSecrets::Merchant> secret_dirs;
    for (const MerchantOptions& m : options.merchants) {
      secret_dirs.push_back({m.name, m.key_dir});
    }
    c->webhook_secrets =
        std::make_unique<webhooks::WebhookSecrets>(secret_dirs);
    watcher_options.on_directory_reload =
        [secrets = c->webhook_secrets.get()](const std::string& merchant) {
          secrets->Reload(merchant);
        };
  }
  GATEWAY_ASSIGN_OR_RETURN(
      c->key_watcher,
      credentials::KeyWatcher::Start(std::move(rings), watcher_options));
  if (c->webhook_secrets != nullptr) {
    webhooks::WebhookListener::Options webhook_options;
    webhook_options.listen = options.webhook_listen;
    webhook_options.timestamp_tolerance = options.webhook_timestamp_tolerance;
    webhook_options.default_merchant =
        !options.default_merchant.empty() ? options.default_merchant
        : options.merchants.size() == 1   ? options.merchants[0].name
                                          : std::string();
    webhook_options.clock = c->clock;
    webhook_options.observer = c->metrics.get();
    webhook_options.event_listener = &c->event_listeners;
    GATEWAY_ASSIGN_OR_RETURN(
        c->webhook_listener,
        webhooks::WebhookListener::Start(webhook_options, *c->webhook_secrets,
                                         *c->event_store));
    c->webhook_port = c->webhook_listener->port();
  }
  std::vector<ClockProbe::Target> probe_targets;
  for (auto& m : c->merchants) {
    probe_targets.push_back({m->transport.get(), m->clock_skew.get()});
  }
  c->clock_probe = std::make_unique<ClockProbe>(
      std::move(probe_targets), *c->clock, options.clock_skew_probe_interval);
  clink::IdempotentClinkApi::Options idempotent_options;
  if (options.reconcile_window > absl::ZeroDuration()) {
    clink::OutcomeReconciler::Options reconciler_options;
    reconciler_options.window = options.reconcile_window;
    reconciler_options.call_timeout = options.max_rpc_timeout;
    c->reconciler = std::make_unique<clink::OutcomeReconciler>(
        *c->codec, *c->router, *c->idempotency_store, c->metrics.get(),
        reconciler_options);
    idempotent_options.unknown_outcomes = c->reconciler.get();
    c->event_listeners.Add(c->reconciler.get());
  }
  c->idempotent_client = std::make_unique<clink::IdempotentClinkApi>(
      *c->codec, *c->router, *c->idempotency_store, c->metrics.get(),
      idempotent_options);
  ForwarderOptions forwarder_options;
  if (!options.audit_log_file.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(forwarder_options.audit,
                             AuditLog::OpenFile(options.audit_log_file));
  }
  forwarder_options.max_rpc_timeout = options.max_rpc_timeout;
  forwarder_options.observer = c->metrics.get();
  if (!options.authz_policy_file.empty()) {
    GatewayMetrics* metrics = c->metrics.get();
    GATEWAY_ASSIGN_OR_RETURN(
        c->authz,
        AuthzPolicyFile::Start(
            options.authz_policy_file, options.authz_reload_interval,
            [metrics](bool applied) { metrics->OnAuthzPolicyReload(applied); }));
    forwarder_options.authz = c->authz.get();
  }
  forwarder_options.merchants = merchant_names;
  forwarder_options.default_merchant =
      !options.default_merchant.empty() ? options.default_merchant
      : merchant_names.size() == 1      ? merchant_names[0]
                                        : std::string();
  c->forwarder = std::make_unique<RpcForwarder>(
      *c->codec, *c->idempotent_client, *c->clock, forwarder_options);
  {
    absl::StatusOr<std::unique_ptr<ContractServices>> services =
        ContractServices::Create(*c->codec, contract, *c->forwarder);
    if (!services.ok()) {
      c->clock_probe->Stop();
      c->ShutdownTransports();
      return services.status();
    }
    c->services = *std::move(services);
  }
  if (c->event_store != nullptr) {
    EventServiceOptions event_options;
    event_options.merchants = forwarder_options.merchants;
    event_options.default_merchant = forwarder_options.default_merchant;
    event_options.authz = forwarder_options.authz;
    event_options.observer = c->metrics.get();
    absl::StatusOr<std::unique_ptr<EventService>> events =
        EventService::Create(*c->event_store, *c->clock, event_options);
    if (!events.ok()) {
      c->clock_probe->Stop();
      c->ShutdownTransports();
      return events.status();
    }
    c->event_service = *std::move(events);
    c->event_listeners.Add(c->event_service.get());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_listen,
                           ApiCredentials(options, c->certificate_provider),
                           &c->port);
  for (grpc::Service* service : c->services->grpc_services()) {
    builder.RegisterService(service);
  }
  if (c->event_service != nullptr)
    builder.RegisterService(c->event_service.get());
  // Keep idle client connections healthy through load balancers, and let
  // clients ping.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Recycle client connections (GOAWAY, then reconnect through the Service)
  // so traffic follows readiness: a pod that reports NOT_SERVING (clock
  // skew) stops getting calls from long-lived connections too, and new pods
  // get their share. Calls in progress get the longest call time to finish.
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_AGE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(kMaxConnectionAge)));
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.max_rpc_timeout +
                                                 absl::Seconds(5))));
  // The largest any RPC may accept; each RPC's own cap (1 MiB unless its
  // RestRule.max_request_bytes says more) is enforced by the forwarder.
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxReceiveMessageBytes));
  // gRPC allows SO_REUSEPORT by default: a second gateway on the same port
  // would then start "successfully" and split the traffic. Fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  c->server = builder.BuildAndStart();
  if (c->server == nullptr || c->port == 0) {
    c->clock_probe->Stop();
    c->ShutdownTransports();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.grpc_listen,
                     " (address in use or invalid?)"));
  }
  std::vector<grpc::HealthCheckServiceInterface*> health = {
      c->server->GetHealthCheckService()};
  if (!options.health_listen.empty()) {
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(options.health_listen,
                                    grpc::InsecureServerCredentials(),
                                    &c->health_port);
    health_builder.SetOption(std::make_unique<NoPluginsOption>());
    health_builder.RegisterCallbackGenericService(&c->health_unimplemented);
    health_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    c->health_server = health_builder.BuildAndStart();
    if (c->health_server == nullptr || c->health_port == 0) {
      c->clock_probe->Stop();
      c->ShutdownTransports();
      c->server->Shutdown(absl::ToChronoTime(absl::Now()));
      return absl::UnavailableError(
          absl::StrCat("cannot listen on --health_listen ",
                       options.health_listen, " (address in use or invalid?)"));
    }
    health.push_back(c->health_server->GetHealthCheckService());
  }
  for (grpc::HealthCheckServiceInterface* service : health) {
    service->SetServingStatus(true);
    service->SetServingStatus(kLivenessService, true);
  }
  c->readiness->SetHealth(std::move(health));
  for (const auto& m : c->merchants) {
    Log(LogLevel::kInfo, "merchant",
        {{"merchant", m->name},
         {"clink_base_url", m->base_url},
         {"key_fingerprints", m->keys->Current()->Fingerprints()},
         {"default",
          m->name == forwarder_options.default_merchant ? "true" : "false"}});
  }
  Log(LogLevel::kInfo, "started",
      {{"grpc_port", absl::StrCat(c->port)},
       {"metrics_port", absl::StrCat(c->metrics_port)},
       {"health_port", absl::StrCat(c->health_port)},
       {"webhook_port", absl::StrCat(c->webhook_port)},
       {"grpc_auth", options.grpc_insecure ? "insecure" : "mtls"},
       {"authz_policy_file", options.authz_policy_file},
       {"merchants", absl::StrJoin(merchant_names, ",")},
       {"idempotency_store", IdempotencyStoreName(options)},
       {"state_dir",
        absl::string_view(IdempotencyStoreName(options)) == "sqlite"
            ? absl::string_view(options.state_dir)
            : absl::string_view()},
       {"egress_allow_cidrs", options.egress_allow_cidrs},
       {"egress_proxy", options.egress_proxy},
       {"egress_source_address", options.egress_source_address},
       {"egress_report_only", options.egress_report_only ? "true" : "false"},
       {"version", kVersion},
       {"git_commit", options.git_commit}});
  return std::unique_ptr<GatewayServer>(new GatewayServer(std::move(c)));
}

void GatewayServer::Shutdown(absl::Duration drain) {
  {
    MutexLock lock(&c_->mu);
    if (c_->shut_down) return;
    c_->shut_down = true;
  }
  const absl::Time deadline = absl::Now() + drain;
  Log(LogLevel::kInfo, "draining",
      {{"drain_ms", absl::StrCat(absl::ToInt64Milliseconds(drain))}});
  // Every service reports NOT_SERVING from now on; clock-skew changes no
  // longer touch the health service (which goes with the server).
  c_->readiness->SetHealth({});
  c_->server->GetHealthCheckService()->Shutdown();
  if (c_->health_server != nullptr) {
    c_->health_server->GetHealthCheckService()->Shutdown();
  }
  c_->clock_probe->Stop();
  // Event streams never end by themselves: end them now (UNAVAILABLE, the
  // callers reconnect to another replica).
  if (c_->event_service != nullptr) c_->event_service->Drain();
  if (c_->authz != nullptr) c_->authz->Stop();
  // No new webhook deliveries (answered 503: Clink retries them elsewhere or
  // later); those in progress are answered first, within `drain`.
  if (c_->webhook_listener != nullptr) c_->webhook_listener->Stop(drain);
  // In-flight RPCs finish when Clink answers. At the drain deadline the
  // transport is shut down first, so every RPC still waiting on Clink finishes
  // with the gateway's own status (UNKNOWN with outcome "unknown" for a write
  // that may have reached Clink). gRPC gets a short grace after that to send
  // those statuses before it cancels whatever is left with a bare UNAVAILABLE,
  // which callers would be tempted to retry.
  Notification drained;
  std::thread enforcer([this, &drained, deadline] {
    if (!drained.WaitForNotificationWithDeadline(deadline)) {
      c_->ShutdownTransports();
      // Keyed calls waiting for another call's key answer now (ABORTED
      // IDEMPOTENCY_KEY_IN_USE, retry with the same key), not at their own
      // wait deadline.
      c_->idempotency_store->AbortWaits();
    }
  });
  c_->server->Shutdown(absl::ToChronoTime(deadline + kStatusFlushGrace));
  drained.Notify();
  enforcer.join();
  c_->ShutdownTransports();
  c_->idempotency_store->AbortWaits();
  c_->server->Wait();
  // Probes see NOT_SERVING until the API server is gone.
  if (c_->health_server != nullptr) {
    c_->health_server->Shutdown(absl::ToChronoTime(absl::Now()));
    c_->health_server->Wait();
  }
  Log(LogLevel::kInfo, "stopped");
}

}  // namespace clink_gateway::server
