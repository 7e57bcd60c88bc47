#include "server/rpc_forwarder.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "adapters/clink/validation.h"
#include "common/errors/error_details.h"
#include "common/logging.h"
#include "common/sync.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "server/peer_identity.h"
#include "server/status_util.h"

namespace clink_gateway::server {
namespace {

constexpr size_t kMaxRequestIdLength = 128;

constexpr size_t kMaxIdempotencyKeyLength = 255;
constexpr size_t kMaxCallerLength = 128;

bool IsPrintableAscii(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= 0x21 && c <= 0x7e; });
}

// Printable ASCII including the space (the idempotency key's alphabet).
bool IsPrintableAsciiOrSpace(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool IsCallerChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("._:/@-").find(c) != absl::string_view::npos;
}

// The value of metadata `key` (the first, if sent more than once), if the
// caller sent it.
absl::optional<absl::string_view> MetadataValue(const ClientMetadata& metadata,
                                                absl::string_view key) {
  const auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return absl::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

absl::Time UpstreamDeadline(absl::Time caller_deadline, absl::Time now,
                            absl::Duration max_rpc_timeout) {
  const absl::Duration remaining = caller_deadline - now;
  if (remaining <= absl::ZeroDuration()) return caller_deadline;
  // Keep a margin (a tenth of the time left, 1 to 50 ms) so the gateway's own,
  // more precise status (e.g. UNKNOWN "outcome unknown" for a payment) reaches
  // the caller before its deadline turns every failure into a bare
  // DEADLINE_EXCEEDED.
  const absl::Duration margin =
      std::clamp(remaining / 10, absl::Milliseconds(1), absl::Milliseconds(50));
  return std::min(caller_deadline - margin, now + max_rpc_timeout);
}

std::string RequestIdFrom(const grpc::CallbackServerContext& context) {
  return RequestIdFrom(context.client_metadata());
}

std::string RequestIdFrom(const ClientMetadata& metadata) {
  const auto it = metadata.find("x-request-id");
  if (it != metadata.end()) {
    const absl::string_view id(it->second.data(), it->second.size());
    if (!id.empty() && id.size() <= kMaxRequestIdLength &&
        IsPrintableAscii(id)) {
      return std::string(id);
    }
  }
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

absl::Status ReadCallMetadata(const grpc::CallbackServerContext& context,
                              const absl::flat_hash_set<std::string>& merchants,
                              absl::string_view default_merchant,
                              clink::CallOptions& options) {
  return ReadCallMetadata(context.client_metadata(), merchants,
                          default_merchant, options);
}

absl::Status ReadCallMetadata(const ClientMetadata& metadata,
                              const absl::flat_hash_set<std::string>& merchants,
                              absl::string_view default_merchant,
                              clink::CallOptions& options) {
  std::vector<errors::FieldViolation> violations;
  // Each at most once: the authorization policy sees every value of a
  // header (joined by ','), the forwarder one; two values would let them
  // disagree (a policy allowing merchant "eu*" and a call routed to "us").
  for (absl::string_view name :
       {kIdempotencyKeyMetadata, kCallerMetadata, kMerchantMetadata}) {
    if (metadata.count(grpc::string_ref(name.data(), name.size())) > 1) {
      violations.push_back(
          {std::string(name), "metadata must be sent at most once"});
    }
  }
  if (!violations.empty()) {
    return errors::InvalidArgumentWithViolations(violations,
                                                 "INVALID_METADATA");
  }
  if (const auto key = MetadataValue(metadata, kIdempotencyKeyMetadata)) {
    if (key->empty() || key->size() > kMaxIdempotencyKeyLength ||
        !IsPrintableAsciiOrSpace(*key)) {
      violations.push_back({std::string(kIdempotencyKeyMetadata),
                            "metadata must be 1-255 printable ASCII "
                            "characters"});
    } else {
      options.idempotency_key = std::string(*key);
    }
  }
  if (const auto caller = MetadataValue(metadata, kCallerMetadata)) {
    if (caller->empty() || caller->size() > kMaxCallerLength ||
        !std::all_of(caller->begin(), caller->end(), IsCallerChar)) {
      violations.push_back({std::string(kCallerMetadata),
                            "metadata must be 1-128 characters from "
                            "[A-Za-z0-9._:/@-]"});
    } else {
      options.caller = std::string(*caller);
    }
  }
  const auto merchant = MetadataValue(metadata, kMerchantMetadata);
  if (!merchant.has_value() && default_merchant.empty()) {
    violations.push_back({std::string(kMerchantMetadata),
                          "metadata is required: this gateway serves several "
                          "merchants and has no default"});
  } else if (merchant.has_value() && !merchants.contains(*merchant)) {
    // Not echoed: it may be anything the caller sent.
    violations.push_back({std::string(kMerchantMetadata),
                          "names no merchant this gateway serves"});
  } else {
    options.merchant =
        std::string(merchant.has_value() ? *merchant : default_merchant);
  }
  if (violations.empty()) return absl::OkStatus();
  return errors::InvalidArgumentWithViolations(violations,
                                               kInvalidMetadataReason);
}

CallPeer ReadCallPeer(const grpc::CallbackServerContext& context) {
  CallPeer peer;
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  peer.mtls = auth != nullptr && ReadPeerCertificate(*auth, peer.certificate);
  return peer;
}

absl::Status AuthorizeCall(const AuthzPolicyFile* authz, absl::string_view path,
                           const CallPeer& peer,
                           const grpc::CallbackServerContext& context,
                           clink::CallOptions& options) {
  if (authz == nullptr) return absl::OkStatus();
  if (authz->Current()->Allows(
          path,
          peer.mtls ? Principals(peer.certificate) : std::vector<std::string>(),
          context.client_metadata())) {
    return absl::OkStatus();
  }
  // Named in the audit line and metrics, unverified claims aside.
  if (peer.mtls) {
    if (absl::StatusOr<std::string> id = CallerIdentity(peer.certificate);
        id.ok()) {
      options.caller = *std::move(id);
      options.caller_authenticated = true;
    }
  }
  absl::Status denied = absl::PermissionDeniedError(
      absl::StrCat("the authorization policy does not allow this caller to "
                   "call ",
                   path, " with this metadata"));
  errors::AttachErrorInfo(denied, errors::kGatewayDomain,
                          "CALLER_NOT_PERMITTED", errors::Outcome::kNotSent);
  return denied;
}

absl::Status ApplyCallPeer(const CallPeer& peer, clink::CallOptions& options) {
  if (!peer.mtls) return absl::OkStatus();
  absl::Status identity = ApplyPeerIdentity(peer.certificate, options);
  if (!identity.ok()) {
    errors::AttachErrorInfo(identity, errors::kGatewayDomain, "CALLER_MISMATCH",
                            errors::Outcome::kNotSent);
  }
  return identity;
}

RpcObserver& NoRpcObserver() {
  static RpcObserver* const observer = new RpcObserver();
  return *observer;
}

RpcForwarder::RpcForwarder(const clink::RestCodec& codec, clink::ClinkApi& api,
                           const Clock& clock, ForwarderOptions options)
    : codec_(codec),
      api_(api),
      clock_(clock),
      options_(std::move(options)),
      merchants_(options_.merchants.begin(), options_.merchants.end()),
      observer_(options_.observer != nullptr ? *options_.observer
                                             : NoRpcObserver()),
      audit_(options_.audit != nullptr ? options_.audit
                                       : std::make_shared<AuditLog>()) {}

// The reactor of one RPC: owns its messages, and deletes itself once gRPC is
// done with the call (after Finish, which Complete calls exactly once).
class RpcForwarder::Call final : public grpc::ServerUnaryReactor {
 public:
  Call(const ServedMethod& method, absl::Time start, grpc::ByteBuffer* out)
      : method(method),
        start(start),
        out(out),
        request(method.request_prototype->New()),
        response(method.response_prototype->New()) {}

  void OnDone() override { delete this; }

  // The caller cancelled, or its deadline passed. A read is aborted upstream
  // (it can only be repeated); a write is left to finish, so its outcome is
  // known and stored for its idempotency key.
  void OnCancel() override {
    if (cancelled != nullptr) cancelled->Notify();  // At most once per RPC.
  }

  const ServedMethod& method;
  const absl::Time start;
  grpc::ByteBuffer* const out;
  const std::unique_ptr<google::protobuf::Message> request;
  const std::unique_ptr<google::protobuf::Message> response;
  // Null only in handler tests that serve without one.
  grpc::CallbackServerContext* context = nullptr;
  bool keyed = false;
  std::string request_id;
  std::string merchant;
  // Reads only: what OnCancel sets (CallOptions::cancelled). Set before the
  // reactor is returned to gRPC, so before OnCancel can run.
  std::shared_ptr<Notification> cancelled;
  // As far as they were read (metadata, identity); for metrics and logs.
  clink::CallOptions options;
  // The audit line's entry (server/audit_log.h), started once the request is
  // read.
  AuditEntry audit;
};

namespace {

// RESOURCE_EXHAUSTED for a request over its RPC's size cap; nothing sent.
absl::Status RequestTooLarge(const ServedMethod& method, size_t size) {
  absl::Status status(
      absl::StatusCode::kResourceExhausted,
      absl::StrCat("the request is ", size, " bytes; ",
                   method.rest->method->full_name(), " accepts at most ",
                   method.max_request_bytes,
                   " bytes; nothing was sent to Clink"));
  errors::AttachErrorInfo(
      status, errors::kGatewayDomain, "REQUEST_TOO_LARGE",
      errors::Outcome::kNotSent,
      {{"max_request_bytes", absl::StrCat(method.max_request_bytes)},
       {"request_bytes", absl::StrCat(size)}});
  return status;
}

}  // namespace

grpc::ServerUnaryReactor* RpcForwarder::Serve(
    grpc::CallbackServerContext* context, const ServedMethod& method,
    const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  auto* call = new Call(method, clock_.Now(), response);
  call->context = context;
  const clink::RestMethod& rest = *method.rest;
  observer_.OnRpcStarted(rest);
  clink::CallOptions options;
  call->request_id = options.request_id = RequestIdFrom(*context);
  context->AddInitialMetadata("x-request-id", options.request_id);
  options.deadline = UpstreamDeadline(absl::FromChrono(context->deadline()),
                                      call->start, options_.max_rpc_timeout);
  // A call refused here never reached the Clink adapters: its audit line (for
  // a write) says not_sent whatever the status.
  auto fail = [this, call, &rest, &options](absl::Status status) {
    call->options = options;
    call->audit = AuditLog::Start(rest, *call->request, options);
    call->audit.refused_before_sending = true;
    clink::CallResult result;
    result.status = std::move(status);
    result.outcome = errors::Outcome::kNotSent;  // Refused before sending.
    result.endpoint = rest.endpoint;
    Complete(call, std::move(result));
    return call;
  };
  const CallPeer peer = ReadCallPeer(*context);
  if (options_.authz != nullptr) {
    // First: a caller the policy does not allow learns nothing else.
    absl::Status allowed =
        AuthorizeCall(options_.authz,
                      absl::StrCat("/", rest.method->service()->full_name(),
                                   "/", rest.method->name()),
                      peer, *context, options);
    if (!allowed.ok()) {
      observer_.OnRpcDenied(rest);
      return fail(std::move(allowed));
    }
  }
  // Before parsing: gRPC admits up to kMaxReceiveMessageBytes for every RPC.
  const size_t size = request->Length();
  if (size > method.max_request_bytes) {
    return fail(RequestTooLarge(method, size));
  }
  {
    grpc::ByteBuffer bytes(*request);  // Shares the slices; Deserialize eats.
    if (grpc::Status parsed =
            grpc::SerializationTraits<google::protobuf::Message>::Deserialize(
                &bytes, call->request.get());
        !parsed.ok()) {
      return fail(errors::InvalidArgumentWithViolations(
          {{"request", absl::StrCat("is not a valid ",
                                    method.request_prototype->GetTypeName(),
                                    " message")}}));
    }
  }
  if (absl::Status metadata = ReadCallMetadata(
          *context, merchants_, options_.default_merchant, options);
      !metadata.ok()) {
    return fail(std::move(metadata));
  }
  if (absl::Status identity = ApplyCallPeer(peer, options); !identity.ok()) {
    return fail(std::move(identity));
  }
  call->merchant = options.merchant;
  // The one validation of the call: no layer below checks it again.
  if (absl::Status valid = clink::ValidateRequest(codec_, rest, *call->request);
      !valid.ok()) {
    return fail(std::move(valid));
  }
  call->keyed = !options.idempotency_key.empty();
  call->options = options;
  // Read now: the request is gone once the RPC is finished.
  call->audit = AuditLog::Start(rest, *call->request, options);
  if (!rest.mutating()) {
    call->cancelled = std::make_shared<Notification>();
    options.cancelled = call->cancelled;
  }
  api_.Call(rest, *call->request, options, call->response.get(),
            [this, call](clink::CallResult result) {
              Complete(call, std::move(result));
            });
  return call;
}

void RpcForwarder::Complete(Call* call, clink::CallResult result) {
  const clink::RestMethod& method = *call->method.rest;
  const absl::Duration latency = clock_.Now() - call->start;
  if (result.status.ok()) {
    bool own_buffer = false;
    if (grpc::Status serialized =
            grpc::SerializationTraits<google::protobuf::Message>::Serialize(
                *call->response, call->out, &own_buffer);
        !serialized.ok()) {
      result.status = absl::InternalError(absl::StrCat(
          "cannot serialize the response: ", serialized.error_message()));
    }
  }
  const absl::StatusCode code = result.status.code();
  // Metrics before Finish: once the RPC is finished the server may shut down
  // and destroy the observer.
  observer_.OnRpcHandled(method, code, latency, call->options.caller);
  // The audit line before the answer: once a caller has its result, the
  // record of it exists (and keeps the order in which callers saw results).
  AuditLog::Settle(method, result.status.ok() ? call->response.get() : nullptr,
                   result.status, result.outcome, result.replayed,
                   call->audit);
  audit_->Write(call->audit);
  const LogLevel level = code == absl::StatusCode::kOk ? LogLevel::kInfo
                         : code == absl::StatusCode::kInternal ||
                                 code == absl::StatusCode::kUnknown
                             ? LogLevel::kError
                             : LogLevel::kWarning;
  // Copied while the call and the forwarder surely exist: after Finish the
  // call deletes itself, and nothing owned by the server may be touched.
  // `method.method` lives in the generated pool, but `method` itself belongs
  // to the codec: copy what the log needs.
  const bool log = LogEnabled(level);
  const google::protobuf::MethodDescriptor* descriptor = method.method;
  std::string endpoint = log ? method.endpoint : std::string();
  const bool keyed = call->keyed;
  std::string request_id = log ? call->request_id : std::string();
  std::string merchant = log ? call->merchant : std::string();
  std::string caller = log ? call->options.caller : std::string();
  const bool caller_authenticated = call->options.caller_authenticated;
  // A replay says so (initial metadata, sent with the answer): the caller
  // can tell a stored result from a fresh one, e.g. why a webhook endpoint's
  // signing secret is empty (sensitive fields are never stored).
  if (result.replayed && call->context != nullptr) {
    call->context->AddInitialMetadata("idempotency-replayed", "true");
  }
  // Answer the caller first; the log line is queued, never awaited.
  call->Finish(ToGrpcStatus(result.status));
  if (!log) return;
  // unknown_fields: JSON members Clink sent that no proto field holds (API
  // drift worth a look). The key is logged by fingerprint only; request and
  // response contents (ids, emails, amounts, card data) never are.
  Log(level, "rpc",
      {{"method", descriptor->full_name()},
       {"code", absl::StatusCodeToString(code)},
       {"latency_ms",
        absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(latency))},
       {"endpoint", endpoint},
       {"upstream_status", absl::StrCat(result.http_status)},
       {"unknown_fields", absl::StrCat(result.unknown_fields)},
       {"attempts", absl::StrCat(result.attempts)},
       {"idempotency_key", keyed ? "present" : "absent"},
       {"replayed", result.replayed ? "true" : "false"},
       // Whether the request may have taken effect at Clink.
       {"outcome", std::string(errors::OutcomeName(result.outcome))},
       {"request_id", request_id},
       {"merchant", merchant},
       {"caller", caller},
       {"caller_authenticated", caller_authenticated ? "true" : "false"},
       // The key the last attempt was signed with; "none" when nothing was
       // sent (a refusal, a replay).
       {"key_fingerprint", result.key_fingerprint.empty()
                               ? std::string("none")
                               : result.key_fingerprint}});
}

}  // namespace clink_gateway::server
