// The gateway's options (what main.cc's flags become) and their validation.
#ifndef CLINK_GATEWAY_SERVER_GATEWAY_OPTIONS_H_
#define CLINK_GATEWAY_SERVER_GATEWAY_OPTIONS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/clink/clink_client.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/events/event_store.h"

namespace clink_gateway::server {

// One Clink merchant account the gateway calls for.
struct MerchantOptions {
  // What callers send as `x-clink-merchant`: 1-63 characters from [a-z0-9_-],
  // starting with a letter or digit (a log field and a metrics label too).
  std::string name;
  // The merchant's key directory (a Kubernetes Secret volume): `api-key` and,
  // during a key roll, `api-key-previous` (adapters/credentials/key_set.h).
  // Followed while the gateway runs: a changed Secret is in use within
  // GatewayOptions::key_reload_interval, usually at once.
  std::string key_dir;
  // This merchant's Clink base URL; empty means GatewayOptions::clink_base_url.
  std::string clink_base_url;
};

struct GatewayOptions {
  // gRPC listen address, host:port. Port 0 picks a free port (see
  // GatewayServer::port()).
  std::string grpc_listen = "[::]:50051";
  // Caller authentication on grpc_listen: mutual TLS. All three PEM files or
  // none: the server's certificate chain, its private key, and the CA bundle
  // client certificates must chain to. Every client must present a
  // certificate (no certificate, or one from another CA: the handshake
  // fails, the client sees UNAVAILABLE, no RPC runs). TLS 1.2 and 1.3 only
  // (gRPC 1.51's default; its C++ API has no setter for the version). The files
  // are re-read every tls_reload_interval
  // (grpc::experimental::FileWatcherCertificateProvider): rotate them by
  // replacing the files (a Secret volume's atomic symlink swap); connections
  // made before keep their certificates, new ones get the new ones, no call
  // fails.
  std::string grpc_tls_cert_file;
  std::string grpc_tls_key_file;
  std::string grpc_client_ca_file;
  absl::Duration tls_reload_interval = absl::Seconds(10);
  // Serve grpc_listen in plaintext, with no caller authentication. Required
  // (tests, local runs) when the TLS files above are not given: a gateway
  // with neither refuses to start.
  bool grpc_insecure = false;
  // A second, plaintext listen address (host:port, port 0 picks one, see
  // GatewayServer::health_port()) serving only grpc.health.v1.Health, with
  // the same statuses as grpc_listen's (kReadinessService, kLivenessService,
  // drain), for kubelet probes that present no client certificate. Empty: no
  // such port.
  std::string health_listen;
  // A gRFC A43 authorization policy file (JSON: name, allow_rules, deny_rules
  // over principals, RPC paths and headers such as x-clink-merchant;
  // server/authz_policy.h), checked first on every RPC: once given, a call no
  // allow rule matches, or a deny rule matches, is refused with
  // PERMISSION_DENIED and nothing is sent to Clink. Principals are the client
  // certificate's URI SANs (SPIFFE ids) then DNS SANs. The file is re-read
  // every authz_reload_interval; a malformed update is logged and counted
  // (clink_gateway_authz_policy_reloads_total{result="rejected"}) and the
  // last good policy stays in force. Must be valid at start. Empty: no policy
  // (every caller the TLS handshake accepted may call every RPC). (gRPC's own
  // FileWatcherAuthorizationPolicyProvider is not in Debian's gRPC 1.51.)
  std::string authz_policy_file;
  absl::Duration authz_reload_interval = absl::Seconds(10);
  // Prometheus metrics (GET /metrics, server/metrics.h) on their own port,
  // host:port with an IPv4 address or host name (Debian's civetweb, which
  // serves them, has no IPv6); port 0 picks a free one (see
  // GatewayServer::metrics_port()).
  // Empty turns the endpoint off (the metrics are still kept). Off by default
  // here so that embedders and tests opt in; the binary's --metrics_listen
  // defaults to 0.0.0.0:9464.
  std::string metrics_listen;
  // The git commit for clink_gateway_build_info (main.cc passes the stamped
  // one).
  std::string git_commit = "unknown";
  // Clink's API base URL; request paths such as /checkout/session are appended
  // to it.
  std::string clink_base_url = "https://uat-api.clinkbill.com/api";
  // The merchant accounts (at least one; names unique). Each gets its own keys,
  // connection pool (transport thread), in-flight cap, rate limit and
  // idempotency scope; keys are logged and exported only by fingerprint.
  std::vector<MerchantOptions> merchants;
  // Where calls without `x-clink-merchant` go. Empty: the only merchant when
  // there is one; with several, such calls fail with INVALID_ARGUMENT.
  std::string default_merchant;
  // Every key directory is re-read at least this often, whatever inotify says.
  absl::Duration key_reload_interval = absl::Seconds(10);
  // Clock-skew guard, from the Date header of Clink's responses: past the
  // warning threshold a warning is logged; past the critical one the gateway
  // reports NOT_SERVING (readiness) until the offset is back under it.
  clink::ClockSkewOptions clock_skew;
  // While the skew is critical the gateway gets no traffic (NOT_SERVING), so
  // it asks Clink for the time itself this often: an unsigned GET of the base
  // URL, which Clink refuses (401) with a Date header and processes nothing.
  absl::Duration clock_skew_probe_interval = absl::Seconds(5);
  // Permit an http:// base URL (the emulator and tests only).
  bool allow_plaintext_upstream = false;
  // PEM CA bundle to verify Clink's certificate with; empty uses the system
  // store.
  std::string ca_bundle;
  // Connections kept open to Clink (the pool size).
  int max_upstream_connections = 32;
  // Upstream shards per merchant (http::ShardedCurlTransport): each one curl
  // multi handle and loop thread with max_upstream_connections / shards of the
  // connections. 0 = the cores available to the process
  // (http::CoresAvailable()); never more than max_upstream_connections.
  int upstream_shards = 0;
  // TCP+TLS connect timeout toward Clink.
  absl::Duration upstream_connect_timeout = absl::Seconds(3);
  // Upper bound on one RPC's upstream time, whatever the caller's deadline.
  absl::Duration max_rpc_timeout = absl::Seconds(30);
  // Largest Clink response body accepted.
  size_t max_response_bytes = 4 << 20;
  // Retries, the in-flight cap and the client-side rate limit toward Clink.
  clink::ClinkClientOptions upstream;
  // Where idempotency keys live (adapters/idempotency/):
  //  - idempotency_redis non-empty ("host:port" or "unix:/path"): in Redis,
  //    shared by every replica (then two pods never both send a keyed
  //    payment), whatever idempotency_store says;
  //  - otherwise kSqlite: on local disk in state_dir (SqliteIdempotencyStore),
  //    so a crash, an OOM kill or a restart forgets nothing: a call in flight
  //    at the crash answers UNKNOWN (IDEMPOTENT_CALL_ABANDONED) afterwards,
  //    never a second send. One process per state_dir (BuildAndStart fails
  //    with FAILED_PRECONDITION when another holds it);
  //  - otherwise kMemory: in this process's memory, forgotten by a restart
  //    (tests, and embedders that opt out of the disk).
  // kMemory by default here, so embedders and tests opt in to the disk (as
  // with metrics_listen); the binary defaults to kSqlite in --state_dir
  // (default /var/lib/clink-gateway). Bounded by idempotency_max_keys (Redis:
  // by Redis's memory). Keyed writes fail closed (UNAVAILABLE, nothing sent)
  // while the store cannot be written.
  enum class IdempotencyStoreKind { kMemory, kSqlite };
  IdempotencyStoreKind idempotency_store = IdempotencyStoreKind::kMemory;
  // The SQLite store's directory (created, mode 0700, if missing); required
  // for kSqlite.
  std::string state_dir;
  std::string idempotency_redis;
  // File holding the Redis password (AUTH), if Redis requires one.
  std::string idempotency_redis_password_file;
  // How long a key's result is replayed.
  absl::Duration idempotency_retention = absl::Hours(24);
  size_t idempotency_max_keys = 100000;
  // How long a keyed CreatePayment/CreateSubscription whose outcome was
  // unknown is looked up at Clink (by merchant_reference_id) so that its key
  // can be settled with the order (adapters/idempotency/outcome_reconciler.h).
  // Zero turns reconciliation off; at most the retention.
  absl::Duration reconcile_window = absl::Minutes(15);
  // Keyed calls that may wait for one in-flight key / for all in-flight keys
  // (per process); beyond either they are answered ABORTED
  // (IDEMPOTENCY_KEY_IN_USE, with RetryInfo) at once, nothing sent.
  size_t idempotency_max_waiters_per_key = 100;
  size_t idempotency_max_waiters = 10000;
  // Clock for signing and deadlines; nullptr means the system clock.
  const Clock* clock = nullptr;

