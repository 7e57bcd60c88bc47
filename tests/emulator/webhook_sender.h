// Webhook delivery for the Clink emulator: builds Clink's event envelope,
// signs it the way Clink does and POSTs it to the merchant's endpoint from a
// sender thread, with Clink's retry behaviour and injectable faults.
//
//   WebhookSender::Options options;
//   options.base_delay = absl::Milliseconds(5);   // Tests compress the
//                                                  // backoff schedule.
//   GATEWAY_ASSIGN_OR_RETURN(auto sender, WebhookSender::Start(options));
//   sender->SetTarget("default", {"http://127.0.0.1:8080/webhooks/clink",
//                                 "whsec_test"});
//   sender->Publish("default", "order.succeeded", R"({"orderId":"ord_1"})");
//
// Envelope (clink-api.md §13.2). The current form, the default:
//   {"id":"evt_…","type":"order.succeeded","object":"event",
//    "created":1750062041000,               (int64 Unix milliseconds)
//    "data":{"object":{…the resource…}}}
// The legacy form (WebhookPayloadForm::kLegacy): "created" is an ISO-8601 UTC
// string ("2025-06-16T08:20:41Z") and the resource is "data" itself, except
// for dispute.* and customer.verify events, which Clink always sent under
// "data.object".
//
// Signature (clink-api.md §13.3), on every POST:
//   X-Clink-Timestamp: Unix time in milliseconds when the POST is signed
//   X-Clink-Signature: lower-case hex HMAC-SHA256, key = the whole secret
//                      ("whsec_" included, as UTF-8 bytes), message =
//                      X-Clink-Timestamp + "." + the exact body bytes
//   X-Clink-SignType:  SHA256
//   Content-Type:      application/json
// Each attempt is signed afresh, so a retry carries a new timestamp.
//
// Delivery (clink-api.md §13.4): a 2xx answer is success; any other status, a
// connection failure or a timeout is a failed attempt, retried after
// base_delay * 2^(attempt-1) (capped at max_delay) until max_attempts (10, as
// Clink) have failed; then the delivery is abandoned ("gave up"). Deliveries
// are unordered: a retried event arrives after later events. One sender
// thread makes the POSTs one at a time (never a civetweb request thread), so a
// receiver that hangs delays the others by up to `timeout` per attempt.
//
// Faults (SetFault) model what a webhook receiver must tolerate: duplicates,
// reordering and forged or corrupted signatures.
//
// Thread-safety: every public method may be called from any thread.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_WEBHOOK_SENDER_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_WEBHOOK_SENDER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace clink_gateway::emulator {

// Where a merchant account's events are POSTed.
struct WebhookTarget {
  // http:// or https:// URL, at most 2048 bytes. Unlike endpoints registered
  // through Clink's API (public HTTPS only), loopback and plain HTTP are
  // allowed: this is the emulator's test hook.
  std::string url;
  // The signing secret, "whsec_" followed by at least one character, at most
  // 256 bytes in all; the whole string is the HMAC key.
  std::string secret;
};

// The two envelope versions of Clink's docs (see the file comment).
enum class WebhookPayloadForm {
  kCurrent,  // "created" in int64 ms, resource under "data.object".
  kLegacy,   // "created" ISO-8601, resource directly under "data".
};

// A delivery misbehaviour, applied to the next matching events or POSTs.
struct WebhookFault {
  enum class Kind {
    // Each of the next `count` events is delivered `copies` times: the same
    // event id and the same body, each copy its own delivery (own retries).
    kDuplicate,
    // The next `count` events (at least 2) are held back; when the last of
    // them is published they are released newest first. ClearFaults()
    // releases a partial batch in publication order.
    kOutOfOrder,
    // The next `count` POSTs carry an X-Clink-Signature computed with a
    // different key, so it does not verify; the timestamp and body are
    // genuine. A retry of the same event is signed correctly again unless
    // `count` covers it too.
    kWrongSignature,
  };
  Kind kind = Kind::kDuplicate;
  int count = 1;   // Events (kDuplicate, kOutOfOrder) or POSTs (kWrong...).
  int copies = 2;  // kDuplicate: deliveries per event, 2 to 100.
};

// Counters since Start. A "delivery" is one event to one target (a duplicate
// copy is a delivery of its own); an "attempt" is one POST.
struct WebhookStats {
  int64_t events = 0;     // Events published (whether or not delivered).
  int64_t attempts = 0;   // POSTs made, retries included.
  int64_t succeeded = 0;  // Deliveries answered 2xx.
  int64_t gave_up = 0;    // Deliveries abandoned after max_attempts failures.
  int64_t dropped = 0;    // Deliveries refused because max_pending was full.
};

