#include "adapters/http/curl_request_checks.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/curl_transfer.h"
#include "adapters/http/curl_wrappers.h"
#include "adapters/http/egress_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "common/logging.h"
#include "common/secret.h"
#include "common/status_macros.h"

namespace clink_gateway::http {
namespace curl_internal {
namespace {

// CURLOPT_PREREQFUNCTION and CURLOPT_PROTOCOLS_STR.
constexpr unsigned int kMinCurlVersion = 0x075500;  // 7.85.0

// RFC 9110 token characters (header names).
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
         absl::string_view::npos;
}

bool IsValidHeaderName(absl::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), IsTokenChar);
}

// No CR, LF, NUL or other control characters except horizontal tab: the value
// cannot end the header line or start a new one.
bool IsValidHeaderValue(absl::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

// Must start with '/' (so it can never change the authority of base_url +
// path_and_query) and hold only visible ASCII, with no fragment.
bool IsValidPathAndQuery(absl::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  return std::all_of(path.begin(), path.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != '#';
  });
}

// True when the path part of `path_and_query` has a dot segment ("." or "..",
// also percent-encoded, any case, or with a backslash for a separator, as some
// servers read it): resolved by libcurl or by a server, it would send the
// request to another endpoint than the one the caller built.
bool HasDotSegment(absl::string_view path_and_query) {
  const absl::string_view path =
      path_and_query.substr(0, path_and_query.find('?'));
  for (absl::string_view segment :
       absl::StrSplit(path, absl::ByAnyChar("/\\"))) {
    std::string decoded;
    while (!segment.empty()) {
      if (segment.front() == '.') {
        decoded.push_back('.');
        segment.remove_prefix(1);
      } else if (segment.size() >= 3 && segment[0] == '%' &&
                 segment[1] == '2' &&
                 (segment[2] == 'e' || segment[2] == 'E')) {
        decoded.push_back('.');
        segment.remove_prefix(3);
      } else {
        decoded.clear();
        break;
      }
    }
    if (decoded == "." || decoded == "..") return true;
  }
  return false;
}

}  // namespace

// "POST /checkout/session": what status messages say about a call (never the
// query string, which may hold customer data).
std::string CallContext(const HttpRequest& request) {
  const absl::string_view path = request.path_and_query;
  return absl::StrCat(MethodName(request.method), " ",
                      path.substr(0, path.find('?')));
}

absl::Status ValidateRequest(const HttpRequest& request,
                             const SendOptions& options) {
  if (!IsValidPathAndQuery(request.path_and_query)) {
    return absl::InvalidArgumentError(
        "path_and_query must start with '/' and contain only visible ASCII, "
        "without '#'");
  }
  if (HasDotSegment(request.path_and_query)) {
    return absl::InvalidArgumentError(
        "path_and_query must not have a '.' or '..' segment");
  }
  if (request.method == Method::kGet && !request.body.empty()) {
    return absl::InvalidArgumentError("a GET request cannot have a body");
  }
  for (const auto& [name, value] : request.headers) {
    if (!IsValidHeaderName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid header name '", absl::CHexEscape(name.substr(0, 64)), "'"));
    }
    if (!IsValidHeaderValue(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header ", name, " has a value with control characters"));
    }
  }
  if (!IsValidHeaderValue(options.request_id)) {
    return absl::InvalidArgumentError("request_id has control characters");
  }
  return absl::OkStatus();
}

namespace {

bool HasHeader(const HeaderList& headers, absl::string_view name) {
  return std::any_of(headers.begin(), headers.end(), [name](const auto& h) {
    return absl::EqualsIgnoreCase(h.first, name);
  });
}

}  // namespace

// Milliseconds for CURLOPT_*TIMEOUT_MS: rounded up (so a sub-millisecond
// remainder does not become 0, which curl reads as "no timeout") and clamped to
// [1, INT32_MAX].
long ToCurlMillis(absl::Duration d) {  // NOLINT(runtime/int): curl's type
  const int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1)));
  return static_cast<long>(  // NOLINT(runtime/int)
      std::clamp<int64_t>(ms, 1, std::numeric_limits<int32_t>::max()));
}

