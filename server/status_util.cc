#include "server/status_util.h"

#include <string>

#include "absl/strings/cord.h"
#include "common/errors/error_details.h"
#include "common/utf8.h"
#include "google/rpc/status.pb.h"

namespace clink_gateway::server {
namespace {

constexpr size_t kMaxMessageBytes = 1024;

static_assert(static_cast<int>(absl::StatusCode::kInvalidArgument) ==
              static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
static_assert(static_cast<int>(absl::StatusCode::kUnauthenticated) ==
              static_cast<int>(grpc::StatusCode::UNAUTHENTICATED));
static_assert(static_cast<int>(absl::StatusCode::kResourceExhausted) ==
              static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
static_assert(static_cast<int>(absl::StatusCode::kUnavailable) ==
              static_cast<int>(grpc::StatusCode::UNAVAILABLE));

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  if (!status.GetPayload(errors::kErrorInfoTypeUrl).has_value()) {
    // Every error carries an ErrorInfo; one that reached here without (a
    // gateway bug) says nothing about its outcome: unknown, the safe reading.
    absl::Status with_info = status;
    errors::AttachErrorInfo(with_info, errors::kGatewayDomain,
                            absl::StatusCodeToString(status.code()),
                            errors::Outcome::kUnknown);
    return ToGrpcStatus(with_info);
  }
  std::string message(Utf8Prefix(status.message(), kMaxMessageBytes));
  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(message);
  status.ForEachPayload(
      [&details](absl::string_view type_url, const absl::Cord& payload) {
        google::protobuf::Any* any = details.add_details();
        any->set_type_url(std::string(type_url));
        any->set_value(std::string(payload));
      });
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::move(message), details.SerializeAsString());
}

}  // namespace clink_gateway::server
