#include "adapters/http/curl_transfer.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "adapters/http/egress_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "common/logging.h"

namespace clink_gateway::http::curl_internal {

extern "C" size_t CurlWriteBody(char* data, size_t size, size_t count,
                                void* userdata) {
  auto* transfer = static_cast<Transfer*>(userdata);
  const size_t n = size * count;
  if (!transfer->Account(n)) return CURL_WRITEFUNC_ERROR;
  transfer->response.body.append(data, n);
  return n;
}

// Called once per header line, including the status line and the blank line
// that ends each header block (there is one block per 1xx interim response,
// then the final one).
extern "C" size_t CurlWriteHeader(char* data, size_t size, size_t count,
                                  void* userdata) {
  auto* transfer = static_cast<Transfer*>(userdata);
  const size_t n = size * count;
  if (!transfer->Account(n)) return CURL_WRITEFUNC_ERROR;
  absl::string_view line(data, n);
  absl::ConsumeSuffix(&line, "\n");
  absl::ConsumeSuffix(&line, "\r");
  HeaderList& headers = transfer->response.headers;
  if (absl::StartsWith(line, "HTTP/")) {
    headers.clear();  // a new response: only the final one's headers are kept
    return n;
  }
  if (line.empty()) return n;
  if (line.front() == ' ' || line.front() == '\t') {  // obsolete line folding
    if (!headers.empty()) {
      absl::StrAppend(&headers.back().second, " ",
                      absl::StripAsciiWhitespace(line));
    }
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos || colon == 0)
    return n;  // not a header; ignore
  headers.emplace_back(
      absl::AsciiStrToLower(line.substr(0, colon)),
      std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  return n;
}

// "a loopback address", ...: what the error message says about a refused
// address.
absl::string_view DescribeAddressClass(AddressClass c) {
  switch (c) {
    case AddressClass::kNone:
      return "a public address";
    case AddressClass::kUnspecified:
      return "an unspecified address";
    case AddressClass::kLoopback:
      return "a loopback address";
    case AddressClass::kPrivate:
      return "a private (RFC 1918) address";
    case AddressClass::kLinkLocal:
      return "a link-local address";
    case AddressClass::kCarrierGradeNat:
      return "a carrier-grade NAT (100.64.0.0/10) address";
    case AddressClass::kMulticast:
      return "a multicast address";
    case AddressClass::kBroadcast:
      return "a broadcast address";
    case AddressClass::kReserved:
      return "a reserved address";
    case AddressClass::kDocumentation:
      return "a documentation address";
    case AddressClass::kUniqueLocal:
      return "a unique local (IPv6) address";
    case AddressClass::kNotAllowedHost:
      return "not on the allow-list";
  }
  return "denied";
}

namespace {

// The text form of an IPv4 / IPv6 socket address ("127.0.0.2", "::1"), or
// "(family N)".
std::string FormatSockaddr(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) != nullptr) {
      return text;
    }
  } else if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)) != nullptr) {
      return text;
    }
  }
  return absl::StrCat("(family ", address->sa_family, ")");
}

// Parses libcurl's primary IP ("127.0.0.1", "::1") into `storage`; false when
// it is neither.
bool ParseIpText(const char* text, sockaddr_storage* storage) {
  *storage = {};
  if (text == nullptr) return false;
  auto* in = reinterpret_cast<sockaddr_in*>(storage);
  if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(storage);
  if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    return true;
  }
  return false;
}

}  // namespace

bool Transfer::CheckEgress(const sockaddr* address, absl::string_view where) {
  const EgressDecision decision = policy->CheckAddress(address);
  if (decision.allowed && !decision.would_deny) return true;
  std::string text = FormatSockaddr(address);
  if (!decision.allowed && !egress_denied) {
    egress_denied = true;
    egress_reason = decision.reason;
    egress_address = text;
  }
  if (std::find(egress_reported.begin(), egress_reported.end(), text) ==
      egress_reported.end()) {
    const absl::string_view reason = AddressClassName(decision.reason);
    if (decision.allowed) {
      Log(LogLevel::kWarning, "egress_would_deny",
          {{"reason", reason},
           {"address", text},
           {"where", where},
           {"report_only", "true"}});
      if (observer != nullptr) observer->OnEgressWouldDeny(decision.reason);
    } else {
      Log(LogLevel::kWarning, "egress_denied",
          {{"reason", reason}, {"address", text}, {"where", where}});
      if (observer != nullptr) observer->OnEgressDenied(decision.reason);
    }
    egress_reported.push_back(std::move(text));
  }
  return decision.allowed;
}

