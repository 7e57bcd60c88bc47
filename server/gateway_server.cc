#include "server/gateway_server.h"

#include <fstream>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "adapters/clink/clink_client.h"
#include "adapters/clink/idempotent_clink_api.h"
#include "adapters/idempotency/memory_idempotency_store.h"
#include "adapters/idempotency/redis_idempotency_store.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/http/api_key_signer.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/egress_policy.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/metrics.h"
#include "server/rpc_forwarder.h"
#include "server/services.h"

namespace clink_gateway::server {
namespace {

constexpr absl::string_view kVersion = "0.1.0";

// After the drain deadline: how long gRPC has to deliver the statuses of the
// RPCs the transport shutdown completed, before it cancels what is left.
constexpr absl::Duration kStatusFlushGrace = absl::Seconds(2);

// The longest an RPC's upstream call may take (see ValidateOptions).
constexpr absl::Duration kMaxRpcTimeout = absl::Seconds(60);

absl::Status ValidateListenAddress(absl::string_view flag,
                                   absl::string_view example,
                                   absl::string_view listen) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " must be host:port (e.g. ", example, "), got \"", listen,
        "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateOptions(const GatewayOptions& o) {
  GATEWAY_RETURN_IF_ERROR(
      ValidateListenAddress("grpc_listen", "[::]:50051", o.grpc_listen));
  if (!o.metrics_listen.empty()) {
    GATEWAY_RETURN_IF_ERROR(ValidateListenAddress(
        "metrics_listen", "0.0.0.0:9464", o.metrics_listen));
    // prometheus-cpp serves through Debian's civetweb, built without IPv6.
    if (absl::StartsWith(o.metrics_listen, "[")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--metrics_listen must be an IPv4 address or a host name (the "
          "metrics server has no IPv6), e.g. 0.0.0.0:9464, got \"",
          o.metrics_listen, "\""));
    }
  }
  if (o.api_key.empty()) {
    return absl::InvalidArgumentError(
        "no Clink API key: pass --api_key_file or set CLINK_API_KEY");
  }
  GATEWAY_RETURN_IF_ERROR(http::ApiKeySigner::CheckKey(o.api_key));
  const bool https = absl::StartsWith(o.clink_base_url, "https://");
  const bool http = absl::StartsWith(o.clink_base_url, "http://");
  if (!https && !(http && o.allow_plaintext_upstream)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--clink_base_url must be https:// (http:// only with "
                     "--allow_plaintext_upstream), got \"",
                     o.clink_base_url, "\""));
  }
  if (!o.ca_bundle.empty() && !std::ifstream(o.ca_bundle).good()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ca_bundle file cannot be read: ", o.ca_bundle));
  }
  if (o.max_upstream_connections <= 0 || o.max_response_bytes == 0 ||
      o.upstream_connect_timeout <= absl::ZeroDuration() ||
      o.max_rpc_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "pool size, response cap and timeouts must be positive");
  }
  // X-Timestamp is taken when a request is handed to curl; a request may wait
  // in curl for a pooled connection for up to this long before it is written,
  // and Clink refuses timestamps more than 120 s old.
  if (o.max_rpc_timeout > kMaxRpcTimeout) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_rpc_timeout must be at most ",
                     absl::FormatDuration(kMaxRpcTimeout),
                     " (Clink refuses request timestamps older than 120 s)"));
  }
  const clink::ClinkClientOptions& u = o.upstream;
  if (u.retry.max_attempts < 1 || u.retry.max_attempts > 10) {
    return absl::InvalidArgumentError(
        "--max_upstream_attempts must be between 1 and 10");
  }
  if (!(u.retry.budget_ratio >= 0 && u.retry.budget_ratio <= 1)) {
    return absl::InvalidArgumentError(
        "--retry_budget_ratio must be between 0 and 1");
  }
  if (u.max_in_flight < 0) {
    return absl::InvalidArgumentError(
        "--max_in_flight_requests must not be negative (0 = no cap)");
  }
  if (!(u.rate_limit_per_second >= 0) || u.rate_limit_burst < 1) {
    return absl::InvalidArgumentError(
        "--upstream_rate_limit must not be negative and "
        "--upstream_rate_limit_burst must be at least 1");
  }
  if (absl::StatusOr<std::vector<http::Cidr>> cidrs =
          http::ParseCidrList(o.egress_allow_cidrs);
      !cidrs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--egress_allow_cidrs must be comma-separated CIDR ranges (e.g. "
        "127.0.0.0/8): ",
        cidrs.status().message()));
  }
  for (const std::string& host : o.egress_allow_hosts) {
    // A name or an IP literal; IPv6 in brackets ("[2001:db8::1]"), the way
    // the URL spells it.
    const bool bracketed =
        absl::StartsWith(host, "[") && absl::EndsWith(host, "]");
    if (host.empty() ||
        host.find_first_of(" \t\r\n/@?#") != std::string::npos ||
        (!bracketed && host.find(':') != std::string::npos)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--egress_allow_hosts must be comma-separated host names or IP "
          "literals (no scheme, port or path; IPv6 in brackets), got \"",
          host, "\""));
    }
  }
  if (o.idempotency_retention < absl::Minutes(1) ||
      o.idempotency_max_keys == 0) {
    return absl::InvalidArgumentError(
        "--idempotency_retention must be at least 1m and "
        "--idempotency_max_keys positive");
  }
  return absl::OkStatus();
}

