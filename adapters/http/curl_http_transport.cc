#include "adapters/http/curl_http_transport.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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
#include "adapters/http/curl_wrappers.h"
#include "adapters/http/egress_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "common/logging.h"
#include "common/secret.h"
#include "common/status_macros.h"
#include "common/sync.h"

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

namespace {

// The loop wakes up at least this often even with nothing to do
// (curl_multi_poll also returns early for curl's own timers, for
// curl_multi_wakeup(), and when the earliest delayed call is due).
constexpr int kPollTimeoutMs = 1000;

// CURLOPT_PREREQFUNCTION and CURLOPT_PROTOCOLS_STR.
constexpr unsigned int kMinCurlVersion = 0x075500;  // 7.85.0

// TCP keepalive probes on idle pooled connections, so dead peers and NAT
// timeouts are noticed.
constexpr long kTcpKeepIdleSeconds = 30;  // NOLINT(runtime/int): curl's type
constexpr long kTcpKeepIntervalSeconds = 15;  // NOLINT(runtime/int)

// Idle pooled connections older than this are not reused. Kept under the 60 s
// idle timeout common in load balancers, so a request is rarely written into a
// connection the server is closing at that moment (curl retries such a request
// on a new connection, which is only safe if the server never processed it).
constexpr long kMaxIdleConnectionAgeSeconds = 50;  // NOLINT(runtime/int)

// A timeout this much before the call's own timeout is the connect timeout.
constexpr absl::Duration kConnectTimeoutSlack = absl::Milliseconds(5);

// Set on the loop thread while it runs Loop(), so Shutdown() can tell it is
// being called from a `done` callback (and must not join itself).
thread_local const void* tls_running_loop = nullptr;

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
  const size_t need = address->family == AF_INET6 ? sizeof(sockaddr_in6)
                                                  : sizeof(sockaddr_in);
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

bool HasHeader(const HeaderList& headers, absl::string_view name) {
  return std::any_of(headers.begin(), headers.end(), [name](const auto& h) {
    return absl::EqualsIgnoreCase(h.first, name);
  });
}

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
    return absl::InvalidArgumentError(absl::StrCat(
        "proxy (--egress_proxy) must be http://host:port or "
        "https://host:port, got \"",
        absl::CHexEscape(text.substr(0, 200)), "\""));
  }
  return absl::AsciiStrToLower(*host);
}

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
        flag, " points at ", DescribeAddressClass(decision.reason), " (",
        host, "), which the egress policy denies; pass --egress_allow_cidrs=",
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

HttpResult Failure(absl::Status status, Delivery delivery,
                   FailureKind failure) {
  HttpResult result;
  result.status = std::move(status);
  result.delivery = delivery;
  result.failure = failure;
  return result;
}

// For a call that never reached curl because the transport is shutting down.
HttpResult ShutdownFailure(absl::string_view context) {
  return Failure(absl::UnavailableError(
                     absl::StrCat(context, ": HTTP transport shut down")),
                 Delivery::kNotSent, FailureKind::kShutdown);
}

}  // namespace

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
  Transfer transfer;
  // curl's whole-call timeout (CURLOPT_TIMEOUT_MS); a timeout well before it
  // was the connect timeout.
  absl::Duration timeout = absl::InfiniteDuration();
};

