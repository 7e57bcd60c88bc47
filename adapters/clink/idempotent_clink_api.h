// Idempotency keys for mutating RPCs: a ClinkApi decorator that makes sure a
// keyed call reaches Clink at most once, however often (and on however many
// gateway replicas) the caller retries it. Clink itself does not deduplicate
// payment creation (merchantReferenceId is not an idempotency key), so this is
// what stops a retried CreatePayment from charging twice.
//
// For a call whose CallOptions carry an idempotency_key, on an RPC whose Clink
// endpoint is a POST/PUT/DELETE (reads ignore the key: they are safe to
// repeat):
//   1. The request is validated first (INVALID_ARGUMENT touches nothing).
//   2. The key, scoped by (caller, RPC, merchant), is claimed in the IdempotencyStore
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
//      the first, up to their deadline.
// Errors of its own (all with a google.rpc.ErrorInfo, domain gateway.clink):
//   ALREADY_EXISTS      IDEMPOTENCY_KEY_REUSED: the key was used for a
//                       different request (another body); nothing sent.
//   ABORTED             IDEMPOTENCY_KEY_IN_USE: the first call with the key is
//                       still running at the caller's deadline; outcome
//                       unknown, with a RetryInfo: retry with the same key.
//   UNAVAILABLE         IDEMPOTENCY_STORE_UNAVAILABLE: the store cannot be
//                       reached; nothing sent (fail closed). Not for RPCs Clink
//                       deduplicates itself (CreateRefund, by
//                       refund_merchant_order_id): those go ahead.
//   RESOURCE_EXHAUSTED  IDEMPOTENCY_STORE_FULL: the in-memory store is full
//                       of live keys (size it to a day of keyed calls, or use
//                       Redis); nothing sent.
//   UNKNOWN             IDEMPOTENT_CALL_ABANDONED: the gateway that ran the
//                       first call stopped before its outcome was known.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_IDEMPOTENT_CLINK_API_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_IDEMPOTENT_CLINK_API_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/upstream_observer.h"
#include "adapters/idempotency/idempotency_store.h"

namespace clink_gateway::clink {

// Whether `status` (a call's final status) is stored for replay (true) or the
// key released so the next call runs (false). See step 3 above.
bool IsFinalForIdempotency(const absl::Status& status,
                           bool idempotent_upstream);

// Hex SHA-256 of the method's full name and the request's deterministic
// serialization: what "the same request" means.
std::string RequestHash(const google::protobuf::MethodDescriptor& method,
                        const google::protobuf::Message& request);

class IdempotentClinkApi final : public ClinkApi {
 public:
  struct Stats {
    int64_t claimed = 0;     // First calls with a key.
    int64_t replayed = 0;    // Answered from the store.
    int64_t mismatched = 0;  // Key reused for a different request.
    int64_t in_use = 0;      // Gave up waiting for the first call.
    int64_t store_errors = 0;
  };

  // All references (and `observer`, told what happened to each keyed call;
  // null means none) must outlive this object.
  IdempotentClinkApi(const RestCodec& codec, ClinkApi& inner,
                     idempotency::IdempotencyStore& store,
                     UpstreamObserver* observer = nullptr);

  void Call(const google::protobuf::MethodDescriptor& method,
            const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override;

  Stats stats() const;

 private:
  struct KeyedCall;

  void OnBegin(std::shared_ptr<KeyedCall> call,
               absl::StatusOr<idempotency::BeginResult> begun);
  void RunClaimed(std::shared_ptr<KeyedCall> call, std::string lease_token);

  const RestCodec& codec_;
  ClinkApi& inner_;
  idempotency::IdempotencyStore& store_;
  UpstreamObserver& observer_;
  std::atomic<int64_t> claimed_{0};
  std::atomic<int64_t> replayed_{0};
  std::atomic<int64_t> mismatched_{0};
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> store_errors_{0};
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_IDEMPOTENT_CLINK_API_H_