// CURLOPT_OPENSOCKETFUNCTION: every connection libcurl opens (to Clink, or to
// the proxy) starts here, with the address it is about to connect() to. A
// refused address gets no socket: libcurl then tries the next address the name
// resolved to, and fails with CURLE_COULDNT_CONNECT when none is left.
extern "C" curl_socket_t CurlOpenSocket(void* userdata, curlsocktype purpose,
                                        curl_sockaddr* address) {
  auto* transfer = static_cast<Transfer*>(userdata);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  const size_t need =
      address->family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (address->addrlen < need ||
      !transfer->CheckEgress(&address->addr, "connect")) {
    return CURL_SOCKET_BAD;
  }
  const curl_socket_t fd = socket(
      address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd != CURL_SOCKET_BAD) transfer->sockets->sockets[fd] = {};
  return fd;
}

// CURLOPT_CLOSESOCKETFUNCTION: every socket CurlOpenSocket opened is closed
// here (libcurl keeps the callback with the connection, so `userdata` is the
// transport's table, which outlives every connection).
extern "C" int CurlCloseSocket(void* userdata, curl_socket_t fd) {
  static_cast<CurlSocketTable*>(userdata)->sockets.erase(fd);
  return close(fd);
}

namespace {

// The port of an IPv4 / IPv6 socket address, or -1.
int SockaddrPort(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return -1;
}

// The entry of `table` whose socket is connected from local_ip:local_port to
// primary_ip:primary_port (what CURLOPT_PREREQFUNCTION is told about the
// connection it is about to use), or null. libcurl 7.88 has no way to name
// the socket of the transfer's connection at that point (CURLINFO_ACTIVESOCKET
// reads the handle's previous connection), so it is found by its addresses: no
// two connected TCP sockets share all four.
std::unordered_map<curl_socket_t, CurlSocketTable::Socket>::iterator FindSocket(
    CurlSocketTable& table, const char* local_ip, int local_port,
    const char* primary_ip, int primary_port) {
  auto& sockets = table.sockets;
  if (local_ip == nullptr || primary_ip == nullptr) return sockets.end();
  for (auto it = sockets.begin(); it != sockets.end(); ++it) {
    if (it->second.local_port != 0 && it->second.local_port != local_port) {
      continue;
    }
    sockaddr_storage local = {};
    sockaddr_storage peer = {};
    socklen_t local_size = sizeof(local);
    socklen_t peer_size = sizeof(peer);
    if (getsockname(it->first, reinterpret_cast<sockaddr*>(&local),
                    &local_size) != 0) {
      continue;
    }
    it->second.local_port = std::max(SockaddrPort(local), 0);
    if (it->second.local_port != local_port ||
        getpeername(it->first, reinterpret_cast<sockaddr*>(&peer),
                    &peer_size) != 0) {
      continue;
    }
    if (SockaddrPort(peer) == primary_port &&
        FormatSockaddr(reinterpret_cast<const sockaddr*>(&local)) == local_ip &&
        FormatSockaddr(reinterpret_cast<const sockaddr*>(&peer)) ==
            primary_ip) {
      return it;
    }
  }
  return sockets.end();
}

// True when the idle connection on `fd` has anything to read or an error: the
// server closed it (FIN, RST), or sent bytes no request asked for (a TLS
// close_notify before its FIN). libcurl 7.88's own check before reuse
// (ossl_check_cxn: a 1-byte MSG_PEEK) takes a pending close_notify for a live
// connection, writes the request into it, and then finds it closed: the
// request counts as sent and cannot be re-sent.
bool IdleConnectionIsClosing(curl_socket_t fd) {
  pollfd p = {fd, POLLIN | POLLPRI | POLLRDHUP, 0};
  int rc;
  do {
    rc = poll(&p, 1, 0);
  } while (rc < 0 && errno == EINTR);
  return rc != 0;  // readable, hung up, in error, or poll itself failed
}

// What to do when libcurl wants to send a request again (see CurlPrereq).
enum class Resend {
  kNothingWritten,  // allowed: no byte of it ever left, any method
  kIdempotent,      // allowed: it may have left, but a copy is harmless
  kRefuse,          // it may have left and must not leave twice
};

// `bytes_written` is CURLINFO_REQUEST_SIZE when libcurl is about to re-send:
// how many bytes of the request earlier attempts of this transfer wrote to a
// socket (negative when unknown).
Resend DecideResend(long bytes_written,  // NOLINT(runtime/int): curl's type
                    bool idempotent) {
  if (bytes_written == 0) return Resend::kNothingWritten;
  return idempotent ? Resend::kIdempotent : Resend::kRefuse;
}

}  // namespace