absl::StatusOr<std::unique_ptr<CurlHttpTransport>> CurlHttpTransport::Create(
    Options options) {
  GATEWAY_RETURN_IF_ERROR(ValidateOptions(options));
  std::string host;
  GATEWAY_ASSIGN_OR_RETURN(
      std::string base_url,
      NormalizeBaseUrl(options.base_url, options.allow_plaintext, &host));
  std::string protocols = options.allow_plaintext ? "http,https" : "https";

  // The egress policy: the base URL's host is always allowed.
  EgressPolicyOptions egress = options.egress;
  for (std::string& allowed : egress.allowed_hosts) {
    allowed = absl::AsciiStrToLower(allowed);
  }
  if (std::find(egress.allowed_hosts.begin(), egress.allowed_hosts.end(),
                host) == egress.allowed_hosts.end()) {
    egress.allowed_hosts.push_back(host);
  }
  EgressPolicy policy(std::move(egress));
  GATEWAY_RETURN_IF_ERROR(CheckHostAtCreate(policy, host, "base_url",
                                            "--clink_base_url",
                                            options.egress_observer));
  if (!options.proxy.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(const std::string proxy_host,
                             ProxyHost(options.proxy));
    GATEWAY_RETURN_IF_ERROR(CheckHostAtCreate(policy, proxy_host, "proxy",
                                              "--egress_proxy",
                                              options.egress_observer));
  }

  CurlSharePtr share = MakeCurlShare();
  CurlMultiPtr multi = MakeCurlMulti();
  if (share == nullptr || multi == nullptr) {
    return absl::InternalError("could not create curl multi/share handles");
  }
  // Used only by handles driven from the loop thread, so the share needs no
  // lock callbacks.
  GATEWAY_RETURN_IF_ERROR(CurlShareCodeToStatus(
      curl_share_setopt(share.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS),
      "share DNS"));
  GATEWAY_RETURN_IF_ERROR(
      CurlShareCodeToStatus(curl_share_setopt(share.get(), CURLSHOPT_SHARE,
                                              CURL_LOCK_DATA_SSL_SESSION),
                            "share TLS sessions"));
  const long max_connections =
      options.max_connections;  // NOLINT(runtime/int): curl's type
  GATEWAY_RETURN_IF_ERROR(CurlMultiCodeToStatus(
      curl_multi_setopt(multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS,
                        max_connections),
      "CURLMOPT_MAX_HOST_CONNECTIONS"));
  GATEWAY_RETURN_IF_ERROR(CurlMultiCodeToStatus(
      curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS, max_connections),
      "CURLMOPT_MAXCONNECTS"));

  std::unique_ptr<CurlHttpTransport> transport(new CurlHttpTransport(
      std::move(options), std::move(base_url), std::move(protocols),
      std::move(policy), std::move(multi), std::move(share)));
  {
    CurlHttpTransport* self = transport.get();
    MutexLock lock(&self->thread_mu_);
    self->thread_ = std::thread([self] { self->Loop(); });
  }
  return transport;
}

CurlHttpTransport::CurlHttpTransport(Options options, std::string base_url,
                                     std::string protocols, EgressPolicy policy,
                                     CurlMultiPtr multi, CurlSharePtr share)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
      base_url_(std::move(base_url)),
      protocols_(std::move(protocols)),
      policy_(std::move(policy)),
      sockets_(std::make_unique<CurlSocketTable>()),
      share_(std::move(share)),
      multi_(std::move(multi)) {}

CurlHttpTransport::~CurlHttpTransport() {
  if (tls_running_loop == this) {
    // From a `done` callback: the loop would keep using the destroyed object.
    std::fputs("CurlHttpTransport destroyed from its own callback\n", stderr);
    std::abort();
  }
  Shutdown();
}

void CurlHttpTransport::Send(HttpRequest request, SendOptions options,
                             DoneCallback done) {
  if (absl::Status status = ValidateRequest(request, options); !status.ok()) {
    std::move(done)(Failure(
        absl::Status(status.code(), absl::StrCat(CallContext(request), ": ",
                                                 status.message())),
        Delivery::kNotSent, FailureKind::kInvalidRequest));
    return;
  }
  auto call = std::make_unique<Call>();
  call->context = CallContext(request);
  call->url = absl::StrCat(base_url_, request.path_and_query);
  call->request = std::move(request);
  call->options = std::move(options);
  call->done = std::move(done);
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      pending_.push_back(std::move(call));
      ++stats_.in_flight;
    }
  }
  if (call != nullptr) {  // not queued: shutting down
    std::move(call->done)(
        Failure(absl::UnavailableError(absl::StrCat(
                    call->context, ": HTTP transport is shut down")),
                Delivery::kNotSent, FailureKind::kShutdown));
    return;
  }
  (void)curl_multi_wakeup(multi_.get());
}

void CurlHttpTransport::Shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  (void)curl_multi_wakeup(multi_.get());
  if (tls_running_loop == this) {
    return;  // from a `done` callback: the loop exits after it returns
  }
  MutexLock lock(&thread_mu_);
  if (thread_.joinable()) thread_.join();
}