// Returns base_url without a trailing '/', after checking it is an absolute
// http(s) URL with a host and without credentials, query or fragment. `host`
// gets its host as libcurl reads it (lower case; IPv6 in brackets; IPv4 in
// any numeric form normalised to dotted decimal).
absl::StatusOr<std::string> NormalizeBaseUrl(absl::string_view base_url,
                                             bool allow_plaintext,
                                             std::string* host_out) {
  if (base_url.find_first_of("?#") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "base_url must not have a query or fragment");
  }
  CurlUrlPtr url = MakeCurlUrl();
  if (url == nullptr)
    return absl::ResourceExhaustedError("curl_url: out of memory");
  const std::string text(base_url);
  if (CURLUcode rc = curl_url_set(url.get(), CURLUPART_URL, text.c_str(), 0);
      rc != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("base_url is not a valid URL: ", curl_url_strerror(rc)));
  }
  auto get_part = [&url](CURLUPart part) -> absl::optional<std::string> {
    char* value = nullptr;
    if (curl_url_get(url.get(), part, &value, 0) != CURLUE_OK ||
        value == nullptr) {
      return absl::nullopt;
    }
    std::string result(value);
    curl_free(value);
    return result;
  };
  const absl::optional<std::string> scheme = get_part(CURLUPART_SCHEME);
  if (!scheme.has_value() || (*scheme != "https" && *scheme != "http")) {
    return absl::InvalidArgumentError("base_url must be an https:// URL");
  }
  if (*scheme == "http" && !allow_plaintext) {
    return absl::InvalidArgumentError(
        "base_url must use https (plaintext http needs allow_plaintext)");
  }
  const absl::optional<std::string> host = get_part(CURLUPART_HOST);
  if (!host.has_value() || host->empty()) {
    return absl::InvalidArgumentError("base_url has no host");
  }
  if (get_part(CURLUPART_USER).has_value() ||
      get_part(CURLUPART_PASSWORD).has_value()) {
    return absl::InvalidArgumentError("base_url must not contain credentials");
  }
  *host_out = absl::AsciiStrToLower(*host);
  std::string normalized(base_url);
  while (!normalized.empty() && normalized.back() == '/') normalized.pop_back();
  return normalized;
}

// Checks an Options::proxy URL: http:// or https://, a host and an explicit
// port, nothing else. Returns its host (as NormalizeBaseUrl does).
absl::StatusOr<std::string> ProxyHost(absl::string_view proxy) {
  CurlUrlPtr url = MakeCurlUrl();
  if (url == nullptr)
    return absl::ResourceExhaustedError("curl_url: out of memory");
  const std::string text(proxy);
  if (CURLUcode rc = curl_url_set(url.get(), CURLUPART_URL, text.c_str(), 0);
      rc != CURLUE_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "proxy (--egress_proxy) is not a valid URL: ", curl_url_strerror(rc)));
  }
  auto get_part = [&url](CURLUPart part) -> absl::optional<std::string> {
    char* value = nullptr;
    if (curl_url_get(url.get(), part, &value, 0) != CURLUE_OK ||
        value == nullptr) {
      return absl::nullopt;
    }
    std::string result(value);
    curl_free(value);
    return result;
  };
  const absl::optional<std::string> scheme = get_part(CURLUPART_SCHEME);
  const absl::optional<std::string> host = get_part(CURLUPART_HOST);
  const absl::optional<std::string> path = get_part(CURLUPART_PATH);
  if (!scheme.has_value() || (*scheme != "http" && *scheme != "https") ||
      !host.has_value() || host->empty() ||
      !get_part(CURLUPART_PORT).has_value() ||
      get_part(CURLUPART_USER).has_value() ||
      get_part(CURLUPART_QUERY).has_value() ||
      get_part(CURLUPART_FRAGMENT).has_value() ||
      (path.has_value() && *path != "/" && !path->empty()) ||
      text.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("proxy (--egress_proxy) must be http://host:port or "
                     "https://host:port, got \"",
                     absl::CHexEscape(text.substr(0, 200)), "\""));
  }
  return absl::AsciiStrToLower(*host);
}

