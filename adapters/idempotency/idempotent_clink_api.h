// Idempotency keys for mutating RPCs: a ClinkApi decorator that makes sure a
// keyed call reaches Clink at most once, however often (and on however many
// gateway replicas) the caller retries it. Clink itself does not deduplicate
// payment creation (merchantReferenceId is not an idempotency key), so this is
// what stops a retried CreatePayment from charging twice.
//
// For a call whose CallOptions carry an idempotency_key, on an RPC whose Clink
// endpoint is a POST/PUT/DELETE (reads ignore the key: they are safe to
// repeat):
//   1. The request was validated by the caller (ClinkApi::Call; the gateway's
//      RpcForwarder), so an invalid one (INVALID_ARGUMENT) touches no key.
//   2. The key, scoped by (caller, RPC, merchant), is claimed in the
//   IdempotencyStore
//      together with a SHA-256 of the request (deterministic proto bytes).
//   3. The first call runs. Its result is stored when it is final: success, a
//      Clink refusal that would repeat (INVALID_ARGUMENT, FAILED_PRECONDITION,
//      NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE, PERMISSION_DENIED), or an
//      outcome that is unknown or committed (the request may have taken
//      effect; a retry is told so, it never sends the payment again). A call
//      that provably had no effect (outcome not_sent, e.g. an HTTP 408; any
//      other refusal: 429, 409, overload, the gateway's key refused; or a bare
//      HTTP 4xx without a Clink envelope code, from a proxy or load balancer in
//      front of Clink, which is not Clink's verdict) releases the key, so the
//      retry runs; so does an unknown outcome of a call Clink deduplicates
//      itself (CreateRefund), whose retry is safe and learns the outcome.
//   4. Later calls with the same key and request get the stored result
//      (CallResult.replayed) without calling Clink; concurrent ones wait for
//      the first, up to their deadline (at most the store's waiter caps: past
//      them, ABORTED IDEMPOTENCY_KEY_IN_USE at once).
//   5. When storing the result or releasing the key fails (the store is
//      unreachable at that moment), the caller still gets the real result at
//      once, and the write is retried in the background with backoff
//      (Options) until it lands, the lease token no longer holds the key, or
//      the attempts run out (each retry counted by the observer's
//      OnIdempotencyStoreRetry). Only a write that never lands leaves the key
//      to be settled as abandoned (UNKNOWN) when its lease ends. A retried
//      write carries the original lease token, so it can never overwrite a
//      record another call now holds.
// Errors of its own (all with a google.rpc.ErrorInfo, domain gateway.clink):
//   ALREADY_EXISTS      IDEMPOTENCY_KEY_REUSED: the key was used for a
//                       different request (another body); nothing sent.
//   ABORTED             IDEMPOTENCY_KEY_IN_USE: the first call with the key is
//                       still running at the caller's deadline, or so many
//                       calls already wait for it (or for any key) that this
//                       one may not (the store's waiter caps); outcome
//                       unknown, nothing sent by this call, with a RetryInfo:
//                       retry with the same key.
//   UNAVAILABLE         IDEMPOTENCY_STORE_UNAVAILABLE: the store cannot be
//                       reached; nothing sent (fail closed). Not for RPCs Clink
//                       deduplicates itself (CreateRefund, by
//                       refund_merchant_order_id): those go ahead.
//   RESOURCE_EXHAUSTED  IDEMPOTENCY_STORE_FULL: the in-memory store is full
//                       of live keys (size it to a day of keyed calls, or use
//                       Redis); nothing sent.
//   UNKNOWN             IDEMPOTENT_CALL_ABANDONED: the gateway that ran the
//                       first call stopped before its outcome was known.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENT_CLINK_API_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENT_CLINK_API_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/upstream_observer.h"
#include "adapters/idempotency/idempotency_store.h"

namespace clink_gateway::clink {

// Whether a call's final `status`, whose outcome is `outcome`
// (CallResult::outcome), is stored for replay (true) or the key released so
// the next call runs (false). See step 3 above.
bool IsFinalForIdempotency(const absl::Status& status, errors::Outcome outcome,
                           bool idempotent_upstream);

// Hex SHA-256 of the method's full name and the request's deterministic
// serialization: what "the same request" means.
std::string RequestHash(const google::protobuf::MethodDescriptor& method,
                        const google::protobuf::Message& request);

// Told when a keyed call's UNKNOWN result was stored (the store accepted it),
// before the caller is answered: OutcomeReconciler looks for what happened.
class UnknownOutcomeListener {
 public:
  virtual ~UnknownOutcomeListener() = default;
  // `request` is only read during the call; `request_hash` is RequestHash()
  // of it, `stored` the result now in the store. Must not block.
  virtual void OnUnknownOutcomeStored(
      const RestMethod& method, const google::protobuf::Message& request,
      const idempotency::IdempotencyKey& key, absl::string_view request_hash,
      const idempotency::StoredResult& stored) = 0;
};

class IdempotentClinkApi final : public ClinkApi {
 public:
  // Background retries of store writes that failed (step 5 above).
  struct Options {
    // Delay before the first retry; doubles up to max_backoff.
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    // No retry starts later than this after the first failure. Keep it under
    // the store's in-flight lease less the longest call (the gateway's lease
    // is max_rpc_timeout + 1 min): past the lease the key is abandoned anyway.
    absl::Duration retry_for = absl::Seconds(50);
    // Writes waiting to be retried at most; a failure beyond that is given up
    // at once (counted gave_up).
    size_t max_pending = 10000;
    // Told about every UNKNOWN result stored by a call (not by a background
    // retry of the write); null for none. Must outlive this object.
    UnknownOutcomeListener* unknown_outcomes = nullptr;
  };

  // All references (and `observer`, told what happened to each keyed call;
  // null means none) must outlive this object.
  IdempotentClinkApi(const RestCodec& codec, ClinkApi& inner,
                     idempotency::IdempotencyStore& store,
                     UpstreamObserver* observer = nullptr);
  IdempotentClinkApi(const RestCodec& codec, ClinkApi& inner,
                     idempotency::IdempotencyStore& store,
                     UpstreamObserver* observer, Options options);
  // Gives every write still waiting for a retry one last attempt at once and
  // waits for the store to answer them (and any attempt in progress). No call
  // may be in progress.
  ~IdempotentClinkApi() override;

  IdempotentClinkApi(const IdempotentClinkApi&) = delete;
  IdempotentClinkApi& operator=(const IdempotentClinkApi&) = delete;

  void Call(const RestMethod& method, const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override;

 private:
  struct KeyedCall;
  class WriteRetrier;

  void OnBegin(std::shared_ptr<KeyedCall> call,
               absl::StatusOr<idempotency::BeginResult> begun);
  void RunClaimed(std::shared_ptr<KeyedCall> call, std::string lease_token);

  const RestCodec& codec_;
  ClinkApi& inner_;
  idempotency::IdempotencyStore& store_;
  UpstreamObserver& observer_;
  UnknownOutcomeListener* const unknown_outcomes_;
  // Last: its destructor finishes the retries while the rest still exists.
  std::unique_ptr<WriteRetrier> retrier_;
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_IDEMPOTENT_CLINK_API_H_