CurlHttpTransport::Stats CurlHttpTransport::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void CurlHttpTransport::Loop() {
  tls_running_loop = this;
  for (;;) {
    std::vector<std::unique_ptr<Call>> batch;
    bool stopping = false;
    {
      MutexLock lock(&mu_);
      batch.swap(pending_);
      stopping = stopping_;
    }
    if (stopping) {
      // Nothing can be queued after this: Send() sees stopping_ under the same
      // lock.
      for (auto& call : batch) {
        HttpResult result = ShutdownFailure(call->context);
        Complete(std::move(call), std::move(result), /*keep_handle=*/false);
      }
      FailDelayed();
      AbortActive(absl::UnavailableError("HTTP transport shut down"),
                  FailureKind::kShutdown);
      break;
    }
    for (auto& call : batch) Dispatch(std::move(call));
    StartDueCalls();

    int running = 0;
    if (CURLMcode rc = curl_multi_perform(multi_.get(), &running);
        rc != CURLM_OK) {
      AbortActive(CurlMultiCodeToStatus(rc, "curl_multi_perform"),
                  FailureKind::kOther);
    }
    DrainFinished();
    AbortCancelled();
    if (CURLMcode rc =
            curl_multi_poll(multi_.get(), nullptr, 0, PollTimeoutMs(), nullptr);
        rc != CURLM_OK) {
      AbortActive(CurlMultiCodeToStatus(rc, "curl_multi_poll"),
                  FailureKind::kOther);
    }
  }
  tls_running_loop = nullptr;
}

void CurlHttpTransport::Dispatch(std::unique_ptr<Call> call) {
  const absl::Time not_before = call->options.not_before;
  if (not_before <= clock_.Now()) {
    StartCall(std::move(call));
    return;
  }
  if (not_before >= call->options.deadline) {
    // It could only start once its deadline has passed: fail it now rather
    // than hold it until then.
    std::string message = absl::StrCat(
        call->context,
        ": deadline is not after not_before; the request was not sent");
    Complete(std::move(call),
             Failure(absl::DeadlineExceededError(message), Delivery::kNotSent,
                     FailureKind::kDeadline),
             /*keep_handle=*/false);
    return;
  }
  delayed_.emplace(not_before, std::move(call));
  UpdateWaitingStat();
}

void CurlHttpTransport::StartDueCalls() {
  if (delayed_.empty()) return;
  const absl::Time now = clock_.Now();
  std::vector<std::unique_ptr<Call>> due;
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    due.push_back(std::move(delayed_.begin()->second));
    delayed_.erase(delayed_.begin());
  }
  if (due.empty()) return;
  UpdateWaitingStat();
  // StartCall() fails a call whose deadline passed while it waited.
  for (auto& call : due) StartCall(std::move(call));
}

void CurlHttpTransport::FailDelayed() {
  std::multimap<absl::Time, std::unique_ptr<Call>> delayed;
  delayed.swap(delayed_);
  UpdateWaitingStat();
  for (auto& [not_before, call] : delayed) {
    HttpResult result = ShutdownFailure(call->context);
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
}

void CurlHttpTransport::UpdateWaitingStat() {
  const auto waiting = static_cast<int64_t>(delayed_.size());
  MutexLock lock(&mu_);
  stats_.waiting = waiting;
}

int CurlHttpTransport::PollTimeoutMs() const {
  if (delayed_.empty()) return kPollTimeoutMs;
  const absl::Duration until_due = delayed_.begin()->first - clock_.Now();
  if (until_due <= absl::ZeroDuration()) return 0;
  // Rounded up: waking early would only go round the loop once more for
  // nothing.
  const int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(until_due, absl::Milliseconds(1)));
  return static_cast<int>(std::clamp<int64_t>(ms, 1, kPollTimeoutMs));
}

