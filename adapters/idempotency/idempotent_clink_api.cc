#include "adapters/idempotency/idempotent_clink_api.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/clink/error_mapping.h"
#include "common/errors/error_details.h"
#include "common/logging.h"
#include "common/sha256.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/rpc/error_details.pb.h"

namespace clink_gateway::clink {
namespace {

// How soon a caller that gave up waiting for the first call should try again.
constexpr absl::Duration kInUseRetryDelay = absl::Seconds(1);

CallResult ResultOf(absl::string_view endpoint, absl::Status status,
                    Outcome outcome) {
  CallResult result;
  result.endpoint = std::string(endpoint);
  result.status = std::move(status);
  result.outcome = outcome;
  return result;
}

// An error of the idempotency layer's own (domain gateway.clink).
CallResult GatewayError(absl::StatusCode code, absl::string_view endpoint,
                        absl::string_view reason, Outcome outcome,
                        absl::string_view message) {
  absl::Status status(code, absl::StrCat("clink ", endpoint, ": ", message));
  errors::AttachErrorInfo(status, errors::kGatewayDomain, reason, outcome,
                          {{"endpoint", std::string(endpoint)}});
  return ResultOf(endpoint, std::move(status), outcome);
}

// What is stored for a final `status` of `method`: the response when it is
// OK, without its sensitive fields (FieldRule.sensitive: a webhook signing
// secret goes to the first caller only, never into the store; a replay
// answers with the field empty).
idempotency::StoredResult StoredOf(const RestMethod& method,
                                   const absl::Status& status,
                                   const google::protobuf::Message& response) {
  idempotency::StoredResult stored;
  stored.status = status;
  if (!status.ok()) return stored;
  if (!method.sensitive_response) {
    stored.response = response.SerializeAsString();
    return stored;
  }
  std::unique_ptr<google::protobuf::Message> redacted(response.New());
  redacted->CopyFrom(response);
  ClearSensitiveFields(redacted.get());
  stored.response = redacted->SerializeAsString();
  return stored;
}

}  // namespace

// Retries store writes (Complete, Release) whose first attempt failed, on its
// own thread, with backoff, until each lands, is refused because its lease
// token no longer holds the key, or runs out of time.
class IdempotentClinkApi::WriteRetrier {
 public:
  WriteRetrier(idempotency::IdempotencyStore& store, UpstreamObserver& observer,
               const Options& options)
      : store_(store),
        observer_(observer),
        options_(options),
        thread_([this] { Loop(); }) {}

