#include "server/rpc_forwarder.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "adapters/clink/error_details.h"
#include "common/logging.h"
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
  std::vector<clink::FieldViolation> violations;
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
  return clink::InvalidArgumentWithViolations(violations);
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
                                             : NoRpcObserver()) {}

grpc::ServerUnaryReactor* RpcForwarder::Forward(
    grpc::CallbackServerContext* context,
    const google::protobuf::Message& request,
    google::protobuf::Message* response) {
  const absl::Time start = clock_.Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const clink::RestMethod* method =
      codec_.FindByRequestType(*request.GetDescriptor());
  if (method ==
      nullptr) {  // A service registered without a REST mapping: a build bug.
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no Clink mapping"));
    return reactor;
  }
  observer_.OnRpcStarted(*method);
  clink::CallOptions options;
  options.request_id = RequestIdFrom(*context);
  context->AddInitialMetadata("x-request-id", options.request_id);
  options.deadline = UpstreamDeadline(absl::FromChrono(context->deadline()),
                                      start, options_.max_rpc_timeout);
  // Under mutual TLS the certificate names the caller (peer_identity.h). No
  // auth context: a call without a transport (handler tests).
  PeerCertificate peer;
  const std::shared_ptr<const grpc::AuthContext> auth =
      context->auth_context();
  const bool mtls = auth != nullptr && ReadPeerCertificate(*auth, peer);
  absl::Status metadata;
  if (options_.authz != nullptr) {
    // First: a caller the policy does not allow learns nothing else.
    const std::string path =
        absl::StrCat("/", method->method->service()->full_name(), "/",
                     method->method->name());
    if (!options_.authz->Current()->Allows(
            path, mtls ? Principals(peer) : std::vector<std::string>(),
            context->client_metadata())) {
      observer_.OnRpcDenied(*method);
      metadata = absl::PermissionDeniedError(
          absl::StrCat("the authorization policy does not allow this caller "
                       "to call ",
                       path, " with this metadata"));
    }
  }
  if (metadata.ok()) {
    metadata = ReadCallMetadata(*context, merchants_,
                                options_.default_merchant, options);
  }
  if (metadata.ok() && mtls) metadata = ApplyPeerIdentity(peer, options);
  if (!metadata.ok()) {
    clink::CallResult result;
    result.status = std::move(metadata);
    result.endpoint = method->endpoint;
    Complete(*method, reactor, start, /*keyed=*/false, options.request_id,
             options.merchant, std::move(result));
    return reactor;
  }
  const bool keyed = !options.idempotency_key.empty();

  api_.Call(
      *method->method, request, options, response,
      [this, reactor, start, method, keyed, request_id = options.request_id,
       merchant = options.merchant](clink::CallResult result) {
        Complete(*method, reactor, start, keyed, request_id, merchant,
                 std::move(result));
      });
  return reactor;
}

void RpcForwarder::Complete(const clink::RestMethod& method,
                            grpc::ServerUnaryReactor* reactor, absl::Time start,
                            bool keyed, const std::string& request_id,
                            const std::string& merchant,
                            clink::CallResult result) {
  const absl::Duration latency = clock_.Now() - start;
  const absl::StatusCode code = result.status.code();
  // Metrics before Finish: once the RPC is finished the server may shut down
  // and destroy the observer.
  observer_.OnRpcHandled(method, code, latency);
  const LogLevel level = code == absl::StatusCode::kOk ? LogLevel::kInfo
                         : code == absl::StatusCode::kInternal ||
                                 code == absl::StatusCode::kUnknown
                             ? LogLevel::kError
                             : LogLevel::kWarning;
  // Copied while the forwarder surely exists: after Finish nothing owned by
  // the server may be touched. `method.method` lives in the generated pool,
  // but `method` itself belongs to the codec: copy what the log needs.
  const bool log = LogEnabled(level);
  const google::protobuf::MethodDescriptor* descriptor = method.method;
  std::string endpoint = log ? method.endpoint : std::string();
  // Answer the caller first; the log line is queued, never awaited.
  reactor->Finish(ToGrpcStatus(result.status));
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
       {"request_id", request_id},
       {"merchant", merchant},
       // The key the last attempt was signed with; "none" when nothing was
       // sent (a refusal, a replay).
       {"key_fingerprint", result.key_fingerprint.empty()
                               ? std::string("none")
                               : result.key_fingerprint}});
}

}  // namespace clink_gateway::server
