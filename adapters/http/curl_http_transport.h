// HttpTransport over libcurl's multi interface: one network thread, no blocking
// in Send().
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_CURL_HTTP_TRANSPORT_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_CURL_HTTP_TRANSPORT_H_

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/http/curl_wrappers.h"
#include "adapters/http/egress_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_transport.h"
#include "adapters/http/http_types.h"
#include "adapters/http/request_signer.h"
#include "common/clock.h"
#include "common/sync.h"

namespace clink_gateway::http {

// Sends every call to one fixed origin through a single libcurl multi handle
// driven by one thread (the "loop"). Send() validates and enqueues; the loop
// holds a call until its SendOptions::not_before, signs the request just before
// handing it to curl, runs all transfers, and calls `done` on the loop thread.
//
// Delayed start: a call whose not_before is in the future waits on the loop
// thread (no thread sleeps; the loop's poll timeout shrinks to the earliest
// not_before) and is then started like any other call: the deadline is checked,
// the request signed (so X-Timestamp is the send time) and handed to curl. A
// call whose not_before is not before its deadline can never be sent in time
// and fails at once. Waiting calls count in Stats::in_flight and
// Stats::waiting. Deadlines and not_before are read on Options::clock; with a
// fake clock the loop re-checks waiting calls at least once a second.
//
// Connections stay open in the multi handle's connection cache (at most
// Options::max_connections), easy handles are recycled, and DNS results and TLS
// sessions are shared, so steady-state calls make no new TCP or TLS handshake.
//
// Egress (see egress_policy.h): https only (unless allow_plaintext), TLS 1.2+
// with peer and host verification always on (optionally a pinned public key),
// no redirects, response size capped, and no proxy unless Options::proxy names
// one (proxy environment variables are always ignored). Every transport has an
// EgressPolicy, built from Options::egress; the base URL's host is always on
// its allow-list. The policy is applied:
//   - at Create(): the base URL's host (and the proxy's) must pass CheckHost,
//     so a base URL that is a denied IP literal (127.0.0.1 without an
//     allow_cidrs exemption) fails Create() with kFailedPrecondition;
//   - to every address libcurl is about to connect to
//     (CURLOPT_OPENSOCKETFUNCTION), after DNS: a denied address gets no socket,
//     libcurl tries the next resolved address, and the connection goes to the
//     address that was checked (no second lookup, so DNS rebinding cannot
//     switch it). With a proxy these are the proxy's addresses (the proxy
//     resolves the destination; the destination host check still applies);
//   - to the peer of a pooled connection before a request is written on it
//     (CURLOPT_PREREQFUNCTION).
// A refusal fails the call with kPermissionDenied / kNotSent / kEgressDenied
// (HttpResult::egress_reason names the address class), logs one warning line
// per refused address and reports it to Options::egress_observer. In
// report-only mode (EgressPolicyOptions::report_only) the connection goes
// ahead; the warning line and OnEgressWouldDeny still happen.
//
// Outcomes (HttpResult status, delivery, failure):
//   complete response, any HTTP status:
//       OK, kReceived, kNone
//   deadline passed before sending, or not_before not before the deadline:
//       kDeadlineExceeded, kNotSent, kDeadline
//   DNS / connect / TLS failure, or the connect timeout firing before the
//   call's own timeout:
//       kUnavailable, kNotSent, kConnect
//   the call's timeout before the request was sent (e.g. while connecting or
//   waiting for a pooled connection):
//       kDeadlineExceeded, kNotSent, kDeadline
//   timeout after it:
//       kDeadlineExceeded, kUnknown, kDeadline
//   reset / closed / truncated / no response after it was sent, a refused
//   re-send (below), or a failed connect for libcurl's re-send:
//       kUnavailable, kUnknown, kConnectionLost
//   response over max_response_bytes:
//       kInternal, kUnknown, kResponseTooLarge
//   invalid request (path, header bytes):
//       kInvalidArgument, kNotSent, kInvalidRequest *
//   signer failure:
//       signer's code, kNotSent, kInvalidRequest
//   Send() after Shutdown():
//       kUnavailable, kNotSent, kShutdown *
//   Shutdown() with the call queued or waiting for not_before:
//       kUnavailable, kNotSent, kShutdown
//   Shutdown() with the call being sent:
//       kUnavailable, kUnknown, kShutdown
//   the egress policy refused every address the call could use (see above):
//       kPermissionDenied, kNotSent, kEgressDenied
//   source_address cannot be bound, or the server's key does not match
//   pinned_public_key:
//       kUnavailable, kNotSent, kOther (not retried: configuration)
//   anything else (curl setup, out of memory, malformed response):
//       CurlCodeToStatus's code, kNotSent or kUnknown, kOther
// (* = `done` runs inline, on the caller's thread.)
// "Sent" means libcurl began writing the request on an established (TLS)
// connection (CURLOPT_PREREQFUNCTION). Status messages hold the method, the
// path without its query, and libcurl's error text; never headers, bodies or
// the key.
//
// Pooled connections: before a request is written on a connection that
// already carried one, the transport checks it (one poll(), no wait). It is
// idle, so anything readable (EOF, RST, or bytes such as a TLS close_notify)
// means the server is done with it: the request is not written there, libcurl
// drops the connection, and the call goes out once on a new connection
// (Stats::stale_connection_retries).
//
// Re-sends: libcurl writes a request again on a new connection when a pooled
// connection turns out to be dead. If no byte of the request had been written
// (the server closed or reset the idle connection, so it cannot have seen the
// request), that is allowed for every method (Stats::stale_connection_retries).
// If some may have been written, it is allowed only for an idempotent request
// (Stats::idempotent_resends); otherwise it is refused and the call fails as
// above (Stats::resends_refused), so a non-idempotent request never leaves
// twice.
//
// Thread-safe. curl_global_init() must have been called before Create().
struct CurlSocketTable;  // curl_transfer.h

class CurlHttpTransport final : public HttpTransport {
 public:
  struct Options {
    // Origin plus optional path prefix, e.g.
    // "https://uat-api.clinkbill.com/api". Each request's path_and_query (which
    // must start with '/') is appended. No query, fragment or credentials.
    std::string base_url;
    // Permit an http:// base_url (tests, local emulators). Never in production.
    bool allow_plaintext = false;
    // CA bundle file for verifying the server; empty uses the system default.
    std::string ca_bundle_path;
    // User-Agent header; empty sends none.
    std::string user_agent;
    // Connection pool size: CURLMOPT_MAX_HOST_CONNECTIONS and
    // CURLMOPT_MAXCONNECTS. Calls beyond it wait inside curl for a free
    // connection (their timeout keeps running).
    int max_connections = 32;
    // Upper bound for TCP + TLS connection setup.
    absl::Duration connect_timeout = absl::Seconds(3);
    // Upper bound for a whole call, whatever its deadline.
    absl::Duration max_call_timeout = absl::Seconds(30);
    // Response headers plus body; larger responses fail with kInternal /
    // kUnknown.
    size_t max_response_bytes = 4 << 20;
    // Signs calls whose SendOptions name no signer; null means every call
    // must name one. Must outlive the transport.
    const RequestSigner* signer = nullptr;
    // Used for deadlines and not_before (and nothing else); null means
    // SystemClock(). Must outlive the transport.
    const Clock* clock = nullptr;