  ~WriteRetrier() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    thread_.join();
    // One last attempt for every write still waiting (it fails for good if
    // the store is still down), then wait for the store's answers.
    std::multimap<absl::Time, std::unique_ptr<Write>> rest;
    {
      std::lock_guard<std::mutex> lock(mu_);
      rest.swap(due_);
      in_flight_ += rest.size();
    }
    for (auto& [when, write] : rest) Attempt(std::move(write));
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return in_flight_ == 0; });
  }

  WriteRetrier(const WriteRetrier&) = delete;
  WriteRetrier& operator=(const WriteRetrier&) = delete;

  // A write whose first attempt failed with `error` (not kFailedPrecondition);
  // `result` is set for a Complete.
  void Add(StoreWrite kind, idempotency::IdempotencyKey key,
           std::string lease_token,
           std::optional<idempotency::StoredResult> result,
           std::string endpoint) {
    auto write = std::make_unique<Write>();
    write->kind = kind;
    write->key = std::move(key);
    write->lease_token = std::move(lease_token);
    write->result = std::move(result);
    write->endpoint = std::move(endpoint);
    const absl::Time now = absl::Now();
    write->give_up_at = now + options_.retry_for;
    write->backoff = options_.initial_backoff;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && due_.size() + in_flight_ < options_.max_pending) {
        Schedule(std::move(write), now);
        return;
      }
    }
    Finish(*write, StoreRetryResult::kGaveUp,
           absl::ResourceExhaustedError("too many store writes to retry"));
  }

 private:
  struct Write {
    StoreWrite kind = StoreWrite::kRelease;
    idempotency::IdempotencyKey key;
    std::string lease_token;
    std::optional<idempotency::StoredResult> result;  // kComplete only.
    std::string endpoint;
    absl::Time give_up_at;
    absl::Duration backoff;
    int attempts = 0;
  };

  // mu_ held.
  void Schedule(std::unique_ptr<Write> write, absl::Time now) {
    const absl::Time when = now + write->backoff;
    write->backoff = std::min(write->backoff * 2, options_.max_backoff);
    due_.emplace(when, std::move(write));
    cv_.notify_all();
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      if (due_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const absl::Time now = absl::Now();
      if (due_.begin()->first > now) {
        cv_.wait_for(lock,
                     absl::ToChronoNanoseconds(due_.begin()->first - now));
        continue;
      }
      std::unique_ptr<Write> write = std::move(due_.begin()->second);
      due_.erase(due_.begin());
      ++in_flight_;
      lock.unlock();
      Attempt(std::move(write));
      lock.lock();
    }
  }

  // Counted in in_flight_ by the caller; OnResult uncounts it.
  void Attempt(std::unique_ptr<Write> write) {
    ++write->attempts;
    // The store reads these during the call only; the callback owns `write`
    // and may run inline.
    const idempotency::IdempotencyKey key = write->key;
    const std::string lease_token = write->lease_token;
    if (write->kind == StoreWrite::kComplete) {
      idempotency::StoredResult result = *write->result;
      store_.Complete(
          key, lease_token, std::move(result),
          [this, write = std::move(write)](absl::Status status) mutable {
            OnResult(std::move(write), std::move(status));
          });
    } else {
      store_.Release(
          key, lease_token,
          [this, write = std::move(write)](absl::Status status) mutable {
            OnResult(std::move(write), std::move(status));
          });
    }
  }

  void OnResult(std::unique_ptr<Write> write, absl::Status status) {
    StoreRetryResult result = StoreRetryResult::kGaveUp;
    if (status.ok()) {
      result = StoreRetryResult::kOk;
    } else if (status.code() == absl::StatusCode::kFailedPrecondition) {
      result = StoreRetryResult::kNotHeld;
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      const absl::Time now = absl::Now();
      if (!stopping_ && now + write->backoff <= write->give_up_at) {
        observer_.OnIdempotencyStoreRetry(write->kind,
                                          StoreRetryResult::kFailed);
        Schedule(std::move(write), now);
        --in_flight_;
        return;
      }
    }
    Finish(*write, result, status);
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    cv_.notify_all();
  }

  // A write's last word: counted and logged.
  void Finish(const Write& write, StoreRetryResult result,
              const absl::Status& status) {
    observer_.OnIdempotencyStoreRetry(write.kind, result);
    const std::string operation(StoreWriteName(write.kind));
    const std::string attempts = absl::StrCat(write.attempts);
    switch (result) {
      case StoreRetryResult::kOk:
        Log(LogLevel::kInfo, "idempotency_store_write_recovered",
            {{"endpoint", write.endpoint},
             {"operation", operation},
             {"retries", attempts}});
        return;
      case StoreRetryResult::kNotHeld:
        // An attempt whose answer was lost landed after all, or the lease
        // ended first: either way the record is not this write's to change.
        Log(LogLevel::kWarning, "idempotency_store_write_not_held",
            {{"endpoint", write.endpoint},
             {"operation", operation},
             {"retries", attempts}});
        return;
      case StoreRetryResult::kFailed:
      case StoreRetryResult::kGaveUp:
        Log(LogLevel::kError, "idempotency_store_write_given_up",
            {{"endpoint", write.endpoint},
             {"operation", operation},
             {"retries", attempts},
             {"error", std::string(status.message())},
             {"consequence",
              "the key stays in flight until its lease ends; retries with it "
              "are then told UNKNOWN (IDEMPOTENT_CALL_ABANDONED)"}});
        return;
    }
  }

  idempotency::IdempotencyStore& store_;
  UpstreamObserver& observer_;
  const Options options_;

  std::mutex mu_;
  std::condition_variable cv_;
  // Everything below up to thread_: mu_.
  std::multimap<absl::Time, std::unique_ptr<Write>> due_;
  // Attempts whose answer has not come yet.
  size_t in_flight_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // Last: starts once everything above exists.
};

bool IsFinalForIdempotency(const absl::Status& status, Outcome outcome,
                           bool idempotent_upstream) {
  if (status.ok()) return true;
  switch (outcome) {
    case Outcome::kCommitted:
      return true;
    case Outcome::kUnknown:
      // Clink deduplicates these calls itself (a refund's reference): running
      // the retry is safe and finds out what happened; a stored UNKNOWN would
      // not.
      return !idempotent_upstream;
    case Outcome::kNotSent:
      return false;
    case Outcome::kRejected:
      break;
  }
  // Refused without a Clink envelope code: a bare HTTP 4xx from a proxy, a
  // load balancer or Clink's web server, before any of Clink's own logic.
  // Nothing was processed and it is not Clink's verdict on the request, so
  // the key is freed rather than holding that answer for the retention
  // period.
  const absl::optional<google::rpc::ErrorInfo> info =
      errors::GetErrorInfo(status);
  if (info.has_value() && info->domain() == errors::kGatewayDomain)
    return false;
  // Clink answered and did nothing. Only refusals that would repeat are the
  // answer; anything else (rate limit, conflict, the gateway's own key or
  // clock refused, codes the gateway does not know) is worth running again.
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:
      return true;
    default:
      return false;
  }
}