namespace {

// "sha256//<44 base64 chars>" entries separated by ';'.
bool IsValidPinnedKey(absl::string_view pins) {
  if (pins.empty()) return false;
  for (absl::string_view pin : absl::StrSplit(pins, ';')) {
    if (!absl::ConsumePrefix(&pin, "sha256//") || pin.size() != 44) {
      return false;
    }
    std::string raw;
    if (!absl::Base64Unescape(pin, &raw) || raw.size() != 32) return false;
  }
  return true;
}

// The range to suggest exempting for a denied IP literal host: the loopback
// range for loopback (any 127/8 address is local), else the address itself.
std::string SuggestedCidr(absl::string_view host, AddressClass reason) {
  int family = 0;
  uint8_t bytes[16] = {};
  if (!ParseHostLiteral(host, &family, bytes)) return std::string(host);
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, bytes, text, sizeof(text)) == nullptr) {
    return std::string(host);
  }
  if (family == AF_INET) {
    if (reason == AddressClass::kLoopback) return "127.0.0.0/8";
    return absl::StrCat(text, "/32");
  }
  return absl::StrCat(text, "/128");
}

}  // namespace

// The host check at Create(), for the base URL's host and the proxy's.
absl::Status CheckHostAtCreate(const EgressPolicy& policy,
                               absl::string_view host, absl::string_view what,
                               absl::string_view flag,
                               EgressObserver* observer) {
  const EgressDecision decision = policy.CheckHost(host);
  if (decision.allowed && !decision.would_deny) return absl::OkStatus();
  std::string message;
  if (decision.reason == AddressClass::kNotAllowedHost) {
    message = absl::StrCat(flag, " host ", host,
                           " is not on the egress allow-list; add it to "
                           "--egress_allow_hosts");
  } else {
    message = absl::StrCat(
        flag, " points at ", DescribeAddressClass(decision.reason), " (", host,
        "), which the egress policy denies; pass --egress_allow_cidrs=",
        SuggestedCidr(host, decision.reason),
        " to allow it (tests/emulator only)");
  }
  if (decision.allowed) {  // report-only
    Log(LogLevel::kWarning, "egress_would_deny",
        {{"reason", AddressClassName(decision.reason)},
         {"host", host},
         {"where", what},
         {"report_only", "true"},
         {"warning", message}});
    if (observer != nullptr) observer->OnEgressWouldDeny(decision.reason);
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(message);
}

absl::Status ValidateOptions(const CurlHttpTransport::Options& options) {
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("max_connections must be at least 1");
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("connect_timeout must be positive");
  }
  if (options.max_call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_call_timeout must be positive");
  }
  if (options.max_response_bytes == 0) {
    return absl::InvalidArgumentError("max_response_bytes must be positive");
  }
  if (!IsValidHeaderValue(options.user_agent)) {
    return absl::InvalidArgumentError("user_agent has control characters");
  }
  if (!options.ca_bundle_path.empty() &&
      ::access(options.ca_bundle_path.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ca_bundle_path ", options.ca_bundle_path, " is not readable"));
  }
  if (!options.source_address.empty() &&
      (options.source_address.size() > 255 ||
       !std::all_of(options.source_address.begin(),
                    options.source_address.end(), [](char c) {
                      return absl::ascii_isgraph(static_cast<unsigned char>(c));
                    }))) {
    return absl::InvalidArgumentError(
        "source_address (--egress_source_address) must be an interface or "
        "address: \"if!eth0\", \"host!10.0.0.5\" or \"10.0.0.5\"");
  }
  if (!options.pinned_public_key.empty() &&
      !IsValidPinnedKey(options.pinned_public_key)) {
    return absl::InvalidArgumentError(
        "pinned_public_key (--clink_pinned_public_key) must be "
        "\"sha256//<base64 of 32 bytes>\" entries separated by ';'");
  }
  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  if (info == nullptr || info->version_num < kMinCurlVersion) {
    return absl::FailedPreconditionError("libcurl 7.85.0 or newer is required");
  }
  if ((info->features & CURL_VERSION_SSL) == 0) {
    return absl::FailedPreconditionError(
        "libcurl was built without TLS support");
  }
  if (absl::StartsWith(options.proxy, "https:") &&
      (info->features & CURL_VERSION_HTTPS_PROXY) == 0) {
    return absl::FailedPreconditionError(
        "libcurl was built without HTTPS proxy support");
  }
  return absl::OkStatus();
}

}  // namespace curl_internal

namespace {

// TCP keepalive probes on idle pooled connections, so dead peers and NAT
// timeouts are noticed.
constexpr long kTcpKeepIdleSeconds = 30;  // NOLINT(runtime/int): curl's type
constexpr long kTcpKeepIntervalSeconds = 15;  // NOLINT(runtime/int)

// Idle pooled connections older than this are not reused. Kept under the 60 s
// idle timeout common in load balancers, so a request is rarely written into a
// connection the server is closing at that moment (curl retries such a request
// on a new connection, which is only safe if the server never processed it).
constexpr long kMaxIdleConnectionAgeSeconds = 50;  // NOLINT(runtime/int)

}  // namespace