struct GatewayServer::Components {
  // First: outlives everything that reports to it.
  std::unique_ptr<GatewayMetrics> metrics;
  int metrics_port = 0;
  const Clock* clock = nullptr;
  std::unique_ptr<http::ApiKeySigner> signer;
  std::unique_ptr<http::CurlHttpTransport> transport;
  // Outlives the clients: their last store writes finish before it goes.
  std::unique_ptr<idempotency::IdempotencyStore> idempotency_store;
  std::unique_ptr<clink::RestCodec> codec;
  std::unique_ptr<clink::ClinkClient> client;
  std::unique_ptr<clink::IdempotentClinkApi> idempotent_client;
  std::unique_ptr<RpcForwarder> forwarder;
  std::unique_ptr<CheckoutServiceImpl> checkout;
  std::unique_ptr<PaymentServiceImpl> payment;
  std::unique_ptr<BillingServiceImpl> billing;
  std::unique_ptr<grpc::Server> server;  // Last: destroyed first.
  int port = 0;
  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
};

GatewayServer::GatewayServer(std::unique_ptr<Components> components)
    : c_(std::move(components)) {}

GatewayServer::~GatewayServer() { Shutdown(absl::ZeroDuration()); }

int GatewayServer::port() const { return c_->port; }

int GatewayServer::metrics_port() const { return c_->metrics_port; }

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::BuildAndStart(
    GatewayOptions options) {
  GATEWAY_RETURN_IF_ERROR(ValidateOptions(options));
  auto c = std::make_unique<Components>();
  c->clock = options.clock != nullptr ? options.clock : &SystemClock();

  GATEWAY_ASSIGN_OR_RETURN(c->codec, clink::RestCodec::CreateForServices(
                                         clink::GatewayServiceNames()));
  BuildInfo build;
  build.version = std::string(kVersion);
  build.git_commit = options.git_commit;
  GATEWAY_ASSIGN_OR_RETURN(c->metrics,
                           GatewayMetrics::Create(c->codec->methods(), build));
  // Bound before anything starts, so a taken port fails startup cleanly.
  if (!options.metrics_listen.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(c->metrics_port,
                             c->metrics->Serve(options.metrics_listen));
  }

  c->signer = std::make_unique<http::ApiKeySigner>(std::move(options.api_key),
                                                   *c->clock);
  http::CurlHttpTransport::Options transport_options;
  transport_options.base_url = options.clink_base_url;
  transport_options.allow_plaintext = options.allow_plaintext_upstream;
  transport_options.ca_bundle_path = options.ca_bundle;
  transport_options.user_agent = absl::StrCat("clink-gateway/", kVersion);
  transport_options.max_connections = options.max_upstream_connections;
  transport_options.connect_timeout = options.upstream_connect_timeout;
  transport_options.max_call_timeout = options.max_rpc_timeout;
  transport_options.max_response_bytes = options.max_response_bytes;
  transport_options.signer = c->signer.get();
  transport_options.clock = c->clock;
  transport_options.egress.allowed_hosts = options.egress_allow_hosts;
  GATEWAY_ASSIGN_OR_RETURN(transport_options.egress.allow_cidrs,
                           http::ParseCidrList(options.egress_allow_cidrs));
  transport_options.egress.report_only = options.egress_report_only;
  transport_options.egress_observer = c->metrics.get();
  transport_options.proxy = options.egress_proxy;
  transport_options.source_address = options.egress_source_address;
  transport_options.pinned_public_key = options.clink_pinned_public_key;
  transport_options.resolve_overrides =
      options.egress_resolve_overrides_for_test;
  GATEWAY_ASSIGN_OR_RETURN(c->transport,
                           http::CurlHttpTransport::Create(transport_options));

  // A claimed key whose holder vanishes is settled as abandoned after this;
  // it must outlast any call (and the drain), or a slow first call could be
  // declared abandoned while it still runs.
  const absl::Duration lease = options.max_rpc_timeout + absl::Minutes(1);
  if (options.idempotency_redis.empty()) {
    idempotency::MemoryIdempotencyStore::Options store_options;
    store_options.retention = options.idempotency_retention;
    store_options.in_flight_lease = lease;
    store_options.max_keys = options.idempotency_max_keys;
    store_options.clock = c->clock;
    c->idempotency_store =
        std::make_unique<idempotency::MemoryIdempotencyStore>(store_options);
  } else {
    idempotency::RedisIdempotencyStore::Options store_options;
    store_options.address = options.idempotency_redis;
    store_options.password_file = options.idempotency_redis_password_file;
    store_options.retention = options.idempotency_retention;
    store_options.in_flight_lease = lease;
    store_options.clock = c->clock;
    GATEWAY_ASSIGN_OR_RETURN(
        c->idempotency_store,
        idempotency::RedisIdempotencyStore::Create(store_options));
  }
  clink::ClinkClientOptions client_options = options.upstream;
  client_options.observer = c->metrics.get();
  c->client = std::make_unique<clink::ClinkClient>(
      *c->codec, *c->transport, *c->clock, client_options);
  c->idempotent_client = std::make_unique<clink::IdempotentClinkApi>(
      *c->codec, *c->client, *c->idempotency_store, c->metrics.get());
  ForwarderOptions forwarder_options;
  forwarder_options.max_rpc_timeout = options.max_rpc_timeout;
  forwarder_options.observer = c->metrics.get();
  forwarder_options.key_fingerprint = c->signer->KeyFingerprint();
  c->forwarder = std::make_unique<RpcForwarder>(
      *c->codec, *c->idempotent_client, *c->clock, forwarder_options);
  c->checkout = std::make_unique<CheckoutServiceImpl>(*c->forwarder);
  c->payment = std::make_unique<PaymentServiceImpl>(*c->forwarder);
  c->billing = std::make_unique<BillingServiceImpl>(*c->forwarder);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_listen,
                           grpc::InsecureServerCredentials(), &c->port);
  builder.RegisterService(c->checkout.get());
  builder.RegisterService(c->payment.get());
  builder.RegisterService(c->billing.get());
  // Keep idle client connections healthy through load balancers, and let
  // clients ping.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.SetMaxReceiveMessageSize(1 << 20);
  // gRPC allows SO_REUSEPORT by default: a second gateway on the same port
  // would then start "successfully" and split the traffic. Fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  c->server = builder.BuildAndStart();
  if (c->server == nullptr || c->port == 0) {
    c->transport->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.grpc_listen,
                     " (address in use or invalid?)"));
  }
  grpc::HealthCheckServiceInterface* health =
      c->server->GetHealthCheckService();
  health->SetServingStatus(true);
  Log(LogLevel::kInfo, "started",
      {{"grpc_port", absl::StrCat(c->port)},
       {"metrics_port", absl::StrCat(c->metrics_port)},
       {"clink_base_url", options.clink_base_url},
       {"key_fingerprint", c->signer->KeyFingerprint()},
       {"idempotency_store",
        options.idempotency_redis.empty() ? "memory" : "redis"},
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
    absl::MutexLock lock(&c_->mu);
    if (c_->shut_down) return;
    c_->shut_down = true;
  }
  const absl::Time deadline = absl::Now() + drain;
  Log(LogLevel::kInfo, "draining",
      {{"drain_ms", absl::StrCat(absl::ToInt64Milliseconds(drain))}});
  // Every service reports NOT_SERVING from now on.
  c_->server->GetHealthCheckService()->Shutdown();
  // In-flight RPCs finish when Clink answers. At the drain deadline the
  // transport is shut down first, so every RPC still waiting on Clink finishes
  // with the gateway's own status (UNKNOWN with outcome "unknown" for a write
  // that may have reached Clink). gRPC gets a short grace after that to send
  // those statuses before it cancels whatever is left with a bare UNAVAILABLE,
  // which callers would be tempted to retry.
  absl::Notification drained;
  std::thread enforcer([this, &drained, deadline] {
    if (!drained.WaitForNotificationWithDeadline(deadline)) {
      c_->transport->Shutdown();
      // Keyed calls waiting for another call's key answer now (ABORTED
      // IDEMPOTENCY_KEY_IN_USE, retry with the same key), not at their own
      // wait deadline.
      c_->idempotency_store->AbortWaits();
    }
  });
  c_->server->Shutdown(absl::ToChronoTime(deadline + kStatusFlushGrace));
  drained.Notify();
  enforcer.join();
  c_->transport->Shutdown();
  c_->idempotency_store->AbortWaits();
  c_->server->Wait();
  Log(LogLevel::kInfo, "stopped");
}

}  // namespace clink_gateway::server