    // Where the transport may connect. The base URL's host is always added to
    // egress.allowed_hosts; list more hosts there (e.g. the proxy's).
    // Addresses in egress.allow_cidrs are exempt from the deny list (tests:
    // 127.0.0.0/8 for a local server).
    EgressPolicyOptions egress;
    // Receives every refusal (and report-only "would deny"); null: none. Must
    // outlive the transport.
    EgressObserver* egress_observer = nullptr;
    // An HTTPS CONNECT proxy, "http://host:port" or "https://host:port"
    // (CURLOPT_PROXY + CURLOPT_HTTPPROXYTUNNEL): the request is tunnelled, TLS
    // to Clink runs end to end through it. Its host must be on
    // egress.allowed_hosts, and the addresses checked before connecting are
    // the proxy's. Empty: connect directly (proxy environment variables are
    // ignored either way).
    std::string proxy;
    // Binds outbound connections (CURLOPT_INTERFACE): "if!eth0" (an
    // interface), "host!10.0.0.5" (an address or host name), or a bare
    // interface name or address. When it cannot be bound the connect fails
    // (no other source is used). Empty: the kernel's choice.
    std::string source_address;
    // CURLOPT_PINNEDPUBLICKEY: "sha256//<base64>" entries separated by ';'
    // (base64 of the SHA-256 of the server's DER SubjectPublicKeyInfo). The
    // connection is refused when the server's key matches none. Empty: no
    // pinning (the chain and host name are verified either way).
    std::string pinned_public_key;
    // TEST ONLY (no flag sets it): called on the loop thread before each
    // transfer; its entries go to CURLOPT_RESOLVE ("host:port:addr[,addr]"),
    // as if DNS had answered them (they replace earlier answers for the same
    // host:port in the shared DNS cache). The egress checks apply to these
    // addresses like to any DNS answer. Null: real DNS only.
    std::function<std::vector<std::string>()> resolve_overrides;
  };

  struct Stats {
    // Handed to curl (signed, not failed before sending).
    int64_t requests_started = 0;
    // Sum of CURLINFO_NUM_CONNECTS over finished calls.
    int64_t connections_opened = 0;
    // Accepted by Send() and `done` not yet run (including waiting calls).
    int64_t in_flight = 0;
    // Held until their not_before (part of in_flight).
    int64_t waiting = 0;
    // Re-sent on a new connection because a pooled connection was found
    // closed by the server before any byte of the request was written (any
    // method): by the transport's own check before reuse, or by libcurl after
    // a write that failed at once.
    int64_t stale_connection_retries = 0;
    // Re-sent by libcurl after a pooled connection failed when the request
    // may have been written (idempotent requests only).
    int64_t idempotent_resends = 0;
    // Re-sends refused because a non-idempotent request may have been
    // written (each such call failed with kUnknown / kConnectionLost).
    int64_t resends_refused = 0;
  };

