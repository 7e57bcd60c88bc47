// Where the gateway remembers idempotency keys: the first call with a key
// claims it, and every later call with the same key gets the first call's
// stored result instead of reaching Clink again.
//
// Two implementations: MemoryIdempotencyStore (one process, bounded, the
// default) and RedisIdempotencyStore (shared by a fleet of replicas, so two
// gateway pods never both send the same keyed payment).
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENCY_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENCY_STORE_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/errors/error_details.h"

namespace clink_gateway::idempotency {

// The merchant of a gateway configured with --api_key_dir: its keys digest
// exactly as they did before the gateway served several merchants.
inline constexpr absl::string_view kLegacyMerchant = "default";

// The scope a key lives in: two callers, two RPCs or two merchant accounts
// never share a record.
struct IdempotencyKey {
  // The calling identity (see server/rpc_forwarder.h: `x-clink-caller`
  // metadata); empty for anonymous callers, who share one scope.
  std::string caller;
  // Full gRPC method name, e.g.
  // "clink.gateway.v1.PaymentService/CreatePayment".
  std::string rpc;
  // The caller's `idempotency-key` metadata: 1-255 printable ASCII.
  std::string key;
  // The merchant account the call goes to (`x-clink-merchant`, resolved).
  std::string merchant;

  // A fixed-length name for this scope + key (hex SHA-256 of the parts,
  // length-prefixed so that no two distinct keys collide), safe to use as a
  // Redis key or map key and free of caller data. The merchant is left out
  // when it is empty or kLegacyMerchant, so keys stored before merchants
  // existed (Redis keeps them for the retention period) are still found after
  // an upgrade: a retry across a rolling update never runs twice.
  std::string Digest() const;
};

// The final result of the first call, replayed to every later call.
struct StoredResult {
  // OK, or the error with its payloads (google.rpc details) exactly as the
  // first caller got it.
  absl::Status status;
  // The serialized response message when `status` is OK; empty otherwise.
  std::string response;
};

// Serialization used by stores that keep results outside the process: a
// serialized google.rpc.Status whose code and message are the status's, whose
// details are the status's payloads (Any.type_url = payload type URL,
// Any.value = payload bytes, sorted by type URL) and whose last detail is
// always the response bytes under kStoredResponseTypeUrl. Round-trips every
// StoredResult exactly (absl::Status equality, response bytes).
inline constexpr absl::string_view kStoredResponseTypeUrl =
    "type.gateway.clink/response";
[[nodiscard]] std::string SerializeStoredResult(const StoredResult& result);
// kDataLoss when `bytes` is not what SerializeStoredResult writes.
[[nodiscard]] absl::StatusOr<StoredResult> ParseStoredResult(
    absl::string_view bytes);

// The outcome of the call a record settled (CallResult::outcome of its
// replays): kCommitted for OK, else the one the first caller was shown, which
// the record keeps in its status's ErrorInfo (metadata "outcome"; records
// outlive the process that wrote them, so this is the one place an outcome is
// read back). kUnknown when the record states none (the safe reading).
[[nodiscard]] errors::Outcome OutcomeOfStored(const StoredResult& result);

// google.rpc.ErrorInfo reason (domain gateway.clink) of AbandonedResult().
inline constexpr absl::string_view kAbandonedReason =
    "IDEMPOTENT_CALL_ABANDONED";

// The result a key is settled with when its holder's lease expired: UNKNOWN,
// with an ErrorInfo {reason IDEMPOTENT_CALL_ABANDONED, domain gateway.clink,
// metadata outcome=unknown}, and no response.
[[nodiscard]] StoredResult AbandonedResult();

// A fresh, unguessable lease token (32 hex digits from OpenSSL's CSPRNG), for
// store implementations.
[[nodiscard]] std::string NewLeaseToken();

struct BeginResult {
  enum class Kind {
    // No record existed: the caller now holds the key (an in-flight record
    // was written) and must end it with exactly one Complete() or Release()
    // using `lease_token`.
    kClaimed,
    // A final result is stored for this key and the same request: replay it.
    kCompleted,
    // The key is recorded for a different request (another body, or another
    // request_hash): nothing may be sent.
    kMismatch,
    // Another call holds the key and did not finish before `wait_deadline`,
    // or the store stopped waiting (IdempotencyStore::AbortWaits()).
    kInProgress,
  };
  Kind kind = Kind::kClaimed;
  StoredResult result;      // kCompleted
  std::string lease_token;  // kClaimed
};

// Building blocks for store implementations: a BeginResult of one kind (and
// its payload), and the errors every store gives for the same situations.
[[nodiscard]] BeginResult BeginResultOf(BeginResult::Kind kind);
[[nodiscard]] BeginResult ClaimedResult(std::string lease_token);
[[nodiscard]] BeginResult CompletedResult(StoredResult stored);
// kFailedPrecondition for a Complete/Release whose lease token no longer holds
// the key (its lease expired, or it was completed or released).
[[nodiscard]] absl::Status LeaseNotHeldError();
// kUnavailable for calls that meet a store shutting down.
[[nodiscard]] absl::Status StoreShuttingDownError();
// kInvalidArgument unless `expected` is an error whose ErrorInfo states
// outcome "unknown" (a result stating none is not accepted):
// the precondition every SettleUnknown() checks first (OK when it holds).
[[nodiscard]] absl::Status CheckSettleableUnknown(const StoredResult& expected);
// kFailedPrecondition for a SettleUnknown() whose record is not (or no longer)
// the unknown result it expected.
[[nodiscard]] absl::Status NotTheUnknownResultError();

// Thread-safe. Callbacks run exactly once, on a store thread or inline, and
// must not block.
class IdempotencyStore {
 public:
  using BeginCallback =
      absl::AnyInvocable<void(absl::StatusOr<BeginResult>) &&>;
  using DoneCallback = absl::AnyInvocable<void(absl::Status) &&>;

