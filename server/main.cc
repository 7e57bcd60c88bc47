// clink_gateway: serves clink.gateway.v1 over gRPC and forwards every call to
// Clink's REST API. Flags become GatewayOptions; everything else lives in
// gateway_server.cc.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "curl/curl.h"
#include "server/build_stamp.h"
#include "server/caller_labels.h"
#include "server/gateway_server.h"
#include "server/merchants_config.h"

ABSL_FLAG(std::string, grpc_listen, "[::]:50051",
          "gRPC listen address (host:port).");
ABSL_FLAG(std::string, grpc_tls_cert_file, "",
          "PEM certificate chain the gRPC port presents (mutual TLS; with "
          "--grpc_tls_key_file and --grpc_client_ca_file). Re-read every "
          "--grpc_tls_reload_interval: rotate by replacing the files.");
ABSL_FLAG(std::string, grpc_tls_key_file, "",
          "PEM private key of --grpc_tls_cert_file.");
ABSL_FLAG(std::string, grpc_client_ca_file, "",
          "PEM CA bundle client certificates must chain to. Every caller must "
          "present one; its SPIFFE id (URI SAN), else its first DNS SAN, is "
          "the caller's identity (the idempotency scope, and the principal "
          "--authz_policy_file rules name).");
ABSL_FLAG(absl::Duration, grpc_tls_reload_interval, absl::Seconds(10),
          "How often the --grpc_tls_* files are re-read (at least 1s).");
ABSL_FLAG(bool, grpc_insecure, false,
          "Serve the gRPC port in plaintext with no caller authentication. "
          "For tests and local runs only; without it the --grpc_tls_* files "
          "are required.");
ABSL_FLAG(std::string, health_listen, "",
          "A second, plaintext gRPC address (host:port) serving only "
          "grpc.health.v1.Health (same statuses as the gRPC port), for "
          "kubelet probes when the gRPC port requires client certificates. "
          "Empty: none.");
ABSL_FLAG(std::string, authz_policy_file, "",
          "gRPC authorization policy (gRFC A43 JSON) for every call on the "
          "gRPC port: calls no rule allows get PERMISSION_DENIED, nothing "
          "sent. Re-read every --authz_policy_reload_interval; an invalid "
          "update is logged and counted and the last good policy stays.");
ABSL_FLAG(absl::Duration, authz_policy_reload_interval, absl::Seconds(10),
          "How often --authz_policy_file is re-read (at least 1s).");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464",
          "Prometheus metrics address (IPv4 host:port), served at /metrics "
          "on its own port; empty turns it off.");
ABSL_FLAG(std::string, webhook_listen, "",
          "Clink webhook listener address (IPv4 host:port; in Kubernetes "
          "0.0.0.0:8080): POST /webhooks/clink (default merchant) and "
          "/webhooks/clink/{merchant}, signed with each merchant's "
          "webhook-secret file in its key directory. Empty: off.");
ABSL_FLAG(absl::Duration, webhook_timestamp_tolerance, absl::Seconds(300),
          "How far a webhook's X-Clink-Timestamp may be from this clock, "
          "either way, before the delivery is refused (401).");
ABSL_FLAG(std::string, event_redis, "",
          "Redis for Clink's webhook events (Redis Streams, shared by "
          "replicas): host:port or unix:/path. Default: --idempotency_redis; "
          "with neither, events are kept in SQLite at "
          "{--state_dir}/events.sqlite (one replica). Used when "
          "--webhook_listen is set or this flag is given.");
ABSL_FLAG(absl::Duration, event_retention, absl::Hours(168),
          "How long received webhook events are kept (and can be listed or "
          "replayed).");
ABSL_FLAG(absl::Duration, event_dedup_window, absl::Hours(72),
          "How long a redelivered webhook event id is recognised as a "
          "duplicate; at least 72h (Clink retries for about a day).");
ABSL_FLAG(std::string, clink_base_url, "https://uat-api.clinkbill.com/api",
          "Clink API base URL (production: https://api.clinkbill.com/api).");
ABSL_FLAG(std::string, api_key_dir, "",
          "Directory holding the Clink secret key as the file api-key and, "
          "during a key roll, the older key as api-key-previous (a mounted "
          "Kubernetes Secret). Re-read when it changes. One merchant, named "
          "\"default\"; for several use --merchants_config instead.");
