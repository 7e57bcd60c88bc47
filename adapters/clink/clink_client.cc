#include "adapters/clink/clink_client.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "adapters/clink/error_mapping.h"
#include "common/errors/error_details.h"
#include "google/rpc/error_details.pb.h"

namespace clink_gateway::clink {
namespace {

// A call the gateway refused before sending anything, to protect Clink or
// itself.
absl::Status NotSentRejection(absl::string_view endpoint,
                              absl::string_view reason,
                              absl::string_view detail,
                              absl::Duration retry_delay) {
  absl::Status status(absl::StatusCode::kResourceExhausted,
                      absl::StrCat("clink ", endpoint, ": ", detail,
                                   "; nothing was sent to Clink"));
  errors::AttachErrorInfo(status, errors::kGatewayDomain, reason,
                          Outcome::kNotSent,
                          {{"endpoint", std::string(endpoint)}});
  errors::AttachRetryInfo(status, retry_delay);
  return status;
}

}  // namespace

struct ClinkClient::CallState {
  const RestMethod* rest = nullptr;
  google::protobuf::Message* response = nullptr;
  Callback done;
  http::HttpRequest request;  // Unsigned; copied for each attempt.
  absl::Time deadline;
  std::string request_id;
  // Reads only (CallOptions::cancelled): the caller gave up.
  std::shared_ptr<const Notification> cancelled;
  bool is_cancelled() const {
    return cancelled != nullptr && cancelled->HasBeenNotified();
  }
  std::string caller;  // CallOptions::caller, for the metrics' caller label.
  int attempts = 0;
  absl::Time attempt_start;
  // An earlier attempt may have reached Clink (its outcome was unknown).
  bool maybe_sent = false;
  CallResult last;  // The previous attempt's result, once there is one.
  // The merchant's keys when the call started (null without a KeyRing): every
  // attempt signs from this one set.
  std::shared_ptr<const credentials::KeySet> keys;
  size_t key_index = 0;  // The key the current attempt is signed with.
  // The one resend with the other key: not yet, awaiting Clink's verdict on
  // that key, or judged.
  enum class Fallback { kNone, kPending, kJudged } fallback = Fallback::kNone;
};

ClinkClient::ClinkClient(const RestCodec& codec, http::HttpTransport& transport,
                         const Clock& clock, ClinkClientOptions options)
    : codec_(codec),
      transport_(transport),
      clock_(clock),
      options_(options),
      observer_(options.observer != nullptr ? *options.observer
                                            : NoUpstreamObserver()),
      budget_(options.retry),
      rate_limit_(
          options.rate_limit_per_second > 0
              ? std::make_unique<TokenBucket>(options.rate_limit_per_second,
                                              options.rate_limit_burst)
              : nullptr) {}

void ClinkClient::Call(const RestMethod& method,
                       const google::protobuf::Message& request,
                       const CallOptions& options,
                       google::protobuf::Message* response, Callback done) {
  const RestMethod* rest = &method;
  // Validated by the caller (ClinkApi::Call); encoding still refuses a path
  // parameter that could change the path.
  absl::StatusOr<http::HttpRequest> http_request =
      codec_.EncodeRequest(*rest, request);
  if (!http_request.ok()) {
    CallResult result;
    result.status = http_request.status();
    result.outcome = Outcome::kNotSent;
    result.endpoint = rest->endpoint;
    std::move(done)(std::move(result));
    return;
  }
  if (options_.max_in_flight > 0 &&
      in_flight_.fetch_add(1, std::memory_order_relaxed) >=
          options_.max_in_flight) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    observer_.OnRejected(*rest, RejectReason::kOverloaded);
    CallResult result;
    result.endpoint = rest->endpoint;
    result.outcome = Outcome::kNotSent;
    result.status = NotSentRejection(
        rest->endpoint, "GATEWAY_OVERLOADED",
        absl::StrCat("the gateway already has ", options_.max_in_flight,
                     " calls in flight to Clink"),
        options_.overload_retry_delay);
    std::move(done)(std::move(result));
    return;
  }
  if (options_.max_in_flight <= 0) {
    in_flight_.fetch_add(1, std::memory_order_relaxed);
  }
  observer_.OnCallStarted(*rest);
  const absl::Time now = clock_.Now();
  budget_.RecordCall(now);

  auto state = std::make_unique<CallState>();
  state->rest = rest;
  state->response = response;
  state->done = std::move(done);
  state->request = *std::move(http_request);
  state->deadline = options.deadline;
  state->request_id = options.request_id;
  // A write is never aborted mid-flight: only reads honour cancellation.
  if (!rest->mutating()) state->cancelled = options.cancelled;
  state->caller = options.caller;
  if (options_.keys != nullptr) {
    state->keys = options_.keys->Current();
    state->key_index = state->keys->preferred(now);
  }
  StartAttempt(std::move(state), now);
}