void CurlHttpTransport::StartCall(std::unique_ptr<Call> call) {
  const absl::Time now = clock_.Now();
  if (now >= call->options.deadline) {
    std::string message = absl::StrCat(
        call->context, ": deadline passed before the request was sent");
    Complete(std::move(call),
             Failure(absl::DeadlineExceededError(message), Delivery::kNotSent,
                     FailureKind::kDeadline),
             /*keep_handle=*/false);
    return;
  }
  const RequestSigner* signer = call->options.signer != nullptr
                                    ? call->options.signer
                                    : options_.signer;
  if (absl::Status status =
          signer != nullptr
              ? signer->Sign(call->request)
              : absl::FailedPreconditionError("no signer for this call");
      !status.ok()) {
    absl::Status failure(
        status.code(),
        absl::StrCat(call->context, ": signing failed: ", status.message()));
    Complete(std::move(call),
             Failure(std::move(failure), Delivery::kNotSent,
                     FailureKind::kInvalidRequest),
             /*keep_handle=*/false);
    return;
  }
  bool stopping = false;
  {
    MutexLock lock(&mu_);
    stopping = stopping_;
  }
  if (stopping) {
    HttpResult result = ShutdownFailure(call->context);
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
    return;
  }

  call->easy = AcquireHandle();
  absl::Status status =
      call->easy == nullptr
          ? absl::ResourceExhaustedError("curl_easy_init failed")
          : ConfigureHandle(*call, now);
  if (status.ok()) {
    status = CurlMultiCodeToStatus(
        curl_multi_add_handle(multi_.get(), call->easy.get()),
        "curl_multi_add_handle");
  }
  if (!status.ok()) {
    absl::Status failure(status.code(),
                         absl::StrCat(call->context, ": ", status.message()));
    Complete(
        std::move(call),
        Failure(std::move(failure), Delivery::kNotSent, FailureKind::kOther),
        /*keep_handle=*/false);
    return;
  }
  CURL* easy = call->easy.get();
  active_.emplace(easy, std::move(call));
  MutexLock lock(&mu_);
  ++stats_.requests_started;
}

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
    GATEWAY_RETURN_IF_ERROR(
        SetCurlOption(h, CURLOPT_PROXY_SSL_VERIFYPEER, 1L));
    GATEWAY_RETURN_IF_ERROR(
        SetCurlOption(h, CURLOPT_PROXY_SSL_VERIFYHOST, 2L));
    if (!options_.ca_bundle_path.empty()) {
      GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_PROXY_CAINFO,
                                            options_.ca_bundle_path.c_str()));
    }
  }
  if (!options_.source_address.empty()) {
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(h, CURLOPT_INTERFACE,
                                          options_.source_address.c_str()));
  }
  if (!options_.pinned_public_key.empty()) {
    GATEWAY_RETURN_IF_ERROR(SetCurlOption(
        h, CURLOPT_PINNEDPUBLICKEY, options_.pinned_public_key.c_str()));
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

void CurlHttpTransport::DrainFinished() {
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    const CURLcode code =
        msg->data.result;  // read before removing: msg dies with the handle
    auto it = active_.find(easy);
    if (it == active_.end()) continue;
    std::unique_ptr<Call> call = std::move(it->second);
    active_.erase(it);
    (void)curl_multi_remove_handle(multi_.get(), easy);
    FinishTransfer(std::move(call), code);
  }
}

CurlHttpTransport::TransferCounts CurlHttpTransport::RecordTransferStats(
    const Call& call) {
  long connects = 0;  // NOLINT(runtime/int): curl's type
  if (curl_easy_getinfo(call.easy.get(), CURLINFO_NUM_CONNECTS, &connects) !=
          CURLE_OK ||
      connects < 0) {
    connects = 0;
  }
  const Transfer& transfer = call.transfer;
  {
    MutexLock lock(&mu_);
    stats_.connections_opened += connects;
    stats_.stale_connection_retries += transfer.stale_connection_retries;
    stats_.idempotent_resends += transfer.idempotent_resends;
    if (transfer.resend_blocked) ++stats_.resends_refused;
  }
  return {static_cast<int>(connects),
          static_cast<int64_t>(transfer.received_bytes)};
}

