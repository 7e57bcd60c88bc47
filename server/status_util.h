// The only absl::Status -> grpc::Status conversion in the gateway.
#ifndef CLINK_GATEWAY_SERVER_STATUS_UTIL_H_
#define CLINK_GATEWAY_SERVER_STATUS_UTIL_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace clink_gateway::server {

// Same code (Abseil and gRPC share google.rpc.Code numbering), the message
// capped at 1 KiB, and every status payload (google.rpc.ErrorInfo, BadRequest,
// RetryInfo...) packed as a detail of a google.rpc.Status sent in the
// `grpc-status-details-bin` trailer. An error without a google.rpc.ErrorInfo
// (which every error should carry) gets one: reason = the code's name (e.g.
// INTERNAL), domain gateway.clink, outcome unknown.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_STATUS_UTIL_H_
