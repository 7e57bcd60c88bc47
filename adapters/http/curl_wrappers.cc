#include "adapters/http/curl_wrappers.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/secret.h"

namespace clink_gateway::http {

void CurlSlistDeleter::operator()(curl_slist* list) const {
  for (curl_slist* item = list; item != nullptr; item = item->next) {
    if (item->data != nullptr) WipeBytes(item->data, std::strlen(item->data));
  }
  curl_slist_free_all(list);
}

absl::Status AppendHeaderLine(CurlSlistPtr& list, const char* line) {
  curl_slist* head = curl_slist_append(list.get(), line);
  if (head == nullptr)
    return absl::ResourceExhaustedError("curl_slist_append: out of memory");
  // For a non-empty list curl appends in place and returns the same head.
  if (list == nullptr) list.reset(head);
  return absl::OkStatus();
}

// One case per CURLcode, in curl.h order (libcurl 7.88). No default:
// -Werror=switch flags any code a newer libcurl adds, so it gets a deliberate
// mapping.
absl::StatusCode CurlCodeToStatusCode(CURLcode code) {
  using absl::StatusCode;
  switch (code) {
    case CURLE_OK:
      return StatusCode::kOk;

    // The peer or the network: DNS, connect, TLS handshake and verification,
    // resets, and malformed or truncated responses. Transient from the caller's
    // point of view.
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_AGAIN:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_NO_CONNECTION_AVAILABLE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PROXY:
      return StatusCode::kUnavailable;

    case CURLE_OPERATION_TIMEDOUT:
      return StatusCode::kDeadlineExceeded;

    case CURLE_OUT_OF_MEMORY:
      return StatusCode::kResourceExhausted;

    case CURLE_ABORTED_BY_CALLBACK:
      return StatusCode::kCancelled;

    // Our own misuse or configuration (bad option, URL, CA file, size cap,
    // recursion), and protocol features the gateway never uses (FTP, LDAP,
    // TFTP, SSH, RTSP, auth, uploads).
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_FAILED_INIT:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_FTP_ACCEPT_FAILED:
    case CURLE_FTP_WEIRD_PASS_REPLY:
    case CURLE_FTP_ACCEPT_TIMEOUT:
    case CURLE_FTP_WEIRD_PASV_REPLY:
    case CURLE_FTP_WEIRD_227_FORMAT:
    case CURLE_FTP_CANT_GET_HOST:
    case CURLE_FTP_COULDNT_SET_TYPE:
    case CURLE_FTP_COULDNT_RETR_FILE:
    case CURLE_OBSOLETE20:
    case CURLE_QUOTE_ERROR:
    case CURLE_HTTP_RETURNED_ERROR:
    case CURLE_WRITE_ERROR:
    case CURLE_OBSOLETE24:
    case CURLE_UPLOAD_FAILED:
    case CURLE_READ_ERROR:
    case CURLE_OBSOLETE29:
    case CURLE_FTP_PORT_FAILED:
    case CURLE_FTP_COULDNT_USE_REST:
    case CURLE_OBSOLETE32:
    case CURLE_RANGE_ERROR:
    case CURLE_HTTP_POST_ERROR:
    case CURLE_BAD_DOWNLOAD_RESUME:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_LDAP_CANNOT_BIND:
    case CURLE_LDAP_SEARCH_FAILED:
    case CURLE_OBSOLETE40:
    case CURLE_FUNCTION_NOT_FOUND:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_OBSOLETE44:
    case CURLE_INTERFACE_FAILED:
    case CURLE_OBSOLETE46:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_SETOPT_OPTION_SYNTAX:
    case CURLE_OBSOLETE50:
    case CURLE_OBSOLETE51:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_OBSOLETE57:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_OBSOLETE62:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_LOGIN_DENIED:
    case CURLE_TFTP_NOTFOUND:
    case CURLE_TFTP_PERM:
    case CURLE_REMOTE_DISK_FULL:
    case CURLE_TFTP_ILLEGAL:
    case CURLE_TFTP_UNKNOWNID:
    case CURLE_REMOTE_FILE_EXISTS:
    case CURLE_TFTP_NOSUCHUSER:
    case CURLE_OBSOLETE75:
    case CURLE_OBSOLETE76:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_REMOTE_FILE_NOT_FOUND:
    case CURLE_SSH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_FTP_PRET_FAILED:
    case CURLE_RTSP_CSEQ_ERROR:
    case CURLE_RTSP_SESSION_ERROR:
    case CURLE_FTP_BAD_FILE_LIST:
    case CURLE_CHUNK_FAILED:
    case CURLE_RECURSIVE_API_CALL:
    case CURLE_AUTH_ERROR:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_UNRECOVERABLE_POLL:
    case CURL_LAST:
      return StatusCode::kInternal;
  }
  return StatusCode::kInternal;  // a value outside the enum
}

FailureKind CurlCodeToFailureKind(CURLcode code, bool request_started) {
  // Network failures of the peer or the path to it. Before the request started
  // they can only have happened while setting up a connection.
  const FailureKind network =
      request_started ? FailureKind::kConnectionLost : FailureKind::kConnect;
  switch (code) {
    case CURLE_OK:
      return FailureKind::kNone;

    case CURLE_OPERATION_TIMEDOUT:
      return FailureKind::kDeadline;

    // Setting up the connection: DNS, TCP, TLS handshake and verification.
    // After the request started, these come from libcurl's retry on a new
    // connection (the first one died), so the request may still have left.
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PROXY:
    case CURLE_NO_CONNECTION_AVAILABLE:
    // The connection failed under an exchange: reset, closed, nothing or only
    // part of a response.
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
      return network;

    case CURLE_FILESIZE_EXCEEDED:
      return FailureKind::kResponseTooLarge;

    default:
      // A malformed reply, local misuse or configuration, out of memory, and
      // codes a newer libcurl may add: nothing suggests another attempt helps.
      return FailureKind::kOther;
  }
}

absl::Status CurlCodeToStatus(CURLcode code, absl::string_view context,
                              absl::string_view detail) {
  const absl::StatusCode status_code = CurlCodeToStatusCode(code);
  if (status_code == absl::StatusCode::kOk) return absl::OkStatus();
  std::string message =
      absl::StrCat(context, ": ", curl_easy_strerror(code), " (curl error ",
                   static_cast<int>(code), ")");
  if (!detail.empty()) absl::StrAppend(&message, ": ", detail);
  return absl::Status(status_code, message);
}

absl::Status SetCurlOptionError(CURLcode code, CURLoption option) {
  const curl_easyoption* info = curl_easy_option_by_id(option);
  const std::string name =
      info != nullptr && info->name != nullptr
          ? absl::StrCat("CURLOPT_", info->name)
          : absl::StrCat("option ", static_cast<int>(option));
  absl::Status status =
      CurlCodeToStatus(code, absl::StrCat("curl_easy_setopt(", name, ")"));
  // Whatever the code, a rejected option is a local bug or an unsupported
  // build, not the peer.
  if (status.code() != absl::StatusCode::kResourceExhausted) {
    status = absl::InternalError(status.message());
  }
  return status;
}

absl::Status CurlMultiCodeToStatus(CURLMcode code, absl::string_view context) {
  if (code == CURLM_OK) return absl::OkStatus();
  const std::string message =
      absl::StrCat(context, ": ", curl_multi_strerror(code),
                   " (curl multi error ", static_cast<int>(code), ")");
  if (code == CURLM_OUT_OF_MEMORY) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

absl::Status CurlShareCodeToStatus(CURLSHcode code, absl::string_view context) {
  if (code == CURLSHE_OK) return absl::OkStatus();
  const std::string message =
      absl::StrCat(context, ": ", curl_share_strerror(code),
                   " (curl share error ", static_cast<int>(code), ")");
  if (code == CURLSHE_NOMEM) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

}  // namespace clink_gateway::http