  // Egress (adapters/http/egress_policy.h, curl_http_transport.h). The host of
  // clink_base_url is always allowed; these hosts are allowed too (e.g. the
  // proxy's). Names or IP literals, compared exactly.
  std::vector<std::string> egress_allow_hosts;
  // Comma-separated CIDR ranges exempt from the deny list (loopback, private,
  // link-local, ...). Tests and the emulator on 127.0.0.1 need "127.0.0.0/8";
  // production needs none.
  std::string egress_allow_cidrs;
  // Bind outbound connections to this interface or address ("if!eth0",
  // "host!10.0.0.5", "10.0.0.5"); the call fails if it cannot be bound.
  std::string egress_source_address;
  // HTTPS CONNECT proxy ("http://host:port" / "https://host:port"); its host
  // must be in egress_allow_hosts (and its address exempt if it is private).
  std::string egress_proxy;
  // CURLOPT_PINNEDPUBLICKEY for Clink: "sha256//<base64>[;sha256//...]".
  std::string clink_pinned_public_key;
  // Log and count what the egress policy would deny, without denying it.
  bool egress_report_only = false;
  // TEST ONLY (no flag): the services to serve instead of the contract's
  // (ContractServices::LinkedServices()), e.g. from a test's own descriptor
  // pool. Empty: the contract.
  std::vector<const google::protobuf::ServiceDescriptor*> services_for_test;
  // Where the audit trail (server/audit_log.h: one line per write RPC) goes:
  // empty means the process log (stdout); otherwise appended to this file,
  // reopened when it is replaced (log rotation). A file that cannot be opened
  // fails BuildAndStart (INVALID_ARGUMENT).
  std::string audit_log_file;
  // The callers with a `caller` metric label value of their own: the
  // principals named in the authorization policy (PrincipalsFromAuthzPolicyFile
  // in server/caller_labels.h). Everyone else is "other" (or "anonymous").
  std::vector<std::string> caller_label_principals;

