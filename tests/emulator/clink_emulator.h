// An in-memory fake of Clink's merchant REST API, in the spirit of stripe-mock.
//
// Integration tests start it in-process on 127.0.0.1 port 0 and point the
// gateway at base_url(); the clink_emulator_server binary (main.cc) runs the
// same thing standalone.
//
//   ClinkEmulator::Options options;
//   options.api_keys = {"sk_test_emulator"};
//   options.tls_cert_pem_path = ca.server_pem;            // Or empty for plain
//   HTTP. GATEWAY_ASSIGN_OR_RETURN(auto emulator,
//   ClinkEmulator::Start(options)); Fault fault;                      // The
//   next request gets HTTP 503. fault.kind = Fault::Kind::kHttpError;
//   emulator->SetFault(fault);
//
// What it emulates (clink-api.md): every endpoint under /api listed in
// merchant_api.h, with X-API-KEY + X-Timestamp authentication (HTTP 401 with a
// plain-text body on failure), Clink's envelopes, consistent in-memory state
// and a seeded catalog (ids in merchant_api.h).
//
// Connection faults: civetweb exposes no socket, so kResetConnection finds the
// connection's descriptor by matching its addresses among the process's sockets
// and disconnects it with connect(AF_UNSPEC), which makes Linux send RST while
// civetweb keeps a valid descriptor to close; kDropConnection just returns
// without writing and turns keep-alive off, so civetweb closes the socket (FIN)
// with zero response bytes. Over TLS the frontend passes both on
// (tls_frontend.h). Note that libcurl silently retries a request once when a
// *reused* connection closes before any response byte, so a single-shot
// connection fault on a keep-alive connection can be invisible to a curl client
// (but the request is then received twice).
//
// Test hooks: injected faults, a connection counter and a log of received /api
// requests, in C++ and over admin endpoints that need no API key (for
// out-of-process tests and scripts):
//   POST   /__emulator/faults   body:
//   {"kind":"http_error","count":1,"pathPrefix":"/api/refund",
//                                      "httpStatus":503,"latencyMs":0,"retryAfter":"1"}
//                               kind: latency | http_error | rate_limit |
//                               drop_connection |
//                                     reset_connection | malformed_json
//   DELETE /__emulator/faults   clears all faults
//   GET    /__emulator/stats    {"connectionsAccepted":N,"requests":N}
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_CLINK_EMULATOR_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_CLINK_EMULATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/tls_frontend.h"

struct mg_connection;
struct mg_context;

namespace clink_gateway::emulator {

// A failure injected into /api traffic. Faults are checked in the order they
// were set; every matching latency fault applies, then the first matching fault
// of any other kind decides the response. A fault applies before
// authentication, the way a proxy or load balancer would.
struct Fault {
  enum class Kind {
    kLatency,    // Wait `latency`, then continue (stacks with the other kinds).
    kHttpError,  // Answer `http_status` (e.g. 500, 502, 503) with a plain-text
                 // body.
    kRateLimit,  // Answer 429 with "Retry-After: <retry_after>" and a
                 // plain-text body.
    kDropConnection,   // Read the request, then close the connection without a
                       // byte (FIN).
    kResetConnection,  // Read the request, then reset the connection (RST).
    kMalformedJson,  // Answer HTTP 200, application/json, with a truncated JSON
                     // body.
  };

  Kind kind = Kind::kHttpError;
  // Applies to the next `count` matching requests; a negative count means every
  // one.
  int count = 1;
  // Only requests whose path starts with this, e.g. "/api/refund"; empty
  // matches every /api request.
  std::string path_prefix;
  absl::Duration latency = absl::ZeroDuration();  // kLatency.
  int http_status = 503;                          // kHttpError.
  std::string retry_after = "1";                  // kRateLimit, sent verbatim.
};

// One /api request as received (including ones rejected by auth or answered by
// a fault).
struct RecordedRequest {
  std::string method;
  std::string path;          // URL-decoded, e.g. "/api/order/ord_1".
  std::string query_string;  // Raw, without the '?'.
  std::string body;
  // Header values; empty when the header was absent.
  std::string api_key;    // X-API-KEY
  std::string timestamp;  // X-Timestamp
  std::string content_type;
  std::string user_agent;
  std::string request_id;  // X-Request-Id
};

class ClinkEmulator {
 public:
  struct Options {
    // IPv4 literal (civetweb is built without IPv6; with TLS an IPv6 literal
    // also works).
    std::string listen_address = "127.0.0.1";
    int port = 0;  // 0 picks a free port; see port().
    std::vector<std::string>
        api_keys;  // Accepted X-API-KEY values; at least one.
    // Server certificate followed by its private key, PEM (see test_ca.h);
    // empty = plain HTTP.
    std::string tls_cert_pem_path;
    // Largest accepted |clock() - X-Timestamp|.
    absl::Duration timestamp_tolerance = absl::Seconds(120);
    // The emulator's "now", for auth and entity times; default absl::Now.
    std::function<absl::Time()> clock;
    int num_threads =
        32;  // civetweb worker threads; each serves one connection at a time.
    // false: validation, business and not-found errors are HTTP 200 with the
    // error in the envelope's code. true: HTTP 400 / 404 with the same
    // envelope.
    bool http_status_errors = false;
    // Oldest requests are forgotten beyond this many (the counters keep
    // counting).
    size_t max_recorded_requests = 10000;
  };

  static absl::StatusOr<std::unique_ptr<ClinkEmulator>> Start(Options options);

  // Stops serving: in-flight latency faults end early, open connections are
  // closed.
  ~ClinkEmulator();

  ClinkEmulator(const ClinkEmulator&) = delete;
  ClinkEmulator& operator=(const ClinkEmulator&) = delete;

  int port() const { return port_; }
  // E.g. "https://127.0.0.1:PORT/api" or "http://127.0.0.1:PORT/api".
  std::string base_url() const;

  // Adds `fault` to the active faults. Thread-safe, effective for the next
  // request.
  void SetFault(const Fault& fault);
  void ClearFaults();

  // TCP connections accepted so far (a keep-alive connection counts once).
  int64_t connections_accepted() const { return connections_accepted_.load(); }
  // /api requests received since start or the last ClearRequests(), oldest
  // first.
  std::vector<RecordedRequest> requests() const;
  void ClearRequests();
  // Blocks until at least `n` /api requests have been received since start or
  // the last ClearRequests() (recorded when read, before any latency fault);
  // false on timeout.
  bool WaitForRequests(int64_t n, absl::Duration timeout) const;

 private:
  struct FaultPlan;

  explicit ClinkEmulator(Options options);

  // civetweb callbacks.
  static int OnRequest(mg_connection* conn, void* self);
  static int OnInitConnection(const mg_connection* conn, void** conn_data);

  int HandleRequest(mg_connection* conn);
  int HandleAdmin(mg_connection* conn, const std::string& method,
                  const std::string& path, const std::string& body);
  // Consumes the faults that apply to a request for `path`.
  FaultPlan TakeFaults(const std::string& path);
  void Record(RecordedRequest request);
  // Empty when the request is authenticated, else the 401 body.
  std::string AuthError(const RecordedRequest& request) const;

  const Options options_;
  MerchantApi api_;
  mg_context* civetweb_ = nullptr;
  int civetweb_port_ = 0;
  std::unique_ptr<TlsFrontend> tls_;  // Null for plain HTTP.
  int port_ = 0;
  absl::Notification stopping_;
  std::atomic<int64_t> connections_accepted_{0};

  mutable absl::Mutex mu_;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::deque<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  int64_t request_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_CLINK_EMULATOR_H_
