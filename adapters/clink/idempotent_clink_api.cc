#include "adapters/clink/idempotent_clink_api.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "adapters/clink/error_details.h"
#include "adapters/clink/error_mapping.h"
#include "adapters/clink/validation.h"
#include "common/logging.h"
#include "common/sha256.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/rpc/error_details.pb.h"

namespace clink_gateway::clink {
namespace {

// How soon a caller that gave up waiting for the first call should try again.
constexpr absl::Duration kInUseRetryDelay = absl::Seconds(1);

absl::Status GatewayError(absl::StatusCode code, absl::string_view endpoint,
                          absl::string_view reason, Outcome outcome,
                          absl::string_view message) {
  absl::Status status(code, absl::StrCat("clink ", endpoint, ": ", message));
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(std::string(kGatewayDomain));
  (*info.mutable_metadata())["outcome"] = std::string(OutcomeName(outcome));
  (*info.mutable_metadata())["endpoint"] = std::string(endpoint);
  AttachErrorInfo(status, info);
  return status;
}

CallResult ResultOf(absl::string_view endpoint, absl::Status status) {
  CallResult result;
  result.endpoint = std::string(endpoint);
  result.status = std::move(status);
  return result;
}

}  // namespace

bool IsFinalForIdempotency(const absl::Status& status,
                           bool idempotent_upstream) {
  switch (OutcomeOf(status)) {
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
  const absl::optional<google::rpc::ErrorInfo> info = GetErrorInfo(status);
  if (info.has_value() && info->domain() == kGatewayDomain) return false;
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
  const google::protobuf::MethodDescriptor* method = nullptr;
  const RestMethod* rest = nullptr;
  std::unique_ptr<google::protobuf::Message> request;  // A copy.
  CallOptions options;
  google::protobuf::Message* response = nullptr;
  Callback done;
  idempotency::IdempotencyKey key;
};

IdempotentClinkApi::IdempotentClinkApi(const RestCodec& codec, ClinkApi& inner,
                                       idempotency::IdempotencyStore& store,
                                       UpstreamObserver* observer)
    : codec_(codec),
      inner_(inner),
      store_(store),
      observer_(observer != nullptr ? *observer : NoUpstreamObserver()) {}

IdempotentClinkApi::Stats IdempotentClinkApi::stats() const {
  Stats s;
  s.claimed = claimed_.load(std::memory_order_relaxed);
  s.replayed = replayed_.load(std::memory_order_relaxed);
  s.mismatched = mismatched_.load(std::memory_order_relaxed);
  s.in_use = in_use_.load(std::memory_order_relaxed);
  s.store_errors = store_errors_.load(std::memory_order_relaxed);
  return s;
}

void IdempotentClinkApi::Call(const google::protobuf::MethodDescriptor& method,
                              const google::protobuf::Message& request,
                              const CallOptions& options,
                              google::protobuf::Message* response,
                              Callback done) {
  const RestMethod* rest = codec_.Find(method);
  if (options.idempotency_key.empty() || rest == nullptr || !rest->mutating()) {
    inner_.Call(method, request, options, response, std::move(done));
    return;
  }
  if (absl::Status valid = ValidateRequest(codec_, *rest, request);
      !valid.ok()) {
    std::move(done)(ResultOf(rest->endpoint, std::move(valid)));
    return;
  }
  auto call = std::make_shared<KeyedCall>();
  call->method = &method;
  call->rest = rest;
  call->request.reset(request.New());
  call->request->CopyFrom(request);
  call->options = options;
  call->response = response;
  call->done = std::move(done);
  call->key.caller = options.caller;
  call->key.rpc = method.full_name();
  call->key.key = options.idempotency_key;
  call->key.merchant = options.merchant;
  const std::string hash = RequestHash(method, request);
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
    store_errors_.fetch_add(1, std::memory_order_relaxed);
    observer_.OnIdempotency(*call->rest, IdempotencyResult::kStoreError);
    if (call->rest->idempotent_upstream) {
      // Clink deduplicates this call itself (a refund's
      // refund_merchant_order_id): going ahead cannot act twice.
      inner_.Call(*call->method, *call->request, call->options, call->response,
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
    absl::Status status = GatewayError(
        full ? absl::StatusCode::kResourceExhausted
             : absl::StatusCode::kUnavailable,
        endpoint,
        full ? "IDEMPOTENCY_STORE_FULL" : "IDEMPOTENCY_STORE_UNAVAILABLE",
        Outcome::kNotSent,
        full ? "the gateway's idempotency store is full of live keys; "
               "nothing was sent to Clink"
             : "the gateway's idempotency store cannot be reached; nothing "
               "was sent to Clink, retry with the same key");
    std::move(call->done)(ResultOf(endpoint, std::move(status)));
    return;
  }
  switch (begun->kind) {
    case idempotency::BeginResult::Kind::kClaimed:
      claimed_.fetch_add(1, std::memory_order_relaxed);
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kClaimed);
      RunClaimed(std::move(call), std::move(begun->lease_token));
      return;
    case idempotency::BeginResult::Kind::kCompleted: {
      replayed_.fetch_add(1, std::memory_order_relaxed);
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kReplayed);
      CallResult result = ResultOf(endpoint, std::move(begun->result.status));
      result.replayed = true;
      call->response->Clear();
      if (result.status.ok() &&
          !call->response->ParseFromString(begun->result.response)) {
        result.status = GatewayError(
            absl::StatusCode::kInternal, endpoint,
            "IDEMPOTENCY_RECORD_UNREADABLE", Outcome::kCommitted,
            "the stored result of the first call with this key cannot be "
            "read; the call took effect at Clink, look it up");
      }
      std::move(call->done)(std::move(result));
      return;
    }
    case idempotency::BeginResult::Kind::kMismatch:
      mismatched_.fetch_add(1, std::memory_order_relaxed);
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kMismatched);
      std::move(call->done)(ResultOf(
          endpoint,
          GatewayError(absl::StatusCode::kAlreadyExists, endpoint,
                       "IDEMPOTENCY_KEY_REUSED", Outcome::kNotSent,
                       "this idempotency key was already used for a different "
                       "request; nothing was sent to Clink (use a new key for "
                       "a new request)")));
      return;
    case idempotency::BeginResult::Kind::kInProgress: {
      in_use_.fetch_add(1, std::memory_order_relaxed);
      observer_.OnIdempotency(*call->rest, IdempotencyResult::kInUse);
      absl::Status status = GatewayError(
          absl::StatusCode::kAborted, endpoint, "IDEMPOTENCY_KEY_IN_USE",
          Outcome::kUnknown,
          "the first call with this idempotency key is still in progress; "
          "retry with the same key to get its result");
      AttachRetryInfo(status, kInUseRetryDelay);
      std::move(call->done)(ResultOf(endpoint, std::move(status)));
      return;
    }
  }
}