  // Validates `options` (kInvalidArgument; kFailedPrecondition when the egress
  // policy denies the base URL's or the proxy's host), sets up curl
  // (kInternal) and starts the loop thread.
  static absl::StatusOr<std::unique_ptr<CurlHttpTransport>> Create(
      Options options);

  CurlHttpTransport(const CurlHttpTransport&) = delete;
  CurlHttpTransport& operator=(const CurlHttpTransport&) = delete;

  // Calls Shutdown(). Must not run on the loop thread (i.e. not from a `done`
  // callback).
  ~CurlHttpTransport() override;

  // See HttpTransport. `done` runs on the loop thread, or inline for the
  // failures marked * above.
  void Send(HttpRequest request, SendOptions options,
            DoneCallback done) override ABSL_LOCKS_EXCLUDED(mu_);

  // Stops accepting calls, completes every queued, waiting and in-flight call
  // with kUnavailable / FailureKind::kShutdown, and joins the loop thread.
  // Idempotent and safe to call from several threads. Called from a `done`
  // callback it only initiates shutdown (the destructor joins).
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_, thread_mu_);

  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Call;

  CurlHttpTransport(Options options, std::string base_url,
                    std::string protocols, EgressPolicy policy,
                    CurlMultiPtr multi, CurlSharePtr share);

  // Everything below marked "loop thread" is touched only by Loop() and what it
  // calls (and by the constructor/destructor, when the loop is not running), so
  // it needs no lock.
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Starts `call`, holds it in delayed_ until its not_before, or fails it when
  // it could only start after its deadline.
  void Dispatch(std::unique_ptr<Call> call) ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the delayed calls whose not_before has come.
  void StartDueCalls() ABSL_LOCKS_EXCLUDED(mu_);
  // Fails every delayed call (shutdown).
  void FailDelayed() ABSL_LOCKS_EXCLUDED(mu_);
  void UpdateWaitingStat() ABSL_LOCKS_EXCLUDED(mu_);
  // How long curl_multi_poll may wait: until the earliest not_before, at most
  // kPollTimeoutMs.
  int PollTimeoutMs() const;
  void StartCall(std::unique_ptr<Call> call) ABSL_LOCKS_EXCLUDED(mu_);
  [[nodiscard]] absl::Status ConfigureHandle(Call& call, absl::Time now);
  void DrainFinished() ABSL_LOCKS_EXCLUDED(mu_);
  void FinishTransfer(std::unique_ptr<Call> call, CURLcode code)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Adds `call` back to multi_ on a new connection (CURLOPT_FRESH_CONNECT)
  // after CurlPrereq found its pooled connection closed by the server; false
  // when there is no time left or curl refuses (the call then fails, not sent).
  bool RestartOnFreshConnection(Call& call) ABSL_LOCKS_EXCLUDED(mu_);
  // What one finished transfer used, for its HttpResult.
  struct TransferCounts {
    int connections_opened = 0;
    int64_t response_bytes = 0;
  };
  // Adds a finished transfer's connection and re-send counts to stats_, and
  // returns its own.
  TransferCounts RecordTransferStats(const Call& call)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Fails every call (delayed or transferring) whose SendOptions::cancelled
  // is set.
  void AbortCancelled() ABSL_LOCKS_EXCLUDED(mu_);
  // Removes every transfer from curl and fails it with `status` and `kind`.
  void AbortActive(const absl::Status& status, FailureKind kind)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `done` (without holding mu_) and recycles the call's easy handle if
  // `keep_handle`.
  void Complete(std::unique_ptr<Call> call, HttpResult result, bool keep_handle)
      ABSL_LOCKS_EXCLUDED(mu_);
  CurlEasyPtr AcquireHandle();

  const Options options_;
  const Clock& clock_;
  const std::string base_url_;   // without a trailing '/'
  const std::string protocols_;  // "https" or "http,https"
  const EgressPolicy policy_;

  // curl_multi_wakeup() is the only call made on multi_ from other threads (it
  // is thread-safe); everything else is the loop thread's. Declared before the
  // handles that use them so they are destroyed after them.
  // Loop thread: the sockets libcurl opened (CURLOPT_OPENSOCKETFUNCTION) and
  // has not closed yet, so CurlPrereq can check a pooled connection before
  // reusing it. Declared before multi_: libcurl closes its cached connections
  // through it when multi_ is destroyed.
  std::unique_ptr<CurlSocketTable> sockets_;
  CurlSharePtr
      share_;  // loop thread; DNS + TLS sessions, no lock callbacks needed
  CurlMultiPtr multi_;
  std::vector<CurlEasyPtr> free_handles_;  // loop thread
  std::unordered_map<CURL*, std::unique_ptr<Call>>
      active_;  // loop thread; added to multi_
  // Loop thread: calls waiting for their not_before, earliest first (calls
  // with the same not_before in the order they were sent).
  std::multimap<absl::Time, std::unique_ptr<Call>> delayed_;

  mutable Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Call>> pending_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);

  Mutex thread_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::thread thread_ ABSL_GUARDED_BY(thread_mu_);
};

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_CURL_HTTP_TRANSPORT_H_