  virtual ~IdempotencyStore() = default;

  // Claims `key` for a request whose content hashes to `request_hash`, or finds
  // what is recorded for it:
  //  - no record: writes an in-flight record and returns kClaimed;
  //  - a record with another request_hash (in flight or final): kMismatch;
  //  - a final record with the same hash: kCompleted with its result;
  //  - an in-flight record with the same hash: waits (without blocking a
  //    thread) until it becomes final (kCompleted), is released (the waiter
  //    claims it: kClaimed), or `wait_deadline` passes or AbortWaits() is
  //    called (kInProgress); after AbortWaits(), kInProgress at once; and
  //    kInProgress at once when the store already has as many Begins waiting
  //    as it allows for this key or in all (its waiter caps: a burst of
  //    same-key retries must not grow without bound). A waiter that claims a
  //    released key is never answered inside that Release call (see
  //    KeyWaiters), so a chain of holders that fail at once is a loop;
  //  - an in-flight record whose holder vanished (its lease expired: the
  //    process died mid-call) becomes final with an UNKNOWN result, outcome
  //    "unknown", reason IDEMPOTENT_CALL_ABANDONED, and is returned as
  //    kCompleted. It is never run again: the first attempt may have reached
  //    Clink.
  // Fails with kUnavailable when the store cannot be reached or answers
  // wrongly (callers fail closed), or kResourceExhausted when a bounded store
  // is full of live records.
  virtual void Begin(const IdempotencyKey& key, absl::string_view request_hash,
                     absl::Time wait_deadline, BeginCallback done) = 0;

  // Makes a claimed key final with `result`, kept for the retention period
  // (counted from now). kFailedPrecondition when `lease_token` no longer holds
  // the key: it was completed or released already, or its lease expired (the
  // key is then settled as abandoned, if nobody did so yet, and `result` is
  // dropped); kUnavailable when the store cannot be reached (the record then
  // stays in flight until its lease expires, and is settled as abandoned,
  // unless the write is made again with the same token before that:
  // IdempotentClinkApi retries it in the background).
  virtual void Complete(const IdempotencyKey& key,
                        absl::string_view lease_token, StoredResult result,
                        DoneCallback done) = 0;

  // Forgets a claimed key whose call provably had no effect at Clink (never
  // sent, or refused in a way worth retrying), so the next call with the key
  // runs. Waiters on the key are woken and one of them claims it. Errors as
  // for Complete().
  virtual void Release(const IdempotencyKey& key, absl::string_view lease_token,
                       DoneCallback done) = 0;

  // Replaces the final result of a settled key whose outcome was unknown with
  // what is now known (OutcomeReconciler: the order was found at Clink), so a
  // retry with the key replays the real result instead of UNKNOWN. A
  // compare-and-set: the record is replaced only if it is final, was made for
  // `request_hash`, and holds exactly `expected` (equal
  // SerializeStoredResult() bytes; an abandoned record holds
  // AbandonedResult()). The record keeps its expiry. Errors:
  // kInvalidArgument when `expected` does not state outcome "unknown" in its
  // ErrorInfo (CheckSettleableUnknown: a known result is never replaced); kFailedPrecondition when the record is absent,
  // in flight, for another request, or holds another result (nothing
  // changed); kUnavailable when the store cannot be reached (the caller may
  // try again: a replay of a replacement that landed is refused with
  // kFailedPrecondition, never applied twice). Callback as for Complete().
  //
  // The default answers kUnimplemented (test fakes); every store overrides it.
  virtual void SettleUnknown(const IdempotencyKey& key,
                             absl::string_view request_hash,
                             const StoredResult& expected, StoredResult result,
                             DoneCallback done);

  // Stops waiting for good, for a graceful shutdown whose drain deadline
  // passed: every Begin now waiting on an in-flight key is answered promptly
  // with kInProgress (the caller is told to retry with the same key; the
  // holder's outcome is unknown to it), and every later Begin that finds an
  // in-flight key gets kInProgress at once instead of waiting. Everything
  // else keeps working: Begins still claim free keys and replay final
  // results, and Complete and Release still record what in-flight calls did.
  // Affects this store object only (other replicas sharing a Redis keep
  // waiting). Idempotent and thread-safe; waiters' callbacks may run inline,
  // so the caller must not hold a lock they take.
  //
  // The default does nothing, which is right only for a store whose Begin
  // never waits (test fakes); a store that waits must override it, or a
  // shutdown can overrun its drain by up to a wait_deadline.
  virtual void AbortWaits() {}
};

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENCY_STORE_H_
