#include "server/rpc_forwarder.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "server/status_util.h"

namespace clink_gateway::server {
namespace {

constexpr size_t kMaxRequestIdLength = 128;

bool IsPrintableAscii(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= 0x21 && c <= 0x7e; });
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
  const auto& metadata = context.client_metadata();
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

RpcForwarder::RpcForwarder(const clink::RestCodec& codec, clink::ClinkApi& api,
                           const Clock& clock, ForwarderOptions options)
    : codec_(codec), api_(api), clock_(clock), options_(options) {}

grpc::ServerUnaryReactor* RpcForwarder::Forward(
    grpc::CallbackServerContext* context,
    const google::protobuf::Message& request,
    google::protobuf::Message* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const clink::RestMethod* method =
      codec_.FindByRequestType(*request.GetDescriptor());
  if (method ==
      nullptr) {  // A service registered without a REST mapping: a build bug.
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no Clink mapping"));
    return reactor;
  }
  const absl::Time start = clock_.Now();
  clink::CallOptions options;
  options.request_id = RequestIdFrom(*context);
  context->AddInitialMetadata("x-request-id", options.request_id);
  options.deadline = UpstreamDeadline(absl::FromChrono(context->deadline()),
                                      start, options_.max_rpc_timeout);

  api_.Call(
      *method->method, request, options, response,
      [this, reactor, start, descriptor = method->method,
       endpoint = method->endpoint,
       request_id = options.request_id](clink::CallResult result) {
        // Answer the caller first; the log line is queued, never awaited. Once
        // the RPC is finished nothing owned by the server may be touched (it
        // may be shutting down): the log uses only the copies captured above
        // and `descriptor`, which lives in the generated pool.
        const absl::Duration latency = clock_.Now() - start;
        const absl::StatusCode code = result.status.code();
        const LogLevel level = code == absl::StatusCode::kOk ? LogLevel::kInfo
                               : code == absl::StatusCode::kInternal ||
                                       code == absl::StatusCode::kUnknown
                                   ? LogLevel::kError
                                   : LogLevel::kWarning;
        reactor->Finish(ToGrpcStatus(result.status));
        if (!LogEnabled(level)) return;
        // unknown_fields: JSON members Clink sent that no proto field holds
        // (API drift worth a look).
        Log(level, "rpc",
            {{"method", descriptor->full_name()},
             {"code", absl::StatusCodeToString(code)},
             {"latency_ms",
              absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(latency))},
             {"endpoint", endpoint},
             {"upstream_status", absl::StrCat(result.http_status)},
             {"unknown_fields", absl::StrCat(result.unknown_fields)},
             {"request_id", request_id}});
      });
  return reactor;
}

}  // namespace clink_gateway::server
