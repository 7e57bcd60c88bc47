// The audit trail: one JSON line per write RPC (every RPC whose Clink endpoint
// is not a GET), saying who asked to move what and how it ended.
//
//   {"ts":"2026-12-07T19:40:01.123Z","level":"info","event":"audit",
//    "caller":"spiffe://cluster.local/ns/shop/sa/checkout-web",
//    "caller_authenticated":"true",
//    "method":"clink.gateway.v1.PaymentService.CreatePayment",
//    "merchant":"default","request_id":"4f1c...","idempotency_key_digest":
//    "9a0e...","amount":"19.99","currency":"USD","code":"OK",
//    "outcome":"committed","replayed":"false","clink_order_id":"ord_123"}
//
// Fields (all JSON strings; every one is always present except the ids):
//  - caller: clink::CallOptions::caller ("" for anonymous callers);
//    caller_authenticated "true" when the transport (mTLS) vouched for it,
//    "false" when it is the caller's `x-clink-caller` claim.
//  - method: the RPC's full name; merchant; request_id (`x-request-id`).
//  - idempotency_key_digest: IdempotencyKey::Digest() of the call's key in its
//    scope (SHA-256 over caller, RPC, key and merchant, length-prefixed): the
//    name of its record in the idempotency store, so the record can be found,
//    and the same for every retry with the key. "none" without a key. Never
//    the key itself.
//  - amount, currency: from the request, by field rule (rest_options.proto),
//    not per RPC: the first set top-level DECIMAL field that is charged or
//    refunded (FieldRule.currency_field or any_currency) and the value of its
//    currency field; "" when the request has none (e.g. a price id, or line
//    items only). amount_field names the field ("refund_amount").
//  - code: the final gRPC code ("OK", "UNKNOWN", ...); outcome: not_sent,
//    rejected, unknown or committed (clink::CallResult::outcome);
//    replayed: "true" when answered from the idempotency store.
//  - clink_<name>: every non-empty top-level string field named `id` or
//    `*_id` of the response's payload message (RestRule.response_body, or the
//    response itself), e.g. clink_order_id, clink_refund_id,
//    clink_subscription_id, clink_session_id.
// Never a secret (no field marked FieldRule.sensitive, such as a webhook
// endpoint's signing secret, whatever its name), the idempotency key, or a
// request or response body.
//
// Writes refused before anything was sent (bad metadata, validation,
// permission) are audited too, with outcome not_sent. Reads are not.
#ifndef CLINK_GATEWAY_SERVER_AUDIT_LOG_H_
#define CLINK_GATEWAY_SERVER_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "common/errors/error_details.h"
#include "google/protobuf/message.h"

namespace clink_gateway::server {

// What one write RPC's audit line says. Built in two steps because the request
// and response may not be read once the RPC is finished: AuditLog::Start when
// the request arrives, AuditLog::Settle just before Finish.
struct AuditEntry {
  bool write = false;  // false: a read, never audited.
  std::string caller;
  bool caller_authenticated = false;
  std::string method;
  std::string merchant;
  std::string request_id;
  std::string key_digest = "none";
  std::string amount;
  std::string amount_field;
  std::string currency;
  std::string code;
  std::string outcome;
  bool replayed = false;
  // Set by the caller when the call was refused before it reached the Clink
  // adapters (its metadata): the outcome is then not_sent, whatever the
  // status says.
  bool refused_before_sending = false;
  // ("clink_order_id", "ord_123"), in field-number order.
  std::vector<std::pair<std::string, std::string>> ids;
};

class AuditLog {
 public:
  // Lines go to the process log (common/logging.h: JSON lines on stdout),
  // whatever the log level.
  AuditLog() = default;

  // Lines are appended to the file at `path` (created, mode 0640, if
  // missing) instead: one write(2) per line on an O_APPEND descriptor, so
  // lines from several threads never interleave and each is in the file
  // (the kernel's page cache: a process crash loses none) when Write
  // returns. When the file is replaced
  // (renamed or deleted by log rotation), the next line reopens `path`: each
  // Write compares the path's inode with the open one's. INVALID_ARGUMENT
  // naming the path when it cannot be opened (a startup error).
  static absl::StatusOr<std::unique_ptr<AuditLog>> OpenFile(std::string path);

  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // The entry for `method`'s call with `options` (as far as the call's
  // metadata could be read) and `request`: write = false for a GET.
  static AuditEntry Start(const clink::RestMethod& method,
                          const google::protobuf::Message& request,
                          const clink::CallOptions& options);

  // Adds how the call ended: the code of `status` and `outcome` (not_sent when
  // entry.refused_before_sending), whether it was
  // `replayed`, and the Clink ids in `response` (may be null: nothing
  // decoded). Does nothing for a read.
  static void Settle(const clink::RestMethod& method,
                     const google::protobuf::Message* response,
                     const absl::Status& status, errors::Outcome outcome,
                     bool replayed, AuditEntry& entry);

  // Writes `entry`'s line (nothing for a read). Never throws; a failed file
  // write is logged (without the line) and counted in failed_writes(). The
  // forwarder calls it just before the RPC is finished, so a line exists
  // before its caller has the answer (a crash right after an answer cannot
  // lose it, and lines are in the order callers saw results). To a file, that
  // is one write(2) to local disk on the thread finishing the RPC (usually a
  // few microseconds; never the network); to the process log, a queue push.
  void Write(const AuditEntry& entry);

  // File lines that could not be written, since OpenFile.
  int64_t failed_writes() const;

 private:
  // Reopens path_ when it no longer names the open file. Requires mu_.
  void ReopenIfReplaced();

  std::string path_;  // Empty: the process log.
  mutable std::mutex mu_;
  int fd_ = -1;                // Guarded by mu_.
  int64_t failed_writes_ = 0;  // Guarded by mu_.
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_AUDIT_LOG_H_