void ClinkClient::StartAttempt(std::unique_ptr<CallState> state,
                               absl::Time earliest, bool retry) {
  absl::Time start = earliest;
  if (rate_limit_ != nullptr) {
    const absl::Time latest =
        std::min(earliest + options_.max_rate_limit_wait,
                 state->deadline - options_.retry.min_attempt_time);
    const absl::optional<absl::Time> reserved =
        rate_limit_->Reserve(earliest, latest);
    if (!reserved.has_value()) {
      if (state->attempts > 0) {  // A retry: the caller gets the last answer.
        observer_.OnRetryDenied(*state->rest, RetryDenial::kRateLimited);
        CallResult last = std::move(state->last);
        Finish(std::move(state), std::move(last));
        return;
      }
      observer_.OnRejected(*state->rest, RejectReason::kRateLimited);
      CallResult result;
      result.endpoint = state->rest->endpoint;
      result.outcome = Outcome::kNotSent;
      result.status = NotSentRejection(
          state->rest->endpoint, "UPSTREAM_RATE_LIMITED",
          "the gateway's rate limit toward Clink has no room before the "
          "deadline",
          options_.max_rate_limit_wait);
      Finish(std::move(state), std::move(result));
      return;
    }
    start = *reserved;
  }
  if (state->is_cancelled()) {
    // The caller of this read gave up: nothing more is sent.
    CallResult result =
        state->attempts > 0 ? std::move(state->last) : CallResult();
    result.endpoint = state->rest->endpoint;
    result.status = absl::CancelledError(
        absl::StrCat("clink ", state->rest->endpoint,
                     ": the caller cancelled; nothing more was sent"));
    Finish(std::move(state), std::move(result));
    return;
  }
  if (retry && state->attempts > 0) observer_.OnRetry(*state->rest);
  ++state->attempts;
  state->attempt_start = start;
  http::SendOptions send_options;
  send_options.deadline = state->deadline;
  send_options.request_id = state->request_id;
  send_options.not_before = start;
  send_options.cancelled = state->cancelled;
  if (state->keys != nullptr) {
    send_options.signer = &state->keys->signer(state->key_index);
  }
  http::HttpRequest request = state->request;
  transport_.Send(
      std::move(request), std::move(send_options),
      [this, state = std::move(state)](http::HttpResult result) mutable {
        OnAttemptDone(std::move(state), std::move(result));
      });
}

