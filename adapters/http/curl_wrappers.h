// RAII owners for libcurl handles and the one CURLcode -> absl::Status mapping.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_CURL_WRAPPERS_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_CURL_WRAPPERS_H_

#include <curl/curl.h>

#include <memory>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "adapters/http/http_types.h"

namespace clink_gateway::http {

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* handle) const { (void)curl_multi_cleanup(handle); }
};
struct CurlShareDeleter {
  void operator()(CURLSH* handle) const { (void)curl_share_cleanup(handle); }
};
struct CurlUrlDeleter {
  void operator()(CURLU* handle) const { curl_url_cleanup(handle); }
};
// Zeroes every line before freeing the list: a header list carries the API
// key (and no copy of the key is freed without being wiped).
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const;
};

using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMultiPtr = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlSharePtr = std::unique_ptr<CURLSH, CurlShareDeleter>;
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;

// Null on allocation failure.
inline CurlEasyPtr MakeCurlEasy() { return CurlEasyPtr(curl_easy_init()); }
inline CurlMultiPtr MakeCurlMulti() { return CurlMultiPtr(curl_multi_init()); }
inline CurlSharePtr MakeCurlShare() { return CurlSharePtr(curl_share_init()); }
inline CurlUrlPtr MakeCurlUrl() { return CurlUrlPtr(curl_url()); }

// Appends one "Name: value" line; `list` is unchanged on failure
// (kResourceExhausted).
[[nodiscard]] absl::Status AppendHeaderLine(CurlSlistPtr& list,
                                            const char* line);

// The status code for a libcurl transfer result. Only the code: whether
// anything reached the server (http::Delivery) is decided by the transport,
// which knows how far the transfer got.
//   OK                         -> kOk
//   DNS / connect / TLS / reset / protocol errors from the peer -> kUnavailable
//   OPERATION_TIMEDOUT         -> kDeadlineExceeded
//   OUT_OF_MEMORY              -> kResourceExhausted
//   ABORTED_BY_CALLBACK        -> kCancelled
//   local misuse, configuration, protocols we never use -> kInternal
absl::StatusCode CurlCodeToStatusCode(CURLcode code);

// Why a transfer that ended with `code` failed (http::FailureKind).
// `request_started` is whether libcurl began writing the request on an
// established connection at some point during the transfer (the transport's
// CURLOPT_PREREQFUNCTION); it separates "never got a usable connection" from
// "lost the connection with the request possibly written":
//   OK                                          -> kNone
//   OPERATION_TIMEDOUT                          -> kDeadline (either side)
//   DNS, connect, TLS handshake/verification    -> kConnect, or kConnectionLost
//     and send/recv/empty/truncated errors         if the request had started
//     (a failed retry on a new connection, after the first one died)
//   FILESIZE_EXCEEDED                           -> kResponseTooLarge
//   anything else (malformed reply, local misuse, out of memory) -> kOther
FailureKind CurlCodeToFailureKind(CURLcode code, bool request_started);

// CurlCodeToStatusCode(code) with the message "<context>: <curl_easy_strerror>
// (curl error N)" and, when not empty, ": <detail>" (CURLOPT_ERRORBUFFER text).
// OK for CURLE_OK.
absl::Status CurlCodeToStatus(CURLcode code, absl::string_view context,
                              absl::string_view detail = {});

// Errors from the multi and share interfaces are always local:
// kResourceExhausted for out of memory, kInternal otherwise. OK for CURLM_OK /
// CURLSHE_OK.
absl::Status CurlMultiCodeToStatus(CURLMcode code, absl::string_view context);
absl::Status CurlShareCodeToStatus(CURLSHcode code, absl::string_view context);

// The status for a failed curl_easy_setopt; the message names the option.
absl::Status SetCurlOptionError(CURLcode code, CURLoption option);

// curl_easy_setopt returning a Status. `value` must have the exact type libcurl
// reads through varargs for the option: long, curl_off_t, or a pointer
// (strings, callbacks, userdata). Passing an int where curl expects long is
// undefined behaviour, so it does not compile.
template <typename T>
[[nodiscard]] absl::Status SetCurlOption(CURL* handle, CURLoption option,
                                         T value) {
  static_assert(std::is_same_v<T, long> ||
                    std::is_same_v<T, curl_off_t> ||  // NOLINT(runtime/int)
                    std::is_pointer_v<T>,
                "curl options take long, curl_off_t or a pointer");
  const CURLcode code = curl_easy_setopt(handle, option, value);
  if (code == CURLE_OK) return absl::OkStatus();
  return SetCurlOptionError(code, option);
}

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_CURL_WRAPPERS_H_
