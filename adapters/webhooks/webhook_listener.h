// The Clink webhook listener: an HTTP server (civetweb) on --webhook_listen
// that receives Clink's event deliveries, verifies their signatures,
// deduplicates and stores them in the EventStore, and answers 200 only once
// an event is durable (so that Clink retries everything else).
//
// Routes (nothing else is served):
//   POST /webhooks/clink             the default merchant
//                                    (Options::default_merchant)
//   POST /webhooks/clink/{merchant}  a merchant of --merchants_config
// Answers, checked in this order (the metrics' result label in brackets):
//   404 any other path                                          [not_found]
//   405 another method, with "Allow: POST"             [method_not_allowed]
//   404 a merchant not configured, or without a webhook secret
//                                                        [unknown_merchant]
//   415 a Content-Type other than application/json
//                                                  [unsupported_media_type]
//   413 a body over 1 MiB (by Content-Length, or while reading a chunked
//       body: never more than the cap is buffered)              [too_large]
//   401 a missing or bad signature, or a timestamp outside the tolerance
//       (webhook_signature.h); nothing is stored
//                                        [bad_signature, stale_timestamp]
//   400 a body that is not a valid envelope (webhook_payload.h), checked
//       after the signature, so unsigned junk gets 401          [malformed]
//   503 the EventStore is unavailable, or the listener is draining (Stop);
//       Clink retries                                    [store_unavailable]
//   200 EventStore::Append stored the event, or had it already
//                                                   [accepted, duplicate]
// The EventListener is told about newly stored events (not duplicates).
// Requests are served by a bounded pool of worker threads with a read
// timeout (slow clients cannot hold them), without keep-alive; request lines
// and headers are capped at 16 KiB by civetweb. One log line per delivery
// ("webhook_received": merchant, event id when known, result, HTTP status);
// never the secret, the signature or the body.
#ifndef CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_LISTENER_H_
#define CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_LISTENER_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "adapters/webhooks/webhook_secrets.h"
#include "adapters/webhooks/webhook_signature.h"
#include "common/clock.h"
#include "common/sync.h"

struct mg_connection;
struct mg_context;

namespace clink_gateway::webhooks {

inline constexpr absl::string_view kDefaultMerchant = "default";
inline constexpr absl::string_view kWebhookPath = "/webhooks/clink";

// The result of one delivery: the `result` label of
// clink_gateway_webhooks_received_total.
enum class WebhookResult {
  kAccepted,
  kDuplicate,
  kMalformed,
  kBadSignature,
  kStaleTimestamp,
  kUnknownMerchant,
  kNotFound,
  kMethodNotAllowed,
  kUnsupportedMediaType,
  kTooLarge,
  kStoreUnavailable,
};
inline constexpr int kWebhookResults = 11;
// "accepted", "duplicate", ..., "store_unavailable".
absl::string_view WebhookResultName(WebhookResult result);

// What the listener reports, for metrics. Called on its worker threads; must
// not block.
class WebhookObserver {
 public:
  virtual ~WebhookObserver() = default;
  // Every request. `merchant` is a configured merchant's name, or "unknown"
  // when the path named none.
  virtual void OnWebhookReceived(absl::string_view merchant,
                                 WebhookResult result) {}
  // An accepted or duplicate delivery: from the start of the request to the
  // store's answer.
  virtual void OnWebhookIngested(absl::string_view merchant,
                                 absl::Duration duration) {}
  // A newly stored event of `type` (any string: the observer bounds it).
  virtual void OnWebhookEventStored(absl::string_view merchant,
                                    absl::string_view type) {}
};

class WebhookListener {
 public:
  struct Options {
    // "host:port" (IPv4; port 0 picks a free one).
    std::string listen;
    absl::Duration timestamp_tolerance = kDefaultTimestampTolerance;
    // Worker threads: requests served at once (more wait in the backlog).
    int num_threads = 8;
    // A request (headers and body) must arrive within this.
    absl::Duration request_timeout = absl::Seconds(10);
    // Stop() waits at most this long for the deliveries in progress.
    absl::Duration drain_timeout = absl::Seconds(20);
    // The merchant of POST /webhooks/clink; empty: that path names no
    // merchant (404).
    std::string default_merchant = std::string(kDefaultMerchant);
    // For signature timestamps and receive times; null: the system clock.
    const Clock* clock = nullptr;
    // May be null.
    WebhookObserver* observer = nullptr;
    // Told about newly stored events; may be null.
    events::EventListener* event_listener = nullptr;
  };

  // Starts serving. `secrets` and `store` must outlive the listener.
  // INVALID_ARGUMENT for bad options, UNAVAILABLE when the address cannot
  // be bound.
  static absl::StatusOr<std::unique_ptr<WebhookListener>> Start(
      Options options, const WebhookSecrets& secrets,
      events::EventStore& store);

  // Stop() (with Options::drain_timeout).
  ~WebhookListener();
  WebhookListener(const WebhookListener&) = delete;
  WebhookListener& operator=(const WebhookListener&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Drains, then stops: new requests are answered 503 at once (result
  // store_unavailable: Clink retries them later, or on another replica), the
  // deliveries in progress are answered (for at most
  // Options::drain_timeout, or `drain`), then the port is closed and the
  // threads joined. Idempotent; call from one thread.
  void Stop() { Stop(options_.drain_timeout); }
  void Stop(absl::Duration drain);

 private:
  struct Reply;
  WebhookListener(Options options, const WebhookSecrets& secrets,
                  events::EventStore& store);
  static int OnRequest(mg_connection* conn, void* self);
  int Handle(mg_connection* conn);
  // Decides the answer; `merchant` is set once the path names one.
  Reply Process(mg_connection* conn, absl::Time start, std::string* merchant,
                std::string* event_id);

  const Options options_;
  const Clock& clock_;
  const WebhookSecrets& secrets_;
  events::EventStore& store_;
  mg_context* civetweb_ = nullptr;
  int port_ = 0;
  Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // Requests being handled.
};

}  // namespace clink_gateway::webhooks

#endif  // CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_LISTENER_H_