std::string RequestHash(const google::protobuf::MethodDescriptor& method,
                        const google::protobuf::Message& request) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  // The method name, a NUL (never in a name), then the request bytes.
  return Sha256Hex(
      absl::StrCat(method.full_name(), absl::string_view("\0", 1), bytes));
}

struct IdempotentClinkApi::KeyedCall {
  const RestMethod* rest = nullptr;
  std::unique_ptr<google::protobuf::Message> request;  // A copy.
  CallOptions options;
  google::protobuf::Message* response = nullptr;
  Callback done;
  idempotency::IdempotencyKey key;
  std::string request_hash;
};

IdempotentClinkApi::IdempotentClinkApi(const RestCodec& codec, ClinkApi& inner,
                                       idempotency::IdempotencyStore& store,
                                       UpstreamObserver* observer)
    : IdempotentClinkApi(codec, inner, store, observer, Options()) {}

IdempotentClinkApi::IdempotentClinkApi(const RestCodec& codec, ClinkApi& inner,
                                       idempotency::IdempotencyStore& store,
                                       UpstreamObserver* observer,
                                       Options options)
    : codec_(codec),
      inner_(inner),
      store_(store),
      observer_(observer != nullptr ? *observer : NoUpstreamObserver()),
      unknown_outcomes_(options.unknown_outcomes),
      retrier_(std::make_unique<WriteRetrier>(store, observer_, options)) {}

IdempotentClinkApi::~IdempotentClinkApi() = default;

void IdempotentClinkApi::Call(const RestMethod& method,
                              const google::protobuf::Message& request,
                              const CallOptions& options,
                              google::protobuf::Message* response,
                              Callback done) {
  const RestMethod* rest = &method;
  // Reads ignore the key. The request was validated by the caller (ClinkApi),
  // so an invalid one never reaches the store.
  if (options.idempotency_key.empty() || !rest->mutating()) {
    inner_.Call(method, request, options, response, std::move(done));
    return;
  }
  auto call = std::make_shared<KeyedCall>();
  call->rest = rest;
  call->request.reset(request.New());
  call->request->CopyFrom(request);
  call->options = options;
  call->response = response;
  call->done = std::move(done);
  call->key.caller = options.caller;
  call->key.rpc = method.method->full_name();
  call->key.key = options.idempotency_key;
  call->key.merchant = options.merchant;
  call->request_hash = RequestHash(*method.method, request);
  const std::string& hash = call->request_hash;
  store_.Begin(call->key, hash, options.deadline,
               [this, call](absl::StatusOr<idempotency::BeginResult> begun) {
                 OnBegin(call, std::move(begun));
               });
}