using curl_internal::CurlCloseSocket;
using curl_internal::CurlOpenSocket;
using curl_internal::CurlPrereq;
using curl_internal::CurlWriteBody;
using curl_internal::CurlWriteHeader;
using curl_internal::HasHeader;
using curl_internal::ToCurlMillis;
using curl_internal::Transfer;

absl::Status CurlHttpTransport::ConfigureHandle(Call& call, absl::Time now) {
  CURL* h = call.easy.get();
  Transfer& transfer = call.transfer;
  transfer.easy = h;
  transfer.max_bytes = options_.max_response_bytes;
  transfer.resend_allowed = call.request.idempotent;
  transfer.policy = &policy_;
  transfer.observer = options_.egress_observer;
  transfer.sockets = sockets_.get();

  const absl::Duration total =
      std::min(call.options.deadline - now, options_.max_call_timeout);
  const absl::Duration connect = std::min(options_.connect_timeout, total);
  call.timeout = total;

  // Where and how.
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_PRIVATE, static_cast<void*>(&call)));
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_URL, call.url.c_str()));
  // The path goes out exactly as built: libcurl would otherwise resolve dot
  // segments (RFC 3986 5.2.4) and could send the call to another endpoint.
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_PATH_AS_IS, 1L));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_PROTOCOLS_STR, protocols_.c_str()));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_REDIR_PROTOCOLS_STR, protocols_.c_str()));
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_FOLLOWLOCATION, 0L));
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_NOSIGNAL, 1L));
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_SHARE, share_.get()));
  // Every connection's address goes through the egress policy first.
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_OPENSOCKETFUNCTION, &CurlOpenSocket));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_OPENSOCKETDATA, static_cast<void*>(&transfer)));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_CLOSESOCKETFUNCTION, &CurlCloseSocket));
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_CLOSESOCKETDATA,
                                        static_cast<void*>(sockets_.get())));
  // The configured proxy or none, whatever http(s)_proxy / ALL_PROXY /
  // NO_PROXY say (an explicit CURLOPT_PROXY and CURLOPT_NOPROXY make libcurl
  // ignore them).
  if (options_.proxy.empty()) {
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_PROXY, ""));
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_NOPROXY, "*"));
  } else {
    GATEWAY_RETURN_IF_ERROR(
        SetCurlOption(h, CURLOPT_PROXY, options_.proxy.c_str()));
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_NOPROXY, ""));
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_HTTPPROXYTUNNEL, 1L));
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_PROXY_SSL_VERIFYPEER, 1L));
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_PROXY_SSL_VERIFYHOST, 2L));
    if (!options_.ca_bundle_path.empty()) {
      GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_PROXY_CAINFO,
                                            options_.ca_bundle_path.c_str()));
    }
  }
  if (!options_.source_address.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        SetCurlOption(h, CURLOPT_INTERFACE, options_.source_address.c_str()));
  }
  if (!options_.pinned_public_key.empty()) {
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_PINNEDPUBLICKEY,
                                          options_.pinned_public_key.c_str()));
  }
  if (options_.resolve_overrides) {
    for (const std::string& entry : options_.resolve_overrides()) {
      GATEWAY_RETURN_IF_ERROR(
          AppendHeaderLine(call.resolve_list, entry.c_str()));
    }
    GATEWAY_RETURN_IF_ERROR(
        SetCurlOption(h, CURLOPT_RESOLVE, call.resolve_list.get()));
  }
  // TLS: verification is always on; there is deliberately no option to turn it
  // off.
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_SSL_VERIFYPEER, 1L));
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_SSL_VERIFYHOST, 2L));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_SSLVERSION,
                    static_cast<long>(CURL_SSLVERSION_TLSv1_2)));  // NOLINT
  if (!options_.ca_bundle_path.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        SetCurlOption(h, CURLOPT_CAINFO, options_.ca_bundle_path.c_str()));
  }
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_MAXAGE_CONN, kMaxIdleConnectionAgeSeconds));
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_TCP_KEEPALIVE, 1L));
  // HTTP/1.1 keep-alive pooling is what is tested (against the emulator) and
  // what the delivery classification and no-resend rule are built on; HTTP/2
  // would multiplex calls over one connection with different failure modes.
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_HTTP_VERSION,
                    static_cast<long>(CURL_HTTP_VERSION_1_1)));  // NOLINT
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_TCP_KEEPIDLE, kTcpKeepIdleSeconds));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_TCP_KEEPINTVL, kTcpKeepIntervalSeconds));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_TIMEOUT_MS, ToCurlMillis(total)));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_CONNECTTIMEOUT_MS, ToCurlMillis(connect)));

  // Response handling.
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_MAXFILESIZE_LARGE,
                    static_cast<curl_off_t>(options_.max_response_bytes)));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_WRITEFUNCTION, &CurlWriteBody));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_WRITEDATA, static_cast<void*>(&transfer)));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_HEADERFUNCTION, &CurlWriteHeader));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_HEADERDATA, static_cast<void*>(&transfer)));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_PREREQFUNCTION, &CurlPrereq));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_PREREQDATA, static_cast<void*>(&transfer)));
  GATEWAY_RETURN_IF_ERROR(
      SetCurlOption(h, CURLOPT_ERRORBUFFER, &transfer.error_buffer[0]));

  // Method and body. POSTFIELDS points into call.request.body, which outlives
  // the transfer.
  const HttpRequest& request = call.request;
  const bool has_body = !request.body.empty();
  switch (request.method) {
    case Method::kGet:
      GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_HTTPGET, 1L));
      break;
    case Method::kPost:
    case Method::kPut:
    case Method::kPatch:
    case Method::kDelete:
      // PUT, PATCH and DELETE are POSTs with another request line: the body
      // goes from memory with Content-Length, never CURLOPT_UPLOAD's read
      // callback and chunked encoding.
      if (request.method == Method::kDelete && !has_body) {
        GATEWAY_RETURN_IF_ERROR(
            SetCurlOption(h, CURLOPT_CUSTOMREQUEST, "DELETE"));
        break;
      }
      GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_POST, 1L));
      GATEWAY_RETURN_IF_ERROR(
          SetCurlOption(h, CURLOPT_POSTFIELDSIZE_LARGE,
                        static_cast<curl_off_t>(request.body.size())));
      GATEWAY_RETURN_IF_ERROR(
          SetCurlOption(h, CURLOPT_POSTFIELDS, request.body.data()));
      if (request.method != Method::kPost) {
        GATEWAY_RETURN_IF_ERROR(SetCurlOption(
            h, CURLOPT_CUSTOMREQUEST, MethodName(request.method).data()));
      }
      break;
  }

  // Headers. "Name:" removes a header curl would add itself; "Name;" sends an
  // empty value.
  CurlSlistPtr& list = call.header_list;
  GATEWAY_RETURN_IF_ERROR(AppendHeaderLine(list, "Expect:"));
  if (!HasHeader(request.headers, "Accept")) {
    GATEWAY_RETURN_IF_ERROR(AppendHeaderLine(list, "Accept: application/json"));
  }
  if (!has_body) {
    GATEWAY_RETURN_IF_ERROR(AppendHeaderLine(list, "Content-Type:"));
  } else if (!HasHeader(request.headers, "Content-Type")) {
    GATEWAY_RETURN_IF_ERROR(
        AppendHeaderLine(list, "Content-Type: application/json"));
  }
  if (!options_.user_agent.empty()) {
    GATEWAY_RETURN_IF_ERROR(AppendHeaderLine(
        list, absl::StrCat("User-Agent: ", options_.user_agent).c_str()));
  }
  const bool has_request_id = !call.options.request_id.empty();
  if (has_request_id) {
    GATEWAY_RETURN_IF_ERROR(AppendHeaderLine(
        list, absl::StrCat("X-Request-Id: ", call.options.request_id).c_str()));
  }
  for (const auto& [name, value] : request.headers) {
    if (!has_body && absl::EqualsIgnoreCase(name, "Content-Type")) continue;
    if (has_request_id && absl::EqualsIgnoreCase(name, "X-Request-Id"))
      continue;
    std::string line = value.empty() ? absl::StrCat(name, ";")
                                     : absl::StrCat(name, ": ", value);
    const absl::Status appended = AppendHeaderLine(list, line.c_str());
    WipeString(line);  // It may carry the API key.
    GATEWAY_RETURN_IF_ERROR(appended);
  }
  GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_HTTPHEADER, list.get()));
  return absl::OkStatus();
}

}  // namespace clink_gateway::http
