#include "adapters/clink/clink_client.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "adapters/clink/error_mapping.h"
#include "adapters/clink/validation.h"

namespace clink_gateway::clink {

ClinkClient::ClinkClient(const RestCodec& codec, http::HttpTransport& transport,
                         const Clock& clock)
    : codec_(codec), transport_(transport), clock_(clock) {}

void ClinkClient::Call(const google::protobuf::MethodDescriptor& method,
                       const google::protobuf::Message& request,
                       const CallOptions& options,
                       google::protobuf::Message* response, Callback done) {
  const RestMethod* rest = codec_.Find(method);
  if (rest == nullptr) {
    std::move(done)(
        CallResult{absl::UnimplementedError(absl::StrCat(
                       method.full_name(), " has no Clink mapping")),
                   "", 0, 0});
    return;
  }
  absl::Status valid = codec_.Validate(*rest, request);
  if (valid.ok()) valid = ValidateCrossFieldRules(request);
  if (!valid.ok()) {
    std::move(done)(CallResult{std::move(valid), rest->endpoint, 0, 0});
    return;
  }
  absl::StatusOr<http::HttpRequest> http_request =
      codec_.EncodeRequest(*rest, request);
  if (!http_request.ok()) {
    std::move(done)(CallResult{http_request.status(), rest->endpoint, 0, 0});
    return;
  }
  http::SendOptions send_options;
  send_options.deadline = options.deadline;
  send_options.request_id = options.request_id;
  transport_.Send(
      *std::move(http_request), std::move(send_options),
      [this, rest, response,
       done = std::move(done)](http::HttpResult result) mutable {
        UpstreamOutcome outcome;
        outcome.endpoint = rest->endpoint;
        outcome.mutating = rest->mutating();
        outcome.idempotent_upstream = rest->idempotent_upstream;
        outcome.transport_status = result.status;
        outcome.delivery = result.delivery;
        outcome.now = clock_.Now();
        CallResult call{absl::OkStatus(), rest->endpoint, 0, 0};
        if (result.status.ok()) {
          call.http_status = outcome.http_status = result.response.status_code;
          outcome.retry_after =
              std::string(result.response.Header("retry-after"));
          Envelope envelope;
          DecodeStats stats;
          const absl::Status decoded = codec_.DecodeResponse(
              *rest, result.response.body, response, &envelope, &stats);
          outcome.body_readable = decoded.ok();
          outcome.has_envelope_code = envelope.has_code;
          outcome.envelope_code = envelope.code;
          outcome.envelope_msg = std::move(envelope.msg);
          outcome.incomplete =
              envelope.payload_missing || stats.unreadable_amounts > 0;
          call.unknown_fields = stats.unknown_fields;
          unknown_fields_total_.fetch_add(stats.unknown_fields,
                                          std::memory_order_relaxed);
        }
        call.status = MapUpstreamOutcome(outcome);
        if (!call.status.ok()) response->Clear();
        std::move(done)(std::move(call));
      });
}

}  // namespace clink_gateway::clink
