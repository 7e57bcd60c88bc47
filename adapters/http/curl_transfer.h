#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_CURL_TRANSFER_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_CURL_TRANSFER_H_

// Internal to //adapters/http:curl_http_transport (not a public interface):
// the per-transfer state libcurl's callbacks write into, the response writers,
// and the egress socket hooks (open/close socket, the socket table, and the
// egress and stale-connection checks before a request is written). Every
// callback runs on the transport's loop thread.

#include <curl/curl.h>
#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/string_view.h"
#include "adapters/http/egress_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"

namespace clink_gateway::http {

// The sockets libcurl opened through CurlOpenSocket and has not closed
// (CurlCloseSocket), each with whether a request was already written on it.
// Loop thread only (and the destructor, once the loop has stopped).
struct CurlSocketTable {
  struct Socket {
    bool used = false;   // a request was written on it
    int local_port = 0;  // once known (bound), so a lookup skips the others
  };
  std::unordered_map<curl_socket_t, Socket> sockets;
};

namespace curl_internal {

// Per-transfer state the libcurl callbacks write into (they get a pointer to it
// as userdata).
struct Transfer {
  CURL* easy = nullptr;  // the handle running this transfer
  size_t max_bytes = 0;
  size_t received_bytes = 0;  // headers + body
  bool too_large = false;
  bool request_started =
      false;  // CURLOPT_PREREQFUNCTION ran: the request may have been sent
  // The request may be written more than once (HttpRequest::idempotent).
  bool resend_allowed = false;
  // libcurl tried to send the request a second time and was stopped.
  bool resend_blocked = false;
  // Re-sends libcurl was allowed to make (see CurlPrereq), by reason, plus
  // calls moved to a new connection by the check before reuse.
  int stale_connection_retries = 0;
  // The sockets libcurl has open (the transport's).
  CurlSocketTable* sockets = nullptr;
  // CurlPrereq found the pooled connection closed by the server and stopped
  // the request before any byte of it was written.
  bool stale_connection = false;
  // This transfer runs on a new connection after stale_connection (at most
  // once per call).
  bool fresh_connection = false;
  int idempotent_resends = 0;
  HttpResponse response;
  char error_buffer[CURL_ERROR_SIZE] = {};

  // Egress: the transport's policy and observer (may be null).
  const EgressPolicy* policy = nullptr;
  EgressObserver* observer = nullptr;
  // The policy refused an address for this transfer (the first one is kept
  // for the error message).
  bool egress_denied = false;
  AddressClass egress_reason = AddressClass::kNone;
  std::string egress_address;
  // Addresses already logged and reported in this transfer (a new connection
  // is checked when it opens and again before the request is written).
  std::vector<std::string> egress_reported;

  // Applies the egress policy to `address` (the peer of a connection about to
  // be opened, or of a pooled one: `where`). False when it is refused. Logs
  // and reports a refusal, or a report-only "would deny", once per address.
  bool CheckEgress(const sockaddr* address, absl::string_view where);

  // Counts `n` more response bytes; false once the cap is exceeded.
  bool Account(size_t n) {
    if (too_large || n > max_bytes - received_bytes) {
      too_large = true;
      return false;
    }
    received_bytes += n;
    return true;
  }
};

// CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION; `userdata` is the Transfer.
// They return CURL_WRITEFUNC_ERROR once Transfer::max_bytes is exceeded.
extern "C" size_t CurlWriteBody(char* data, size_t size, size_t count,
                                void* userdata);
extern "C" size_t CurlWriteHeader(char* data, size_t size, size_t count,
                                  void* userdata);

// CURLOPT_OPENSOCKETFUNCTION (`userdata`: the Transfer) and
// CURLOPT_CLOSESOCKETFUNCTION (`userdata`: the transport's CurlSocketTable).
extern "C" curl_socket_t CurlOpenSocket(void* userdata, curlsocktype purpose,
                                        curl_sockaddr* address);
extern "C" int CurlCloseSocket(void* userdata, curl_socket_t fd);

// CURLOPT_PREREQFUNCTION (`userdata`: the Transfer): the egress check of the
// connection's peer, the stale-connection check, and the no-resend rule.
// Returns CURL_PREREQFUNC_OK or CURL_PREREQFUNC_ABORT.
extern "C" int CurlPrereq(void* userdata, char* primary_ip, char* local_ip,
                          int primary_port, int local_port);

// "a loopback address", ...: what an error message says about a refused
// address of class `c`.
absl::string_view DescribeAddressClass(AddressClass c);

}  // namespace curl_internal
}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_CURL_TRANSFER_H_
