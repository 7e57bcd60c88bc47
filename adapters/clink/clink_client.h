// ClinkApi over the REST codec and an HttpTransport, with the gateway's
// transport policy: deadline-bounded retries with full jitter and a retry
// budget (retry_policy.h), a cap on calls in flight toward Clink, and an
// optional client-side rate limit (token_bucket.h).
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_CLIENT_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "adapters/clink/clink_api.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/retry_policy.h"
#include "adapters/clink/token_bucket.h"
#include "adapters/clink/upstream_observer.h"
#include "adapters/credentials/key_set.h"
#include "adapters/http/http_transport.h"
#include "common/clock.h"

namespace clink_gateway::clink {

struct ClinkClientOptions {
  RetryOptions retry;
  // Calls in progress toward Clink (from the first attempt to the last answer,
  // backoff waits included). Beyond it a call fails at once with
  // RESOURCE_EXHAUSTED, ErrorInfo reason GATEWAY_OVERLOADED, outcome not_sent,
  // and a RetryInfo of `overload_retry_delay`, instead of queueing without
  // bound. 0 means no cap.
  int max_in_flight = 1000;
  absl::Duration overload_retry_delay = absl::Milliseconds(100);
  // Client-side rate limit toward Clink, in requests (attempts) per second;
  // 0 turns it off. `rate_limit_burst` requests may start back to back.
  double rate_limit_per_second = 0;
  int rate_limit_burst = 20;
  // How long an attempt may wait for a rate-limit token (never beyond the
  // caller's deadline). Longer: RESOURCE_EXHAUSTED, reason
  // UPSTREAM_RATE_LIMITED, outcome not_sent, with a RetryInfo.
  absl::Duration max_rate_limit_wait = absl::Milliseconds(250);
  // Told about every call, attempt, retry and refusal (metrics). Null means
  // none. Must outlive the client.
  UpstreamObserver* observer = nullptr;

  // The merchant account this client calls Clink for (logs and metrics).
  std::string merchant = "default";
  // The merchant's keys. Each call signs every attempt from one snapshot
  // (KeyRing::Current() when the call starts). When Clink refuses a key with
  // HTTP 401 (proof that Clink did not process the request; a key envelope
  // code under any other status, e.g. a 5xx, is counted as a refusal but
  // leaves the outcome open, so it never triggers a resend) and the
  // snapshot has another key, the same request is sent once more, at once,
  // with that key (OnKeyFallback; no retry budget or backoff, it still needs
  // room before the deadline). Null: the transport's own signer, no fallback.
  // Must outlive the client.
  const credentials::KeyRing* keys = nullptr;
  // After a fallback succeeded, new calls start with the key that worked for
  // this long (saving a refused attempt each), then try the signing key again.
  absl::Duration key_preference = absl::Seconds(60);
  // Fed the Date header of each Clink response; null means none. Must outlive
  // the client.
  ClockSkewMonitor* clock_skew = nullptr;
};

class ClinkClient final : public ClinkApi {
 public:
  // `codec`, `transport` and `clock` must outlive the client.
  ClinkClient(const RestCodec& codec, http::HttpTransport& transport,
              const Clock& clock, ClinkClientOptions options = {});

  ClinkClient(const ClinkClient&) = delete;
  ClinkClient& operator=(const ClinkClient&) = delete;

  // See ClinkApi. Encoding failures and overload rejections call `done`
  // inline; everything else from the transport's thread.
  void Call(const RestMethod& method, const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override;

 private:
  struct CallState;

  // `retry`: counted as a retry (OnRetry) when it is not the first attempt;
  // false for the resend with the other key.
  void StartAttempt(std::unique_ptr<CallState> state, absl::Time earliest,
                    bool retry = true);
  void OnAttemptDone(std::unique_ptr<CallState> state, http::HttpResult result);
  // Notes the attempt's key (refusal metrics, the preference after a
  // fallback) and, when Clink `refused` it with an answer that proves
  // `nothing_processed` (HTTP 401) and the call's key set has another key,
  // resends with that key and returns true (`state` is then moved).
  bool TryOtherKey(std::unique_ptr<CallState>& state, CallResult& call,
                   bool refused, bool nothing_processed, absl::Time now);
  void Finish(std::unique_ptr<CallState> state, CallResult result);

  const RestCodec& codec_;
  http::HttpTransport& transport_;
  const Clock& clock_;
  const ClinkClientOptions options_;
  UpstreamObserver& observer_;
  RetryBudget budget_;
  std::unique_ptr<TokenBucket> rate_limit_;  // Null when off.

  std::atomic<int64_t> in_flight_{0};  // For max_in_flight.
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_CLIENT_H_
