// An in-memory fake of Clink's merchant REST API, in the spirit of stripe-mock.
//
// Integration tests start it in-process on 127.0.0.1 port 0 and point the
// gateway at base_url(); the clink_emulator_server binary (main.cc) runs the
// same thing standalone.
//
//   ClinkEmulator::Options options;
//   options.api_keys = {"sk_test_emulator"};    // Account "default".
//   options.merchants = {{"acme", {"sk_test_acme_1", "sk_test_acme_2"}}};
//   options.tls_cert_pem_path = ca.server_pem;  // Or empty for plain HTTP.
//   GATEWAY_ASSIGN_OR_RETURN(auto emulator, ClinkEmulator::Start(options));
//   Fault fault;                                // The next request gets 503.
//   fault.kind = Fault::Kind::kHttpError;
//   emulator->SetFault(fault);
//   emulator->SetApiKeys("acme", {"sk_test_acme_2"});  // Revokes ..._acme_1.
//   emulator->SetClockOffset(absl::Seconds(100));      // Clink's clock runs
//                                                       // 100 s ahead.
//
// What it emulates (clink-api.md): every endpoint under /api listed in
// merchant_api.h, with X-API-KEY + X-Timestamp authentication (HTTP 401 with a
// plain-text body on failure), Clink's envelopes, consistent in-memory state
// and a seeded catalog (ids in merchant_api.h).
//
// Merchant accounts: like real Clink, every merchant account has its own
// objects and its own secret keys (two during a key roll). The X-API-KEY of a
// request selects the account; each account is a separate MerchantApi, so an
// order created with one merchant's key is "not found" with another's, while
// the seeded catalog exists in every account.
//
// Clock: the emulator's "now" is Options::clock() + SetClockOffset(). It dates
// entities, bounds the X-Timestamp check, and fills the Date header (RFC 7231
// IMF-fixdate) of every response the emulator writes, so a test can model a
// gateway whose clock is skewed relative to Clink's. (civetweb would add a
// Date header from the system clock; it leaves it out when the handler sets
// one, so every response carries exactly one Date, the emulator's.)
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
// Test hooks: injected faults, a connection counter, per-key request counters
// and a log of received /api requests, in C++ and over admin endpoints that
// need no API key (for out-of-process tests and scripts):
//   POST   /__emulator/faults   body: {"kind":"http_error","count":1,
//                                      "pathPrefix":"/api/refund",
//                                      "httpStatus":503,"latencyMs":0,
//                                      "retryAfter":"1"}
//                               kind: latency | http_error | rate_limit |
//                                     drop_connection | reset_connection |
//                                     malformed_json | process_then_drop
//   DELETE /__emulator/faults   clears all faults
//   GET    /__emulator/stats    {"connectionsAccepted":N,"requests":N,
//                                "webhookEvents":N,
//                                "webhookDeliveryAttempts":N,
//                                "webhookDeliveriesSucceeded":N,
//                                "webhookDeliveriesGaveUp":N,
//                                "webhookDeliveriesDropped":N}
//   POST   /__emulator/webhooks body: {"merchant":"default",
//                                      "url":"http://127.0.0.1:PORT/...",
//                                      "secret":"whsec_..."}  (url "" = off)
//   POST   /__emulator/webhooks/events?type=dispute.created&merchant=default
//                               body: the event's resource (a JSON object,
//                               sent byte for byte); answers
//                               {"code":200,"msg":"success",
//                                "data":{"eventId":"evt_..."}}
//   POST   /__emulator/webhooks/faults body: {"kind":"duplicate","count":1,
//                                      "copies":2}
//                               kind: duplicate | out_of_order |
//                                     wrong_signature
//   DELETE /__emulator/webhooks/faults  clears them (held events go out)
//
// Thread-safety: every public method may be called from any thread while the
// emulator serves requests; changes (faults, keys, clock offset) apply from
// the next request on.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_CLINK_EMULATOR_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_CLINK_EMULATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/tls_frontend.h"
#include "tests/emulator/webhook_sender.h"

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
    kProcessThenDrop,  // Authenticate and handle the request (its effect at
                       // Clink happens: an order is created), then close the
                       // connection without a byte (FIN): the answer is lost.
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
  // The name of the merchant account `api_key` belonged to when the request
  // arrived; empty when the key was missing or unknown.
  std::string merchant;
};

// One merchant account: its own objects (orders, customers, sessions, ...) and
// the secret keys that act on it.
struct MerchantAccount {
  std::string name;  // Unique among the accounts, not empty.
  // Accepted X-API-KEY values; none may be empty or belong to another
  // account. May be empty (every request for it is then 401) if another
  // account has a key.
  std::vector<std::string> api_keys;
};

