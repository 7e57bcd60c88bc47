#include "server/gateway_options.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "adapters/http/egress_policy.h"
#include "common/status_macros.h"
#include "server/authz_policy.h"

namespace clink_gateway::server {
namespace {

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
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be host:port (e.g. ", example,
                     "), got \"", listen, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateBaseUrl(absl::string_view url, bool allow_plaintext) {
  const bool https = absl::StartsWith(url, "https://");
  const bool http = absl::StartsWith(url, "http://");
  if (!https && !(http && allow_plaintext)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--clink_base_url must be https:// (http:// only with "
                     "--allow_plaintext_upstream), got \"",
                     url, "\""));
  }
  return absl::OkStatus();
}

bool IsMerchantName(absl::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!absl::ascii_islower(name[0]) && !absl::ascii_isdigit(name[0])) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' ||
           c == '-';
  });
}

absl::Status ValidateMerchants(const GatewayOptions& o) {
  if (o.merchants.empty()) {
    return absl::InvalidArgumentError(
        "no Clink merchant: pass --api_key_dir or --merchants_config");
  }
  absl::flat_hash_set<std::string> names;
  for (const MerchantOptions& m : o.merchants) {
    if (!IsMerchantName(m.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "merchant name must be 1-63 characters from [a-z0-9_-] starting "
          "with a letter or digit, got \"",
          m.name, "\""));
    }
    if (!names.insert(m.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("merchant \"", m.name, "\" is configured twice"));
    }
    if (m.key_dir.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("merchant \"", m.name, "\" has no key_dir"));
    }
    if (!m.clink_base_url.empty()) {
      if (absl::Status s =
              ValidateBaseUrl(m.clink_base_url, o.allow_plaintext_upstream);
          !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("merchant \"", m.name, "\": ", s.message()));
      }
    }
  }
  if (!o.default_merchant.empty() && !names.contains(o.default_merchant)) {
    return absl::InvalidArgumentError(
        absl::StrCat("default merchant \"", o.default_merchant,
                     "\" is not a configured merchant"));
  }
  if (o.key_reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "--key_reload_interval must be at least 1s");
  }
  if (o.clock_skew_probe_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "the clock-skew probe interval must be positive");
  }
  const clink::ClockSkewOptions& skew = o.clock_skew;
  if (skew.warning_threshold <= absl::ZeroDuration() ||
      skew.critical_threshold < skew.warning_threshold) {
    return absl::InvalidArgumentError(
        "the clock-skew thresholds must be positive, warning <= critical");
  }
  return absl::OkStatus();
}

absl::Status ValidateCallerAuth(const GatewayOptions& o) {
  const bool any_tls = !o.grpc_tls_cert_file.empty() ||
                       !o.grpc_tls_key_file.empty() ||
                       !o.grpc_client_ca_file.empty();
  if (o.grpc_insecure && any_tls) {
    return absl::InvalidArgumentError(
        "--grpc_insecure and --grpc_tls_cert_file/--grpc_tls_key_file/"
        "--grpc_client_ca_file contradict each other: pass one");
  }
  if (!o.grpc_insecure && !any_tls) {
    return absl::InvalidArgumentError(
        "the gRPC port must authenticate callers: pass --grpc_tls_cert_file, "
        "--grpc_tls_key_file and --grpc_client_ca_file (mutual TLS), or "
        "--grpc_insecure for a plaintext port (tests and local runs only)");
  }
  if (any_tls) {
    for (const auto& [flag, path] :
         {std::pair<const char*, const std::string*>{"grpc_tls_cert_file",
                                                     &o.grpc_tls_cert_file},
          {"grpc_tls_key_file", &o.grpc_tls_key_file},
          {"grpc_client_ca_file", &o.grpc_client_ca_file}}) {
      if (path->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag,
                         " is missing: mutual TLS needs --grpc_tls_cert_file, "
                         "--grpc_tls_key_file and --grpc_client_ca_file"));
      }
      if (!std::ifstream(*path).good()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, " file cannot be read: ", *path));
      }
    }
    if (o.tls_reload_interval < absl::Seconds(1)) {
      return absl::InvalidArgumentError(
          "--grpc_tls_reload_interval must be at least 1s");
    }
  }
  if (!o.health_listen.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        ValidateListenAddress("health_listen", "[::]:8081", o.health_listen));
  }
  if (!o.authz_policy_file.empty()) {
    if (o.authz_reload_interval < absl::Seconds(1)) {
      return absl::InvalidArgumentError(
          "--authz_policy_reload_interval must be at least 1s");
    }
    absl::StatusOr<std::string> policy = ReadPolicyFile(o.authz_policy_file);
    if (!policy.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--authz_policy_file cannot be read: ", o.authz_policy_file));
    }
    if (auto parsed = AuthzPolicy::Parse(*policy); !parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--authz_policy_file ", o.authz_policy_file, ": ",
                       parsed.status().message()));
    }
  }
  return absl::OkStatus();
}