ABSL_FLAG(std::string, merchants_config, "",
          "Text-format clink.gateway.config.v1.MerchantsConfig file naming "
          "several merchant accounts, each with its key directory and "
          "optionally its own base URL (callers pick one with "
          "x-clink-merchant metadata).");
ABSL_FLAG(absl::Duration, key_reload_interval, absl::Seconds(10),
          "Key directories are re-read at least this often (changes are "
          "normally seen at once through inotify).");
ABSL_FLAG(
    bool, allow_plaintext_upstream, false,
    "Permit an http:// --clink_base_url. For the emulator and tests only.");
ABSL_FLAG(std::string, ca_bundle, "",
          "PEM file of CAs to verify Clink's certificate with (default: the "
          "system store).");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(20),
          "On SIGTERM/SIGINT, how long in-flight RPCs may take to finish.");
ABSL_FLAG(int, max_upstream_connections, 32, "Connections kept open to Clink.");
ABSL_FLAG(int, upstream_shards, 0,
          "Upstream shards per merchant, each one curl loop thread with its "
          "share of --max_upstream_connections (at most that many shards); 0 = "
          "the cores available to the process (CPU affinity).");
ABSL_FLAG(absl::Duration, upstream_connect_timeout, absl::Seconds(3),
          "TCP+TLS connect timeout toward Clink.");
ABSL_FLAG(
    absl::Duration, max_rpc_timeout, absl::Seconds(30),
    "Upper bound on an RPC's upstream time, whatever the caller's deadline.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(int, max_in_flight_requests, 1000,
          "Calls in progress toward Clink; beyond it RPCs fail at once with "
          "RESOURCE_EXHAUSTED and a RetryInfo (0 = no cap).");
ABSL_FLAG(double, upstream_rate_limit, 0,
          "Client-side limit toward Clink in requests per second, so the "
          "gateway stays under Clink's own limit (0 = off).");
ABSL_FLAG(int, upstream_rate_limit_burst, 20,
          "Requests that may start back to back under --upstream_rate_limit.");
ABSL_FLAG(int, max_upstream_attempts, 4,
          "Attempts per call, the first included, for calls that may be "
          "retried (reads; writes that provably never left; refunds).");
ABSL_FLAG(double, retry_budget_ratio, 0.1,
          "Retries may be at most this share of calls over 10 s (plus 10 per "
          "second), so a Clink outage is not amplified.");
ABSL_FLAG(std::string, state_dir, "/var/lib/clink-gateway",
          "Directory of the gateway's durable state: the idempotency keys "
          "(SQLite, idempotency.sqlite3), so that a crash or restart never "
          "sends a keyed call twice. Created (mode 0700) if missing; one "
          "gateway process per directory. Unused with --idempotency_redis or "
          "--idempotency_store=memory.");
ABSL_FLAG(std::string, idempotency_store, "sqlite",
          "Where idempotency keys live when --idempotency_redis is empty: "
          "sqlite (durable, in --state_dir) or memory (this process only, "
          "forgotten by a crash or restart: for tests).");
ABSL_FLAG(std::string, idempotency_redis, "",
          "Redis (host:port or unix:/path) holding idempotency keys for every "
          "replica (needed when several replicas serve the same callers); "
          "empty keeps them per process (--idempotency_store).");
ABSL_FLAG(std::string, idempotency_redis_password_file, "",
          "File holding the password for --idempotency_redis (a mounted "
          "Secret), if Redis requires AUTH.");
ABSL_FLAG(absl::Duration, idempotency_retention, absl::Hours(24),
          "How long an idempotency key's first result is replayed.");
ABSL_FLAG(absl::Duration, reconcile_window, absl::Minutes(15),
          "How long a keyed CreatePayment or CreateSubscription whose outcome "
          "was unknown (and that has a merchant_reference_id) is looked up at "
          "Clink (ListOrders polls, order.* webhooks) so that a retry with "
          "the key gets the order instead of UNKNOWN. 0 turns it off; at "
          "most --idempotency_retention.");
ABSL_FLAG(int, idempotency_max_keys, 100000,
          "Keys the local idempotency store (sqlite or memory) holds; when "
          "full of live keys "
          "new keyed calls are refused (never evicted early).");