class ClinkEmulator {
 public:
  struct Options {
    // IPv4 literal (civetweb is built without IPv6; with TLS an IPv6 literal
    // also works).
    std::string listen_address = "127.0.0.1";
    int port = 0;  // 0 picks a free port; see port().
    // Shorthand for one more merchant account named "default" with these
    // keys (ignored when empty). Options must hold at least one key overall,
    // here or in `merchants`.
    std::vector<std::string> api_keys;
    // Merchant accounts, each with its own objects and keys (see
    // MerchantAccount). With `api_keys` as well, "default" is an extra
    // account, so no entry here may be named "default".
    std::vector<MerchantAccount> merchants;
    // Server certificate followed by its private key, PEM (see test_ca.h);
    // empty = plain HTTP.
    std::string tls_cert_pem_path;
    // Largest accepted |now - X-Timestamp|, where now is clock() plus the
    // SetClockOffset() offset.
    absl::Duration timestamp_tolerance = absl::Seconds(120);
    // The emulator's "now" (before SetClockOffset()), for auth, entity times
    // and the Date response header; default absl::Now. Called from civetweb's
    // threads, so it must be thread-safe.
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
    // An idle keep-alive connection is closed after this long, like a real
    // server or load balancer would (then clients must reconnect).
    absl::Duration keep_alive_timeout = absl::Seconds(10);
    // Webhook delivery (webhook_sender.h): retries, backoff, timeout and the
    // payload form. Its `clock` is always the emulator's Now().
    WebhookSender::Options webhooks;
    // Where each merchant account's events go, by account name ("default"
    // for `api_keys`); SetWebhookTarget() changes it at run time. An account
    // without a target emits no webhooks.
    std::map<std::string, WebhookTarget> webhook_targets;
    // Events also go to each account's enabled endpoints registered through
    // /webhook/endpoints that list the event's type, signed with the
    // endpoint's current secret. Those URLs are public HTTPS and the emulator
    // resolves no names, so this maps a registered URL's origin
    // ("https://hooks.example.com", scheme://host[:port], no path) to the
    // origin actually POSTed to (e.g. "http://127.0.0.1:8080"); the path is
    // kept. URLs whose origin is not listed are POSTed to as registered.
    std::map<std::string, std::string> webhook_endpoint_origins;
  };

  // Validates `options` (InvalidArgument: no key at all, an empty key or
  // account name, two accounts with one name, a key in two accounts, ...) and
  // starts serving.
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

  // Replaces the accepted keys of the merchant account `merchant` (a key roll
  // or revocation); an empty `keys` revokes all of them. The account keeps its
  // objects. Requests read after this returns see the new keys. NotFound when
  // there is no such account; InvalidArgument when a key is empty or belongs
  // to another account (nothing changes then). Thread-safe.
  absl::Status SetApiKeys(absl::string_view merchant,
                          std::vector<std::string> keys);

  // The enabled webhook endpoints registered (through /webhook/endpoints) on
  // the merchant account `merchant`, with their current signing secrets
  // (MerchantApi::EnabledWebhookEndpoints); empty when there is no such
  // account. Thread-safe.
  std::vector<RegisteredWebhookEndpoint> EnabledWebhookEndpoints(
      absl::string_view merchant) const;

  // Shifts the emulator's clock: from the next request on, "now" is
  // Options::clock() + offset, for the Date header, the X-Timestamp check and
  // entity times. Not cumulative (each call replaces the previous offset);
  // models a gateway whose clock is skewed by -offset relative to Clink's.
  // Thread-safe.
  void SetClockOffset(absl::Duration offset);
  // Options::clock() + the current offset.
  absl::Time Now() const;

  // Webhooks (see webhook_sender.h for the envelope, signature, retries and
  // faults). Every account emits an event at each state change Clink sends
  // one for (merchant_api.h lists them), with the resource exactly as its GET
  // endpoint answers at that moment.
  //
  // Sends `merchant`'s events to `target` from the next event on (an empty
  // url stops them). NotFound for an unknown account; InvalidArgument naming
  // the field for a bad url or secret.
  absl::Status SetWebhookTarget(absl::string_view merchant,
                                WebhookTarget target);
  // Emits an event of any `type` (e.g. "dispute.created", which nothing in
  // the emulator produces) for `merchant`, with `object_json` (a JSON object)
  // as its resource. Returns the event id. NotFound for an unknown account,
  // InvalidArgument when `object_json` is not a JSON object.
  absl::StatusOr<std::string> EmitWebhookEvent(absl::string_view merchant,
                                               const std::string& type,
                                               absl::string_view object_json);
  absl::Status SetWebhookFault(const WebhookFault& fault);
  void ClearWebhookFaults();
  WebhookStats webhook_stats() const;
  // Waits until no webhook delivery is queued or in flight; false on timeout.
  bool WaitForWebhooksIdle(absl::Duration timeout) const;

