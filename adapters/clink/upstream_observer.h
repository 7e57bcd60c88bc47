// What the Clink adapters report about their traffic, for metrics. The
// adapters know nothing of Prometheus: server/metrics_upstream_observer.cc
// implements this interface, and tests can record the calls.
//
// Every method is called on the thread where the event happens (the HTTP
// transport's loop thread, or the caller's thread for calls refused before
// anything is sent), possibly from several threads at once. Implementations
// must be thread-safe, cheap (a few atomic increments) and must never block.
// The defaults do nothing.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_UPSTREAM_OBSERVER_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_UPSTREAM_OBSERVER_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/clink/error_mapping.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/http/http_types.h"

namespace clink_gateway::clink {

// One HTTP attempt toward Clink (a call makes several when it is retried).
struct AttemptInfo {
  const RestMethod* method = nullptr;  // Never null.
  // The HTTP status Clink answered with; 0 when no complete response arrived
  // (then `failure` says why).
  int http_status = 0;
  http::FailureKind failure = http::FailureKind::kNone;
  // The request (possibly) left the gateway: false for attempts that failed
  // before sending (deadline, connect failure, shutdown, invalid request).
  bool sent = false;
  // New connections the attempt opened; 0 with `sent` means it reused a
  // pooled connection.
  int connections_opened = 0;
  // Response bytes received (headers and body).
  int64_t response_bytes = 0;
  // From the attempt's start (after any backoff or rate-limit wait) to its
  // result.
  absl::Duration duration;
  // Clink's own rate limit refused it (HTTP 429, or envelope code 429).
  bool throttled = false;
  // CallOptions::caller of the call (empty: anonymous); unbounded, for the
  // observer to map to a bounded label. Valid during OnAttempt only.
  absl::string_view caller;
};

// Why a call was refused before anything was sent to Clink
// (RESOURCE_EXHAUSTED; ErrorInfo reason GATEWAY_OVERLOADED or
// UPSTREAM_RATE_LIMITED).
enum class RejectReason {
  kOverloaded,   // ClinkClientOptions::max_in_flight reached: "overloaded".
  kRateLimited,  // The client-side rate limit had no room: "rate_limited".
};
absl::string_view RejectReasonName(RejectReason reason);

// Why a retryable failure was not retried.
enum class RetryDenial {
  kBudget,       // The retry budget is spent.                    "budget"
  kDeadline,     // No room for the wait and an attempt.          "deadline"
  kMaxAttempts,  // RetryOptions::max_attempts reached.           "max_attempts"
  kRetryAfter,   // Clink's Retry-After exceeds max_retry_after.  "retry_after"
  kRateLimited,  // The client-side rate limit had no room.       "rate_limited"
};
absl::string_view RetryDenialName(RetryDenial denial);

// What the idempotency layer did with a keyed call.
enum class IdempotencyResult {
  kClaimed,     // First call with the key: it runs.          "claimed"
  kReplayed,    // Answered from the store.                   "replayed"
  kMismatched,  // Key already used for another request.      "mismatched"
  kInUse,       // The first call was still running.          "in_use"
  kStoreError,  // The store failed or is full (begin, write). "store_error"
};
absl::string_view IdempotencyResultName(IdempotencyResult result);

// A write that ends a keyed call in the idempotency store.
enum class StoreWrite {
  kComplete,  // The call's final result is stored.   "complete"
  kRelease,   // The key is freed for the retry.       "release"
};
absl::string_view StoreWriteName(StoreWrite write);

// What one background retry of a failed store write did.
enum class StoreRetryResult {
  kOk,       // It landed.                                          "ok"
  kNotHeld,  // The lease token no longer holds the key (an earlier
             // attempt landed after all, or the lease ended).      "not_held"
  kFailed,   // It failed; it will be tried again.                  "failed"
  kGaveUp,   // It failed and was the last attempt: the key is
             // settled as abandoned when its lease ends.           "gave_up"
};
absl::string_view StoreRetryResultName(StoreRetryResult result);

class UpstreamObserver {
 public:
  virtual ~UpstreamObserver() = default;

  // A call was admitted (counts toward the in-flight cap) / answered. Each
  // admitted call gets exactly one OnCallFinished.
  virtual void OnCallStarted(const RestMethod& method) {}
  virtual void OnCallFinished(const RestMethod& method) {}
  // Each HTTP attempt's result.
  virtual void OnAttempt(const AttemptInfo& attempt) {}
  // A further attempt is being sent / a retryable failure is not retried.
  virtual void OnRetry(const RestMethod& method) {}
  virtual void OnRetryDenied(const RestMethod& method, RetryDenial reason) {}
  // The call was refused before anything was sent (RESOURCE_EXHAUSTED).
  virtual void OnRejected(const RestMethod& method, RejectReason reason) {}
  // A successful response had `count` (> 0) JSON members no proto field holds
  // (Clink API drift).
  virtual void OnUnknownFields(const RestMethod& method, int count) {}
  // Clink refused the gateway's key or timestamp (never kNone).
  virtual void OnAuthFailure(const RestMethod& method, AuthFailure reason) {}
  // Clink refused key `key_fingerprint` (Secret::Fingerprint()) of
  // `merchant`: HTTP 401 or a key envelope code (401, 80102221-3); not 403.
  virtual void OnKeyRefused(absl::string_view merchant,
                            absl::string_view key_fingerprint) {}
  // A call whose key Clink refused was sent once more with the merchant's
  // other configured key (see ClinkClient); `recovered`: Clink accepted it.
  virtual void OnKeyFallback(absl::string_view merchant, bool recovered) {}
  // A keyed call went through the idempotency layer.
  virtual void OnIdempotency(const RestMethod& method,
                             IdempotencyResult result) {}
  // A background retry of a store write that had failed (each attempt once;
  // from the retrying thread).
  virtual void OnIdempotencyStoreRetry(StoreWrite write,
                                       StoreRetryResult result) {}
};

// An observer that does nothing (what the adapters use when given none).
UpstreamObserver& NoUpstreamObserver();

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_UPSTREAM_OBSERVER_H_
