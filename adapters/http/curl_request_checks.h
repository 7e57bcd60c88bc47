#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_CURL_REQUEST_CHECKS_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_CURL_REQUEST_CHECKS_H_

// Internal to //adapters/http:curl_http_transport (not a public interface):
// the URL and option checks (Create's base URL, proxy and Options; Send's
// request URL and headers) and CurlHttpTransport::Call, whose curl handle
// CurlHttpTransport::ConfigureHandle (curl_request_checks.cc) sets up.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/curl_transfer.h"
#include "adapters/http/curl_wrappers.h"
#include "adapters/http/egress_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "common/secret.h"

namespace clink_gateway::http {

struct CurlHttpTransport::Call {
  // The signed request's header values include the API key: zeroed before
  // they are freed (header_list wipes its own lines).
  ~Call() {
    for (auto& header : request.headers) WipeString(header.second);
  }

  HttpRequest request;
  SendOptions options;
  DoneCallback done;
  std::string context;  // CallContext(request)
  std::string url;
  CurlEasyPtr easy;
  CurlSlistPtr header_list;
  CurlSlistPtr resolve_list;  // Options::resolve_overrides (tests)
  curl_internal::Transfer transfer;
  // curl's whole-call timeout (CURLOPT_TIMEOUT_MS); a timeout well before it
  // was the connect timeout.
  absl::Duration timeout = absl::InfiniteDuration();
};

namespace curl_internal {

// "POST /checkout/session" for `request`: its method and path, never the query
// string (which may hold customer data).
std::string CallContext(const HttpRequest& request);

// INVALID_ARGUMENT (without the call context) when the request's path, body or
// headers, or options.request_id, cannot be sent as built.
absl::Status ValidateRequest(const HttpRequest& request,
                             const SendOptions& options);

// `d` in whole milliseconds for CURLOPT_*TIMEOUT_MS, rounded up, in
// [1, INT32_MAX].
long ToCurlMillis(absl::Duration d);  // NOLINT(runtime/int): curl's type

// base_url without a trailing '/'; `host_out` gets its host as libcurl reads
// it. INVALID_ARGUMENT when it is not an absolute http(s) URL with a host
// (https only unless `allow_plaintext`), or has credentials, query or fragment.
absl::StatusOr<std::string> NormalizeBaseUrl(absl::string_view base_url,
                                             bool allow_plaintext,
                                             std::string* host_out);

// The host of an Options::proxy URL (http(s)://host:port, nothing else);
// INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> ProxyHost(absl::string_view proxy);

// The egress policy's verdict on `host` at Create() (`what`: "base_url" or
// "proxy"; `flag`: the flag that set it, for the message): FAILED_PRECONDITION
// when denied; OK (with a warning logged and reported) when report-only.
absl::Status CheckHostAtCreate(const EgressPolicy& policy,
                               absl::string_view host, absl::string_view what,
                               absl::string_view flag,
                               EgressObserver* observer);

// INVALID_ARGUMENT naming the bad field of `options`; FAILED_PRECONDITION when
// the linked libcurl is too old or lacks TLS (or HTTPS proxy) support.
absl::Status ValidateOptions(const CurlHttpTransport::Options& options);

}  // namespace curl_internal
}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_CURL_REQUEST_CHECKS_H_