void ClinkClient::OnAttemptDone(std::unique_ptr<CallState> state,
                                http::HttpResult result) {
  const RestMethod& rest = *state->rest;
  const absl::Time now = clock_.Now();
  UpstreamOutcome outcome;
  outcome.endpoint = rest.endpoint;
  outcome.mutating = rest.mutating();
  outcome.idempotent_upstream = rest.idempotent_upstream;
  outcome.transport_status = result.status;
  outcome.delivery = result.delivery;
  outcome.failure = result.failure;
  outcome.egress_reason = result.egress_reason;
  if (state->keys != nullptr) {
    outcome.key_fingerprint = state->keys->fingerprint(state->key_index);
  }
  // This attempt never left, but an earlier one may have: the call as a whole
  // is not "not sent".
  if (state->maybe_sent && outcome.delivery == http::Delivery::kNotSent) {
    outcome.delivery = http::Delivery::kUnknown;
  }
  outcome.now = now;
  outcome.earlier_attempt_maybe_sent = state->maybe_sent;
  CallResult call;
  call.endpoint = rest.endpoint;
  call.attempts = state->attempts;
  int64_t envelope_code = 0;
  AuthFailure auth = AuthFailure::kNone;
  if (result.status.ok()) {
    if (options_.clock_skew != nullptr) {
      options_.clock_skew->OnResponse(result.response.Header("date"),
                                      state->attempt_start, now);
    }
    call.http_status = outcome.http_status = result.response.status_code;
    outcome.retry_after = std::string(result.response.Header("retry-after"));
    // The status first: only a success's payload is decoded into the
    // response. An error answer's envelope (code, msg) is all the error
    // mapping reads, and its payload never reaches the caller.
    const bool success_status =
        outcome.http_status >= 200 && outcome.http_status <= 299;
    Envelope envelope;
    DecodeStats stats;
    const absl::Status decoded =
        success_status
            ? codec_.DecodeResponse(rest, result.response.body, state->response,
                                    &envelope, &stats)
            : codec_.DecodeEnvelope(rest, result.response.body, &envelope);
    outcome.body_readable = decoded.ok();
    outcome.has_envelope_code = envelope.has_code;
    outcome.envelope_code = envelope.code;
    if (envelope.has_code) envelope_code = envelope.code;
    outcome.envelope_msg = std::move(envelope.msg);
    outcome.incomplete =
        envelope.payload_missing || stats.unreadable_amounts > 0 ||
        stats.values_too_deep > 0 || stats.unreadable_strings > 0;
    call.unknown_fields = stats.unknown_fields;
    if (stats.unknown_fields > 0) {
      observer_.OnUnknownFields(rest, stats.unknown_fields);
    }
    auth = AuthFailureOf(outcome.http_status, decoded.ok() && envelope.has_code,
                         envelope_code);
    if (auth != AuthFailure::kNone) observer_.OnAuthFailure(rest, auth);
  }
  AttemptInfo attempt;
  attempt.method = &rest;
  attempt.http_status = call.http_status;
  attempt.failure = result.failure;
  attempt.sent = result.delivery != http::Delivery::kNotSent;
  attempt.connections_opened = result.connections_opened;
  attempt.response_bytes = result.response_bytes;
  // Zero for an attempt that failed before its (delayed) start.
  attempt.duration = std::max(now - state->attempt_start, absl::ZeroDuration());
  attempt.throttled = call.http_status == 429 || envelope_code == 429;
  attempt.caller = state->caller;
  observer_.OnAttempt(attempt);
  UpstreamVerdict verdict = MapUpstreamOutcome(outcome);
  call.status = std::move(verdict.status);
  call.outcome = verdict.outcome;
  // 401 (or a key-refused envelope code): Clink refused the key itself. A 403
  // (the key lacks a permission) is no reason to try another key.
  const bool key_refused = auth == AuthFailure::kApiKey &&
                           call.http_status != 403 && envelope_code != 403;
  // Only an HTTP 401 proves that Clink processed nothing. A key-refused
  // envelope code inside a 5xx (or any other status) leaves the outcome open:
  // resending a payment then could charge it twice.
  const bool nothing_processed = key_refused && call.http_status == 401;
  if (state->is_cancelled()) {
    // Aborted for a caller that is gone: neither retried nor resent.
    if (!call.status.ok()) state->response->Clear();
    Finish(std::move(state), std::move(call));
    return;
  }
  if (state->keys != nullptr &&
      TryOtherKey(state, call, key_refused, nothing_processed, now)) {
    return;
  }
  if (call.status.ok()) {
    Finish(std::move(state), std::move(call));
    return;
  }
  // Only a success status's decode wrote into the response; an incomplete
  // answer's partial payload must not reach the caller either.
  state->response->Clear();
  if (call.outcome == Outcome::kUnknown) state->maybe_sent = true;

  if (IsRetryable(rest.mutating(), rest.idempotent_upstream, result,
                  envelope_code)) {
    if (state->attempts >= options_.retry.max_attempts) {
      observer_.OnRetryDenied(rest, RetryDenial::kMaxAttempts);
      Finish(std::move(state), std::move(call));
      return;
    }
    thread_local absl::BitGen gen;
    absl::Duration delay = Backoff(options_.retry, state->attempts, gen);
    absl::optional<RetryDenial> denial;
    if (!outcome.retry_after.empty()) {
      const absl::Duration retry_after =
          ParseRetryAfter(outcome.retry_after, now);
      if (retry_after > options_.retry.max_retry_after) {
        denial = RetryDenial::kRetryAfter;
      }
      delay = std::max(delay, retry_after);
    }
    // Room for the wait and a whole attempt (as long as the last one took, at
    // least min_attempt_time) before the deadline.
    const absl::Duration attempt_time =
        std::max(now - state->attempt_start, options_.retry.min_attempt_time);
    if (!denial.has_value() && now + delay + attempt_time > state->deadline) {
      denial = RetryDenial::kDeadline;
    }
    if (!denial.has_value() && !budget_.TryRetry(now)) {
      denial = RetryDenial::kBudget;
    }
    if (denial.has_value()) {
      observer_.OnRetryDenied(rest, *denial);
    } else {
      state->last = std::move(call);
      StartAttempt(std::move(state), now + delay);
      return;
    }
  }
  Finish(std::move(state), std::move(call));
}

bool ClinkClient::TryOtherKey(std::unique_ptr<CallState>& state,
                              CallResult& call, bool refused,
                              bool nothing_processed, absl::Time now) {
  const credentials::KeySet& keys = *state->keys;
  const std::string& fingerprint = keys.fingerprint(state->key_index);
  call.key_fingerprint = fingerprint;
  if (refused) observer_.OnKeyRefused(options_.merchant, fingerprint);
  if (state->fallback == CallState::Fallback::kPending &&
      call.http_status != 0) {
    // Clink's verdict on the other key.
    state->fallback = CallState::Fallback::kJudged;
    observer_.OnKeyFallback(options_.merchant, !refused);
    if (!refused) {
      keys.Prefer(state->key_index, now + options_.key_preference);
    }
  }
  if (!nothing_processed || state->fallback != CallState::Fallback::kNone ||
      keys.size() < 2 ||
      now + options_.retry.min_attempt_time > state->deadline) {
    return false;
  }
  // Clink refused the key, so it did not process the request: the same
  // request goes again at once, signed with the other key.
  state->fallback = CallState::Fallback::kPending;
  state->key_index = 1 - state->key_index;
  state->response->Clear();
  state->last = std::move(call);
  StartAttempt(std::move(state), now, /*retry=*/false);
  return true;
}

void ClinkClient::Finish(std::unique_ptr<CallState> state, CallResult result) {
  Callback done = std::move(state->done);
  const RestMethod& rest = *state->rest;
  state.reset();
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  observer_.OnCallFinished(rest);
  std::move(done)(std::move(result));
}

}  // namespace clink_gateway::clink