ABSL_FLAG(int, idempotency_max_waiters_per_key, 100,
          "Keyed calls that may wait for one in-flight idempotency key; more "
          "are answered ABORTED (IDEMPOTENCY_KEY_IN_USE, retry with the same "
          "key) at once, nothing sent.");
ABSL_FLAG(int, idempotency_max_waiters, 10000,
          "Keyed calls that may wait for in-flight idempotency keys in all; "
          "more are answered as past --idempotency_max_waiters_per_key.");
ABSL_FLAG(std::vector<std::string>, egress_allow_hosts, {},
          "Hosts the gateway may connect to besides --clink_base_url's, "
          "comma-separated (e.g. --egress_proxy's host). Compared exactly.");
ABSL_FLAG(std::string, egress_allow_cidrs, "",
          "CIDR ranges exempt from the egress deny list (loopback, private, "
          "link-local, ...), comma-separated. For the emulator and tests on "
          "127.0.0.1: 127.0.0.0/8. Production needs none.");
ABSL_FLAG(std::string, egress_source_address, "",
          "Bind outbound connections to this interface or address: if!eth0, "
          "host!10.0.0.5 or a bare name/address. Calls fail (no other source "
          "is used) when it cannot be bound.");
ABSL_FLAG(std::string, egress_proxy, "",
          "HTTPS CONNECT proxy for calls to Clink, http://host:port or "
          "https://host:port. Its host must be in --egress_allow_hosts. "
          "Proxy environment variables are ignored either way.");
ABSL_FLAG(std::string, clink_pinned_public_key, "",
          "Pin Clink's TLS public key: sha256//<base64 SHA-256 of the "
          "SubjectPublicKeyInfo>, several separated by ';'.");
ABSL_FLAG(bool, egress_report_only, false,
          "Log and count (clink_gateway_egress_would_deny_total) what the "
          "egress policy would deny, without denying it. For roll-out only.");
ABSL_FLAG(std::string, audit_log_file, "",
          "Append the audit trail (one JSON line per write RPC: caller, "
          "method, merchant, amount, Clink ids, code, outcome) to this file "
          "instead of the process log. Reopened when the file is replaced "
          "(log rotation by rename or delete). Failing to open it is a "
          "startup error.");