// Runs once a connection (including TLS) is ready and just before curl writes
// the request, once per attempt.
//
// libcurl re-sends a request by itself, on a new connection, when a connection
// it took from the pool turns out to be dead: when writing the request fails
// (multi.c, MSTATE_DO: CURLE_SEND_ERROR on a reused connection), or when the
// connection closes before any response byte arrives (MSTATE_PERFORMING:
// Curl_retry_request). A second call here for the same transfer is that
// re-send. In the second case the server may have read, and acted on, the
// first copy; for a non-idempotent request the re-send is refused, so a payment
// never leaves twice. In the first case nothing may have left at all: the
// server closed or reset the pooled connection while it sat idle, and libcurl's
// check before reusing it did not notice (libcurl 7.88 does not, for a
// connection the server reset). Refusing that re-send would fail a payment the
// server never saw, so it is allowed for any method when no byte of the
// request was written.
//
// "No byte written" is CURLINFO_REQUEST_SIZE == 0. In libcurl 7.88 (http.c,
// Curl_buffer_send) that counter only grows by what a successful socket write
// returned; a failed write (EPIPE, ECONNRESET: CURLE_SEND_ERROR) adds nothing.
// It is reset when a transfer starts (Curl_initinfo), not by the re-send
// (Curl_retry_request + Curl_follow(FOLLOW_RETRY) go back to CONNECT), so here
// it holds what every earlier attempt wrote. Request bytes can leave without
// being counted only if the first write of the request is deferred whole
// (EAGAIN, nothing written) and the rest goes out later; that cannot happen on
// a pooled connection, whose send queue is empty (the server answered the
// previous request, so every byte of it was acknowledged) and so takes at
// least part of the first write.
//
// The egress policy is applied here too, to the connection's peer (a pooled
// connection skipped CurlOpenSocket for this transfer): a refused peer aborts
// the transfer before any byte of the request is written.
//
// Before the first attempt of a transfer writes anything on a connection that
// already carried a request, the connection is checked
// (IdleConnectionIsClosing); if the server is done with it, the transfer stops
// here (stale_connection) and FinishTransfer runs the call again, once, on a
// new connection.
extern "C" int CurlPrereq(void* userdata, char* primary_ip, char* local_ip,
                          int primary_port, int local_port) {
  auto* transfer = static_cast<Transfer*>(userdata);
  sockaddr_storage peer;
  if (!ParseIpText(primary_ip, &peer)) {
    // Not an IP address: nothing the policy can vouch for (fail closed,
    // classified as "reserved" like any unknown family).
    peer = {};
    peer.ss_family = AF_UNSPEC;
  }
  if (!transfer->CheckEgress(reinterpret_cast<const sockaddr*>(&peer),
                             "before_request")) {
    return CURL_PREREQFUNC_ABORT;
  }
  if (!transfer->request_started) {
    const auto socket = FindSocket(*transfer->sockets, local_ip, local_port,
                                   primary_ip, primary_port);
    if (socket != transfer->sockets->sockets.end()) {
      if (socket->second.used && !transfer->fresh_connection &&
          IdleConnectionIsClosing(socket->first)) {
        transfer->stale_connection = true;
        return CURL_PREREQFUNC_ABORT;  // nothing written; libcurl closes it
      }
      socket->second.used = true;
    }
    transfer->request_started = true;
    return CURL_PREREQFUNC_OK;
  }
  long written = -1;  // NOLINT(runtime/int): curl's type
  if (curl_easy_getinfo(transfer->easy, CURLINFO_REQUEST_SIZE, &written) !=
      CURLE_OK) {
    written = -1;
  }
  switch (DecideResend(written, transfer->resend_allowed)) {
    case Resend::kNothingWritten:
      ++transfer->stale_connection_retries;
      return CURL_PREREQFUNC_OK;
    case Resend::kIdempotent:
      ++transfer->idempotent_resends;
      return CURL_PREREQFUNC_OK;
    case Resend::kRefuse:
      break;
  }
  transfer->resend_blocked = true;
  return CURL_PREREQFUNC_ABORT;
}

}  // namespace clink_gateway::http::curl_internal