  // TCP connections accepted so far (a keep-alive connection counts once).
  int64_t connections_accepted() const { return connections_accepted_.load(); }
  // Over TLS: waits until the emulator has closed at least `n` of the
  // connections it accepted (e.g. idle ones, after keep_alive_timeout), the
  // close_notify and FIN sent. False on timeout, or for plain HTTP.
  bool WaitForConnectionsClosed(int64_t n, absl::Duration timeout) const;
  // /api requests received since start or the last ClearRequests(), oldest
  // first.
  std::vector<RecordedRequest> requests() const;
  // Resets requests(), the count WaitForRequests() waits for, and
  // requests_with_key().
  void ClearRequests();
  // /api requests received with exactly this X-API-KEY (whether or not it was
  // accepted) since start or the last ClearRequests(); counted independently of
  // max_recorded_requests. An empty `api_key` counts requests without one.
  int64_t requests_with_key(absl::string_view api_key) const;
  // Blocks until at least `n` /api requests have been received since start or
  // the last ClearRequests() (recorded when read, before any latency fault);
  // false on timeout.
  bool WaitForRequests(int64_t n, absl::Duration timeout) const;

 private:
  // The targets of an event of `type` for `merchant` among its registered
  // endpoints (Options::webhook_endpoint_origins applied).
  std::vector<WebhookTarget> RegisteredWebhookTargets(
      const std::string& merchant, const std::string& type) const;
  struct FaultPlan;

  explicit ClinkEmulator(Options options);

  // civetweb callbacks.
  static int OnRequest(mg_connection* conn, void* self);
  static int OnInitConnection(const mg_connection* conn, void** conn_data);

  int HandleRequest(mg_connection* conn);
  int HandleAdmin(mg_connection* conn, const std::string& method,
                  const std::string& path, const std::string& body);
  // POST/DELETE /__emulator/webhooks...: the success body, or an error
  // (NotFound -> 404, else 400 with the message).
  absl::StatusOr<std::string> HandleWebhookAdmin(const std::string& method,
                                                 const std::string& endpoint,
                                                 absl::string_view query,
                                                 const std::string& body);
  // Index into accounts_ of the account named `merchant`, or -1.
  int AccountNamed(absl::string_view merchant) const;
  // Consumes the faults that apply to a request for `path`.
  FaultPlan TakeFaults(const std::string& path);
  void Record(RecordedRequest request);
  // Index into accounts_ of the account `api_key` belongs to, or -1.
  int AccountOf(const std::string& api_key) const;
  // Empty when the request is authenticated, else the 401 body; on success
  // sets *account to the index of the request's account.
  std::string AuthError(const RecordedRequest& request, int* account) const;

  struct Account {
    std::string name;
    std::unique_ptr<MerchantApi> api;
  };

  const Options options_;
  // One per merchant account; fixed after Start.
  std::vector<Account> accounts_;
  std::atomic<int64_t> clock_offset_ns_{0};
  mg_context* civetweb_ = nullptr;
  int civetweb_port_ = 0;
  std::unique_ptr<TlsFrontend> tls_;  // Null for plain HTTP.
  int port_ = 0;
  absl::Notification stopping_;
  // Created in Start before civetweb serves; destroyed (its thread joined)
  // after civetweb has stopped, and before options_, which its clock reads.
  std::unique_ptr<WebhookSender> webhooks_;
  std::atomic<int64_t> connections_accepted_{0};
  mutable absl::Mutex closed_mu_;
  int64_t connections_closed_ ABSL_GUARDED_BY(closed_mu_) = 0;

  // Guards only the key table, so the request path holds it briefly.
  mutable absl::Mutex keys_mu_;
  // Accepted X-API-KEY -> index into accounts_.
  absl::flat_hash_map<std::string, int> account_by_key_
      ABSL_GUARDED_BY(keys_mu_);

  mutable absl::Mutex mu_;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::deque<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  int64_t request_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int64_t> requests_by_key_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_CLINK_EMULATOR_H_