void IdempotentClinkApi::RunClaimed(std::shared_ptr<KeyedCall> call,
                                    std::string lease_token) {
  KeyedCall& c = *call;
  inner_.Call(
      *c.method, *c.request, c.options, c.response,
      [this, call = std::move(call),
       lease_token = std::move(lease_token)](CallResult result) mutable {
        // Answer the caller once the store knows, so an immediate retry finds
        // the result (or the key free again) rather than a stale claim.
        const bool final_result = IsFinalForIdempotency(
            result.status, call->rest->idempotent_upstream);
        idempotency::StoredResult stored;
        if (final_result) {
          stored.status = result.status;
          if (result.status.ok()) {
            stored.response = call->response->SerializeAsString();
          }
        }
        const idempotency::IdempotencyKey key = call->key;
        auto finish = [this, call, result = std::move(result)](
                          absl::Status written) mutable {
          if (!written.ok()) {
            store_errors_.fetch_add(1, std::memory_order_relaxed);
            observer_.OnIdempotency(*call->rest,
                                    IdempotencyResult::kStoreError);
            // The caller still gets the real result; the key stays claimed
            // until its lease runs out and is then settled as abandoned
            // (UNKNOWN), which never causes a second send.
            Log(LogLevel::kWarning, "idempotency_store_write_failed",
                {{"endpoint", call->rest->endpoint},
                 {"error", std::string(written.message())}});
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