void CurlHttpTransport::FinishTransfer(std::unique_ptr<Call> call,
                                       CURLcode code) {
  CURL* easy = call->easy.get();
  if (code == CURLE_ABORTED_BY_CALLBACK && call->transfer.stale_connection &&
      !call->transfer.fresh_connection && RestartOnFreshConnection(*call)) {
    active_.emplace(easy, std::move(call));
    return;
  }
  const TransferCounts counts = RecordTransferStats(*call);
  Transfer& transfer = call->transfer;
  if (code == CURLE_OK) {
    long status_code = 0;  // NOLINT(runtime/int): curl's type
    (void)curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status_code);
    HttpResult result;
    result.status = absl::OkStatus();
    result.delivery = Delivery::kReceived;
    result.response = std::move(transfer.response);
    result.response.status_code = static_cast<int>(status_code);
    result.connections_opened = counts.connections_opened;
    result.response_bytes = counts.response_bytes;
    Complete(std::move(call), std::move(result), /*keep_handle=*/true);
    return;
  }
  const Delivery delivery =
      transfer.request_started ? Delivery::kUnknown : Delivery::kNotSent;
  absl::Status status;
  FailureKind failure = FailureKind::kOther;
  std::string egress_reason;
  if (transfer.stale_connection) {
    // No time left to run it on a new connection (or that failed to start).
    status = absl::UnavailableError(absl::StrCat(
        call->context,
        ": the pooled connection was closed by the server; not sent"));
    failure = FailureKind::kConnect;
  } else if (transfer.resend_blocked) {
    status = absl::UnavailableError(absl::StrCat(
        call->context,
        ": connection lost after the request was sent; not resent"));
    failure = FailureKind::kConnectionLost;
  } else if (transfer.egress_denied && (code == CURLE_COULDNT_CONNECT ||
                                         code == CURLE_ABORTED_BY_CALLBACK)) {
    // Every address was refused (or the pooled connection's peer was).
    status = absl::PermissionDeniedError(absl::StrCat(
        call->context, ": egress denied: ", transfer.egress_address, " is ",
        DescribeAddressClass(transfer.egress_reason)));
    failure = FailureKind::kEgressDenied;
    egress_reason = std::string(AddressClassName(transfer.egress_reason));
  } else if (code == CURLE_INTERFACE_FAILED) {
    status = absl::UnavailableError(absl::StrCat(
        call->context, ": cannot bind the source address \"",
        options_.source_address, "\" (--egress_source_address); not sent: ",
        transfer.error_buffer));
  } else if (code == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
    status = absl::UnavailableError(absl::StrCat(
        call->context,
        ": the server's TLS public key does not match the pinned key "
        "(--clink_pinned_public_key); not sent"));
  } else if (transfer.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    status = absl::InternalError(
        absl::StrCat(call->context, ": response larger than ",
                     options_.max_response_bytes, " bytes"));
    failure = FailureKind::kResponseTooLarge;
  } else {
    status = CurlCodeToStatus(code, call->context, transfer.error_buffer);
    failure = CurlCodeToFailureKind(code, transfer.request_started);
    // The connect timeout fired with time left before the call's own timeout
    // (e.g. a blackholed address): a connect failure, nothing sent, worth
    // another attempt if the deadline still has room.
    curl_off_t elapsed_us = 0;
    if (code == CURLE_OPERATION_TIMEDOUT && !transfer.request_started &&
        curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &elapsed_us) ==
            CURLE_OK &&
        absl::Microseconds(elapsed_us) + kConnectTimeoutSlack <
            call->timeout) {
      failure = FailureKind::kConnect;
      status = absl::UnavailableError(
          absl::StrCat(call->context, ": connecting timed out after ",
                       absl::FormatDuration(options_.connect_timeout)));
    }
  }
  HttpResult result = Failure(std::move(status), delivery, failure);
  result.connections_opened = counts.connections_opened;
  result.response_bytes = counts.response_bytes;
  result.egress_reason = std::move(egress_reason);
  Complete(std::move(call), std::move(result), /*keep_handle=*/false);
}

namespace {

bool IsCancelled(const SendOptions& options) {
  return options.cancelled != nullptr && options.cancelled->HasBeenNotified();
}

absl::Status CancelledFailure(absl::string_view context) {
  return absl::CancelledError(
      absl::StrCat(context, ": the caller cancelled; the call was aborted"));
}

}  // namespace