namespace {

using clink_gateway::Log;
using clink_gateway::LogLevel;

int Fail(absl::string_view message) {
  Log(LogLevel::kError, "startup_failed", {{"error", message}});
  clink_gateway::FlushLogs();
  std::fprintf(stderr, "clink_gateway: %.*s\n",
               static_cast<int>(message.size()), message.data());
  return 2;
}

// The merchants from --api_key_dir or --merchants_config (exactly one).
absl::Status LoadMerchants(clink_gateway::server::GatewayOptions& options) {
  const std::string dir = absl::GetFlag(FLAGS_api_key_dir);
  const std::string config_path = absl::GetFlag(FLAGS_merchants_config);
  if (dir.empty() == config_path.empty()) {
    return absl::InvalidArgumentError(
        "pass exactly one of --api_key_dir (one merchant) and "
        "--merchants_config (several)");
  }
  if (!dir.empty()) {
    options.merchants.push_back({"default", dir, ""});
    return absl::OkStatus();
  }
  std::ifstream file(config_path);
  std::stringstream text;
  text << file.rdbuf();
  if (!file.good() && !file.eof()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read --merchants_config ", config_path));
  }
  return clink_gateway::server::ParseMerchantsConfig(text.str(), config_path,
                                                     options);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves clink.gateway.v1 over gRPC, forwarding each call to Clink's REST "
      "API.\n"
      "Usage: clink_gateway --api_key_dir=/var/run/secrets/clink [flags]");
  // --help (and --helpshort) list the flags defined in server/. Abseil's
  // default lists only flags of a file named after the binary
  // (clink_gateway.cc), i.e. none. --helpfull still lists every flag.
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::StartsWith(file, "server/");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);
  // The process holds the payment key: no core dumps, no ptrace by other
  // unprivileged processes.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // Debian's Abseil is built without NDEBUG, so absl::Mutex deadlock detection
  // is on by default: a process-wide lock and a graph update on every Lock().
  // Tests keep it; the server does not pay for it on every call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  LogLevel level;
  if (!clink_gateway::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return Fail("--log_level must be debug, info, warning or error");
  }
  clink_gateway::SetMinLogLevel(level);

  // Signals are handled by sigwait below: block them before any thread starts
  // so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  clink_gateway::server::GatewayOptions options;
  options.grpc_listen = absl::GetFlag(FLAGS_grpc_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.grpc_tls_cert_file = absl::GetFlag(FLAGS_grpc_tls_cert_file);
  options.grpc_tls_key_file = absl::GetFlag(FLAGS_grpc_tls_key_file);
  options.grpc_client_ca_file = absl::GetFlag(FLAGS_grpc_client_ca_file);
  options.tls_reload_interval = absl::GetFlag(FLAGS_grpc_tls_reload_interval);
  options.grpc_insecure = absl::GetFlag(FLAGS_grpc_insecure);
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.webhook_listen = absl::GetFlag(FLAGS_webhook_listen);
  options.webhook_timestamp_tolerance =
      absl::GetFlag(FLAGS_webhook_timestamp_tolerance);
  options.authz_policy_file = absl::GetFlag(FLAGS_authz_policy_file);
  options.authz_reload_interval =
      absl::GetFlag(FLAGS_authz_policy_reload_interval);
  options.git_commit = std::string(clink_gateway::server::GitCommit());
  options.clink_base_url = absl::GetFlag(FLAGS_clink_base_url);
  options.allow_plaintext_upstream =
      absl::GetFlag(FLAGS_allow_plaintext_upstream);
  options.ca_bundle = absl::GetFlag(FLAGS_ca_bundle);
  options.max_upstream_connections =
      absl::GetFlag(FLAGS_max_upstream_connections);
  options.upstream_shards = absl::GetFlag(FLAGS_upstream_shards);
  options.upstream_connect_timeout =
      absl::GetFlag(FLAGS_upstream_connect_timeout);
  options.max_rpc_timeout = absl::GetFlag(FLAGS_max_rpc_timeout);
  options.upstream.max_in_flight = absl::GetFlag(FLAGS_max_in_flight_requests);
  options.upstream.rate_limit_per_second =
      absl::GetFlag(FLAGS_upstream_rate_limit);
  options.upstream.rate_limit_burst =
      absl::GetFlag(FLAGS_upstream_rate_limit_burst);
  options.upstream.retry.max_attempts =
      absl::GetFlag(FLAGS_max_upstream_attempts);
  options.upstream.retry.budget_ratio = absl::GetFlag(FLAGS_retry_budget_ratio);
  options.idempotency_redis = absl::GetFlag(FLAGS_idempotency_redis);
  const std::string store = absl::GetFlag(FLAGS_idempotency_store);
  if (store == "sqlite") {
    options.idempotency_store =
        clink_gateway::server::GatewayOptions::IdempotencyStoreKind::kSqlite;
  } else if (store == "memory") {
    if (!options.idempotency_redis.empty()) {
      return Fail(
          "--idempotency_store=memory and --idempotency_redis contradict each "
          "other: pass one");
    }
    options.idempotency_store =
        clink_gateway::server::GatewayOptions::IdempotencyStoreKind::kMemory;
  } else {
    return Fail("--idempotency_store must be sqlite or memory");
  }
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.event_redis = absl::GetFlag(FLAGS_event_redis);
  if (options.event_redis.empty()) options.event_redis = options.idempotency_redis;
  if (options.event_redis == options.idempotency_redis) {
    options.event_redis_password_file =
        absl::GetFlag(FLAGS_idempotency_redis_password_file);
  }
  options.event_retention = absl::GetFlag(FLAGS_event_retention);
  options.event_dedup_window = absl::GetFlag(FLAGS_event_dedup_window);
  options.idempotency_redis_password_file =
      absl::GetFlag(FLAGS_idempotency_redis_password_file);
  options.idempotency_retention = absl::GetFlag(FLAGS_idempotency_retention);
  options.reconcile_window = absl::GetFlag(FLAGS_reconcile_window);
  if (absl::GetFlag(FLAGS_idempotency_max_keys) <= 0) {
    return Fail("--idempotency_max_keys must be positive");
  }
  options.idempotency_max_keys =
      static_cast<size_t>(absl::GetFlag(FLAGS_idempotency_max_keys));
  if (absl::GetFlag(FLAGS_idempotency_max_waiters_per_key) <= 0 ||
      absl::GetFlag(FLAGS_idempotency_max_waiters) <= 0) {
    return Fail(
        "--idempotency_max_waiters_per_key and --idempotency_max_waiters must "
        "be positive");
  }
  options.idempotency_max_waiters_per_key =
      static_cast<size_t>(absl::GetFlag(FLAGS_idempotency_max_waiters_per_key));
  options.idempotency_max_waiters =
      static_cast<size_t>(absl::GetFlag(FLAGS_idempotency_max_waiters));
  for (const std::string& host : absl::GetFlag(FLAGS_egress_allow_hosts)) {
    if (!host.empty()) options.egress_allow_hosts.push_back(host);
  }
  options.egress_allow_cidrs = absl::GetFlag(FLAGS_egress_allow_cidrs);
  options.egress_source_address = absl::GetFlag(FLAGS_egress_source_address);
  options.egress_proxy = absl::GetFlag(FLAGS_egress_proxy);
  options.clink_pinned_public_key =
      absl::GetFlag(FLAGS_clink_pinned_public_key);
  options.egress_report_only = absl::GetFlag(FLAGS_egress_report_only);
  if (absl::Status merchants = LoadMerchants(options); !merchants.ok()) {
    return Fail(merchants.message());
  }
  options.key_reload_interval = absl::GetFlag(FLAGS_key_reload_interval);
  options.audit_log_file = absl::GetFlag(FLAGS_audit_log_file);
  // The metrics' caller labels: the principals of --authz_policy_file (defined
  // with the mTLS/authorization flags; looked up by name so this builds with
  // or without them).
  if (const absl::CommandLineFlag* policy =
          absl::FindCommandLineFlag("authz_policy_file");
      policy != nullptr && !policy->CurrentValue().empty()) {
    auto principals = clink_gateway::server::PrincipalsFromAuthzPolicyFile(
        policy->CurrentValue());
    if (!principals.ok()) return Fail(principals.status().message());
    options.caller_label_principals = *std::move(principals);
  }
  if (const absl::Status valid =
          clink_gateway::server::ValidateOptions(options);
      !valid.ok()) {
    return Fail(valid.message());
  }
  if (absl::GetFlag(FLAGS_drain_timeout) < absl::ZeroDuration()) {
    return Fail("--drain_timeout must not be negative");
  }
  if (options.allow_plaintext_upstream) {
    Log(LogLevel::kWarning, "plaintext_upstream_allowed",
        {{"warning",
          "--allow_plaintext_upstream is ON: the API key may travel "
          "unencrypted. Use it only "
          "with the local emulator and in tests, never in production."}});
    std::fprintf(stderr,
                 "clink_gateway: WARNING: --allow_plaintext_upstream is ON; "
                 "for the emulator "
                 "and tests only\n");
  }

  if (options.grpc_insecure) {
    Log(LogLevel::kWarning, "grpc_insecure",
        {{"warning",
          "--grpc_insecure is ON: the gRPC port is plaintext and callers are "
          "not authenticated. For tests and local runs only."}});
  }

  if (options.egress_report_only) {
    Log(LogLevel::kWarning, "egress_report_only",
        {{"warning",
          "--egress_report_only is ON: addresses the egress policy denies are "
          "only logged and counted, not refused. For roll-out only."}});
  }

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return Fail("curl_global_init failed");
  auto server =
      clink_gateway::server::GatewayServer::BuildAndStart(std::move(options));
  if (!server.ok()) return Fail(server.status().message());
  std::fprintf(stderr, "clink_gateway: serving gRPC on port %d\n",
               (*server)->port());
  if ((*server)->health_port() != 0) {
    std::fprintf(stderr, "clink_gateway: serving health on port %d\n",
                 (*server)->health_port());
  }
  if ((*server)->metrics_port() != 0) {
    std::fprintf(stderr, "clink_gateway: serving metrics on port %d\n",
                 (*server)->metrics_port());
  }

  int received = 0;
  sigwait(&signals, &received);
  Log(LogLevel::kInfo, "signal",
      {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Shutdown(absl::GetFlag(FLAGS_drain_timeout));
  server->reset();
  curl_global_cleanup();
  clink_gateway::FlushLogs();
  return 0;
}