// A listen address served by civetweb (the metrics exposer, the webhook
// listener): Debian's civetweb is built without IPv6.
absl::Status ValidateCivetwebListen(absl::string_view flag,
                                    absl::string_view example,
                                    const std::string& listen) {
  GATEWAY_RETURN_IF_ERROR(ValidateListenAddress(flag, example, listen));
  if (absl::StartsWith(listen, "[")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " must be an IPv4 address or a host name (civetweb, "
        "which serves it, has no IPv6), e.g. ", example, ", got \"", listen,
        "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateOptions(const GatewayOptions& o) {
  GATEWAY_RETURN_IF_ERROR(
      ValidateListenAddress("grpc_listen", "[::]:50051", o.grpc_listen));
  GATEWAY_RETURN_IF_ERROR(ValidateCallerAuth(o));
  if (!o.metrics_listen.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        ValidateCivetwebListen("metrics_listen", "0.0.0.0:9464",
                               o.metrics_listen));
  }
  if (!o.webhook_listen.empty()) {
    GATEWAY_RETURN_IF_ERROR(ValidateCivetwebListen(
        "webhook_listen", "0.0.0.0:8080", o.webhook_listen));
    if (o.webhook_timestamp_tolerance <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "--webhook_timestamp_tolerance must be positive");
    }
  }
  GATEWAY_RETURN_IF_ERROR(ValidateMerchants(o));
  GATEWAY_RETURN_IF_ERROR(
      ValidateBaseUrl(o.clink_base_url, o.allow_plaintext_upstream));
  if (!o.ca_bundle.empty() && !std::ifstream(o.ca_bundle).good()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ca_bundle file cannot be read: ", o.ca_bundle));
  }
  if (o.upstream_shards < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--upstream_shards must be 0 (the cores available) or positive, got ",
        o.upstream_shards));
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
  if (o.idempotency_redis.empty() &&
      o.idempotency_store == GatewayOptions::IdempotencyStoreKind::kSqlite &&
      o.state_dir.empty()) {
    return absl::InvalidArgumentError(
        "--state_dir must name a directory for the idempotency store (or "
        "pass --idempotency_store=memory, or --idempotency_redis)");
  }
  if (o.idempotency_retention < absl::Minutes(1) ||
      o.idempotency_max_keys == 0) {
    return absl::InvalidArgumentError(
        "--idempotency_retention must be at least 1m and "
        "--idempotency_max_keys positive");
  }
  if (o.reconcile_window < absl::ZeroDuration() ||
      o.reconcile_window > o.idempotency_retention) {
    return absl::InvalidArgumentError(
        "--reconcile_window must be between 0 (off) and "
        "--idempotency_retention");
  }
  if (o.idempotency_max_waiters_per_key == 0 ||
      o.idempotency_max_waiters == 0) {
    return absl::InvalidArgumentError(
        "--idempotency_max_waiters_per_key and --idempotency_max_waiters must "
        "be positive");
  }
  return absl::OkStatus();
}

}  // namespace clink_gateway::server