  // Clink webhooks (adapters/webhooks/webhook_listener.h): POST
  // /webhooks/clink (the default merchant) and /webhooks/clink/{merchant} on
  // this host:port (IPv4 or a host name; port 0 picks one, see
  // GatewayServer::webhook_port()). Each merchant's signing secrets are the
  // `webhook-secret` (and `webhook-secret-previous`) files of its key_dir,
  // followed like its keys; a merchant without one answers 404. Events are
  // appended to event_store. Empty: no listener.
  std::string webhook_listen;
  // How far a delivery's X-Clink-Timestamp may be from the gateway's clock,
  // either way.
  absl::Duration webhook_timestamp_tolerance = absl::Seconds(300);
  // Told about each newly stored event (the reconciler); may be null; must
  // outlive the server.
  events::EventListener* event_listener = nullptr;
  // Where Clink's webhook events are kept (adapters/events/event_store.h).
  // Set: the EventService (server/event_service.h) is served over it and
  // accepted webhook events are appended to it. Null: BuildAndStart makes one
  // (events::MakeEventStore) when webhook_listen or event_redis is set:
  // Redis Streams at event_redis, else SQLite at {state_dir}/events.sqlite;
  // with neither, there is no EventService (its RPCs are UNIMPLEMENTED).
  std::shared_ptr<events::EventStore> event_store;
  // --event_redis: the events' Redis ("host:port" or "unix:/path"); main.cc
  // defaults it to idempotency_redis. Empty: SQLite in state_dir.
  std::string event_redis;
  // File holding event_redis's password (main.cc: the idempotency Redis's
  // password file when both are the same server).
  std::string event_redis_password_file;
  // --event_retention: how long stored events are kept (and listable).
  absl::Duration event_retention = absl::Hours(168);
  // --event_dedup_window: how long a redelivered event id is recognised as a
  // duplicate; at least 72 h (events::kMinDedupWindow), longer than Clink's
  // retry horizon of about a day.
  absl::Duration event_dedup_window = absl::Hours(72);

  // TEST ONLY (no flag): CurlHttpTransport::Options::resolve_overrides.
  std::function<std::vector<std::string>()> egress_resolve_overrides_for_test;
};

// Rejects invalid combinations before anything is built: no merchant, a bad
// or duplicate merchant name, a default that names no merchant, a
// malformed listen address (gRPC or metrics), a base URL that is not https://
// (or http:// with allow_plaintext_upstream), a missing CA bundle file,
// non-positive sizes or timeouts, out-of-range retry, overload or rate-limit
// settings, malformed egress settings, the SQLite idempotency store without a
// state_dir, neither TLS files nor grpc_insecure (or both, or only some of
// the three TLS files, or one that cannot be read), an unreadable or invalid
// authorization policy. (Whether the egress policy allows the base URL's and
// the proxy's hosts is checked when the transport is built: BuildAndStart fails
// with FAILED_PRECONDITION.)
absl::Status ValidateOptions(const GatewayOptions& options);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_GATEWAY_OPTIONS_H_