void CurlHttpTransport::AbortCancelled() {
  bool waiting_changed = false;
  for (auto it = delayed_.begin(); it != delayed_.end();) {
    if (!IsCancelled(it->second->options)) {
      ++it;
      continue;
    }
    std::unique_ptr<Call> call = std::move(it->second);
    it = delayed_.erase(it);
    waiting_changed = true;
    HttpResult result = Failure(CancelledFailure(call->context),
                                Delivery::kNotSent, FailureKind::kOther);
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
  if (waiting_changed) UpdateWaitingStat();
  for (auto it = active_.begin(); it != active_.end();) {
    if (!IsCancelled(it->second->options)) {
      ++it;
      continue;
    }
    CURL* easy = it->first;
    std::unique_ptr<Call> call = std::move(it->second);
    it = active_.erase(it);
    (void)curl_multi_remove_handle(multi_.get(), easy);
    const TransferCounts counts = RecordTransferStats(*call);
    HttpResult result =
        Failure(CancelledFailure(call->context),
                call->transfer.request_started ? Delivery::kUnknown
                                               : Delivery::kNotSent,
                FailureKind::kOther);
    result.connections_opened = counts.connections_opened;
    result.response_bytes = counts.response_bytes;
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
}

bool CurlHttpTransport::RestartOnFreshConnection(Call& call) {
  CURL* easy = call.easy.get();
  curl_off_t elapsed_us = 0;
  if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &elapsed_us) != CURLE_OK) {
    elapsed_us = 0;
  }
  const absl::Duration left =
      std::min(call.options.deadline - clock_.Now(),
               call.timeout - absl::Microseconds(elapsed_us));
  if (left <= absl::ZeroDuration()) return false;
  call.timeout = left;
  if (SetCurlOption(easy, CURLOPT_FRESH_CONNECT, 1L).ok() &&
      SetCurlOption(easy, CURLOPT_TIMEOUT_MS, ToCurlMillis(left)).ok() &&
      SetCurlOption(easy, CURLOPT_CONNECTTIMEOUT_MS,
                    ToCurlMillis(std::min(options_.connect_timeout, left)))
          .ok()) {
    Transfer& transfer = call.transfer;
    transfer.stale_connection = false;
    transfer.fresh_connection = true;
    ++transfer.stale_connection_retries;
    transfer.error_buffer[0] = '\0';
    if (curl_multi_add_handle(multi_.get(), easy) == CURLM_OK) return true;
    transfer.stale_connection = true;
  }
  return false;
}

void CurlHttpTransport::AbortActive(const absl::Status& status,
                                    FailureKind kind) {
  std::unordered_map<CURL*, std::unique_ptr<Call>> active;
  active.swap(active_);
  for (auto& [easy, call] : active) {
    (void)curl_multi_remove_handle(multi_.get(), easy);
    const TransferCounts counts = RecordTransferStats(*call);
    const Delivery delivery = call->transfer.request_started
                                  ? Delivery::kUnknown
                                  : Delivery::kNotSent;
    absl::Status failure(status.code(),
                         absl::StrCat(call->context, ": ", status.message()));
    HttpResult result = Failure(std::move(failure), delivery, kind);
    result.connections_opened = counts.connections_opened;
    result.response_bytes = counts.response_bytes;
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
}

CurlEasyPtr CurlHttpTransport::AcquireHandle() {
  if (free_handles_.empty()) return MakeCurlEasy();
  CurlEasyPtr easy = std::move(free_handles_.back());
  free_handles_.pop_back();
  return easy;
}

void CurlHttpTransport::Complete(std::unique_ptr<Call> call, HttpResult result,
                                 bool keep_handle) {
  CurlEasyPtr easy = std::move(call->easy);
  DoneCallback done = std::move(call->done);
  call.reset();  // the handle is out of multi_, so its header list and buffers
                 // can go
  if (easy != nullptr && keep_handle &&
      free_handles_.size() < static_cast<size_t>(options_.max_connections)) {
    // Clear every option (including pointers into the dead Call) before the
    // handle is reused; the connection itself stays in multi_'s cache.
    curl_easy_reset(easy.get());
    free_handles_.push_back(std::move(easy));
  }
  easy.reset();
  {
    MutexLock lock(&mu_);
    --stats_.in_flight;
  }
  std::move(done)(std::move(result));
}

}  // namespace clink_gateway::http