void IdempotentClinkApi::OnBegin(
    std::shared_ptr<KeyedCall> call,
    absl::StatusOr<idempotency::BeginResult> begun) {
  const std::string& endpoint = call->rest->endpoint;
  if (!begun.ok()) {
    observer_.OnIdempotency(*call->rest, IdempotencyResult::kStoreError);
    if (call->rest->idempotent_upstream) {
      // Clink deduplicates this call itself (a refund's
      // refund_merchant_order_id): going ahead cannot act twice.
      inner_.Call(*call->rest, *call->request, call->options, call->response,
                  std::move(call->done));
      return;
    }
    const bool full =
        begun.status().code() == absl::StatusCode::kResourceExhausted;
    // The store's own message (its address, the client library's error) is
    // for the operator's log, not for callers.
    Log(LogLevel::kWarning, "idempotency_store_unavailable",
        {{"endpoint", endpoint},
         {"error", std::string(begun.status().message())}});
    CallResult result = GatewayError(
        full ? absl::StatusCode::kResourceExhausted
             : absl::StatusCode::kUnavailable,
        endpoint,
        full ? "IDEMPOTENCY_STORE_FULL" : "IDEMPOTENCY_STORE_UNAVAILABLE",
        Outcome::kNotSent,
        full ? "the gateway's idempotency store is full of live keys; "
               "nothing was sent to Clink"
             : "the gateway's idempotency store cannot be reached; nothing "
               "was sent to Clink, retry with the same key");
    std::move(call->done)(std::move(result));
    return;
  }
  switch (begun->kind) {
    case idempotency::BeginResult::Kind::kClaimed:
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kClaimed);
      RunClaimed(std::move(call), std::move(begun->lease_token));
      return;
    case idempotency::BeginResult::Kind::kCompleted: {
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kReplayed);
      const Outcome outcome = idempotency::OutcomeOfStored(begun->result);
      CallResult result =
          ResultOf(endpoint, std::move(begun->result.status), outcome);
      result.replayed = true;
      call->response->Clear();
      if (result.status.ok() &&
          !call->response->ParseFromString(begun->result.response)) {
        result = GatewayError(
            absl::StatusCode::kInternal, endpoint,
            "IDEMPOTENCY_RECORD_UNREADABLE", Outcome::kCommitted,
            "the stored result of the first call with this key cannot be "
            "read; the call took effect at Clink, look it up");
        result.replayed = true;
      }
      std::move(call->done)(std::move(result));
      return;
    }
    case idempotency::BeginResult::Kind::kMismatch:
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kMismatched);
      std::move(call->done)(
          GatewayError(absl::StatusCode::kAlreadyExists, endpoint,
                       "IDEMPOTENCY_KEY_REUSED", Outcome::kNotSent,
                       "this idempotency key was already used for a different "
                       "request; nothing was sent to Clink (use a new key for "
                       "a new request)"));
      return;
    case idempotency::BeginResult::Kind::kInProgress: {
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kInUse);
      CallResult result = GatewayError(
          absl::StatusCode::kAborted, endpoint, "IDEMPOTENCY_KEY_IN_USE",
          Outcome::kUnknown,
          "the first call with this idempotency key is still in progress; "
          "retry with the same key to get its result");
      errors::AttachRetryInfo(result.status, kInUseRetryDelay);
      std::move(call->done)(std::move(result));
      return;
    }
  }
}

void IdempotentClinkApi::RunClaimed(std::shared_ptr<KeyedCall> call,
                                    std::string lease_token) {
  KeyedCall& c = *call;
  inner_.Call(
      *c.rest, *c.request, c.options, c.response,
      [this, call = std::move(call),
       lease_token = std::move(lease_token)](CallResult result) mutable {
        // Answer the caller once the store knows, so an immediate retry finds
        // the result (or the key free again) rather than a stale claim.
        const bool final_result = IsFinalForIdempotency(
            result.status, result.outcome, call->rest->idempotent_upstream);
        idempotency::StoredResult stored;
        if (final_result) stored = StoredOf(*call->rest, result.status, *call->response);
        const idempotency::IdempotencyKey key = call->key;
        auto finish = [this, call, final_result, lease_token,
                       result =
                           std::move(result)](absl::Status written) mutable {
          if (!written.ok()) {
            observer_.OnIdempotency(*call->rest,
                                    IdempotencyResult::kStoreError);
            const bool retry =
                written.code() != absl::StatusCode::kFailedPrecondition;
            Log(LogLevel::kWarning, "idempotency_store_write_failed",
                {{"endpoint", call->rest->endpoint},
                 {"operation", final_result ? "complete" : "release"},
                 {"error", std::string(written.message())},
                 {"retry", retry ? "background" : "no (key not held)"}});
            if (retry) {
              // The caller still gets the real result now; the write is
              // retried with the same lease token until it lands (else the
              // key would stay claimed until its lease ends and then be
              // settled as abandoned: UNKNOWN for a call that may never have
              // been sent).
              retrier_->Add(
                  final_result ? StoreWrite::kComplete : StoreWrite::kRelease,
                  call->key, lease_token,
                  final_result ? std::optional<idempotency::StoredResult>(
                                     StoredOf(*call->rest, result.status, *call->response))
                               : std::nullopt,
                  call->rest->endpoint);
            }
          }
          if (written.ok() && final_result && !result.status.ok() &&
              result.outcome == Outcome::kUnknown &&
              unknown_outcomes_ != nullptr) {
            unknown_outcomes_->OnUnknownOutcomeStored(
                *call->rest, *call->request, call->key, call->request_hash,
                StoredOf(*call->rest, result.status, *call->response));
          }
          std::move(call->done)(std::move(result));
        };
        if (final_result) {
          store_.Complete(key, lease_token, std::move(stored),
                          std::move(finish));
        } else {
          store_.Release(key, lease_token, std::move(finish));
        }
      });
}

}  // namespace clink_gateway::clink