class WebhookSender {
 public:
  struct Options {
    // POSTs per delivery before giving up; Clink makes up to 10.
    int max_attempts = 10;
    // Wait before retry n (n = 1, 2, ...): base_delay * 2^(n-1), at most
    // max_delay. The defaults give retries after 1 s, 2 s, ... 256 s; Clink
    // spreads its 10 attempts over about a day (unknown schedule), which a
    // base_delay near 90 s approximates. Tests use milliseconds.
    absl::Duration base_delay = absl::Seconds(1);
    absl::Duration max_delay = absl::Hours(6);
    // Bound on one POST (connect, send, answer); longer counts as a failure.
    absl::Duration timeout = absl::Seconds(10);
    WebhookPayloadForm form = WebhookPayloadForm::kCurrent;
    // Deliveries waiting (queued or held by kOutOfOrder) at most; more are
    // dropped and counted in WebhookStats::dropped.
    size_t max_pending = 10000;
    // PEM CA bundle for https:// targets; empty = the system's.
    std::string ca_file;
    // Clink's clock, for "created" and X-Clink-Timestamp; default absl::Now.
    // Must be thread-safe. Retry scheduling always uses real time.
    std::function<absl::Time()> clock;
    // More targets for an event of `type` for `merchant`, e.g. the enabled
    // endpoints registered through the emulated /webhook/endpoints API that
    // subscribe to `type`; called on the publishing thread. Optional.
    std::function<std::vector<WebhookTarget>(const std::string& merchant,
                                             const std::string& type)>
        registered_targets;
  };

  // InvalidArgument for nonsensical options (max_attempts < 1, negative
  // delays, zero timeout or max_pending). Starts the sender thread.
  static absl::StatusOr<std::unique_ptr<WebhookSender>> Start(Options options);

  // Stops the sender thread: an in-flight POST is aborted, undelivered events
  // are discarded.
  ~WebhookSender();

  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // Sets where `merchant`'s events go from the next Publish on; an empty
  // target.url removes it. InvalidArgument (naming the field) for a bad URL
  // or secret. Deliveries already queued keep their old target.
  absl::Status SetTarget(const std::string& merchant, WebhookTarget target);

  // Publishes one event of `type` (a clink-api.md §13.1 name; not checked, so
  // tests may send unknown types) whose resource is `object_json`, a JSON
  // object nesting at most 64 deep (InvalidArgument otherwise). Builds the
  // envelope, dated Options::clock(), and queues one delivery per target (none:
  // the event is only counted). Returns the new event id, "evt_" + 24 [0-9a-z].
  absl::StatusOr<std::string> Publish(const std::string& merchant,
                                      const std::string& type,
                                      absl::string_view object_json);

  // Adds `fault` after the active ones (InvalidArgument for a count < 1,
  // kOutOfOrder with count < 2, kDuplicate with copies outside 2..100). Faults of one
  // kind apply one after another.
  absl::Status SetFault(const WebhookFault& fault);
  // Removes every fault; events held by kOutOfOrder are released in order.
  void ClearFaults();

  WebhookStats stats() const;
  // Waits until no delivery is queued or being POSTed (events held by
  // kOutOfOrder do not count). False on timeout.
  bool WaitForIdle(absl::Duration timeout) const;

  // The envelope of one event, as Publish sends it (see the file comment).
  // `object_json` must be a JSON object.
  static std::string EventBody(WebhookPayloadForm form, absl::string_view id,
                               absl::string_view type, absl::Time created,
                               absl::string_view object_json);

 private:
  // One event on its way to one target.
  struct Delivery {
    std::string body;
    WebhookTarget target;
    int attempts = 0;  // POSTs made so far.
  };
  // Queue order: due time, then publication sequence.
  using QueueKey = std::pair<absl::Time, int64_t>;

  explicit WebhookSender(Options options);

  // The sender thread's loop.
  void Run();
  // Waits for the next due delivery and takes it (with whether this POST gets
  // a wrong signature); false when stopping.
  bool Next(Delivery* delivery, bool* wrong_signature);
  // Counts the outcome of a POST of `delivery`; schedules a retry if due.
  void Finish(Delivery delivery, bool ok);
  // Queues `deliveries` due now, in order (or drops them when full).
  void EnqueueLocked(std::vector<Delivery> deliveries)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases the events held by kOutOfOrder, newest first if `reversed`.
  void ReleaseHeldLocked(bool reversed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Consumes one unit of the first fault of `kind`, if any; returns it.
  bool TakeFault(WebhookFault::Kind kind, WebhookFault* fault)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One POST; true when answered 2xx.
  bool Post(const Delivery& delivery, bool wrong_signature);

  const Options options_;
  std::atomic<bool> stopping_{false};

  mutable Mutex mu_;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WebhookTarget> targets_ ABSL_GUARDED_BY(mu_);
  std::vector<WebhookFault> faults_ ABSL_GUARDED_BY(mu_);
  std::map<QueueKey, Delivery> queue_ ABSL_GUARDED_BY(mu_);
  int64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Events held by kOutOfOrder, each as its deliveries, oldest first.
  std::vector<std::vector<Delivery>> held_ ABSL_GUARDED_BY(mu_);
  size_t held_deliveries_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  WebhookStats stats_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;  // Runs Run(); started last, joined first.
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_WEBHOOK_SENDER_H_
