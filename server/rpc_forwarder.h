// Forwards any gateway RPC to Clink through ClinkApi, completing the gRPC call
// from the transport thread. The service classes (services.h) are one line per
// RPC on top of this.
#ifndef CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_
#define CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_

#include <string>

#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "common/clock.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"

namespace clink_gateway::server {

struct ForwarderOptions {
  // Upper bound on an RPC's upstream time when the caller set no deadline (or a
  // longer one).
  absl::Duration max_rpc_timeout = absl::Seconds(30);
};

class RpcForwarder {
 public:
  // All references must outlive the forwarder.
  RpcForwarder(const clink::RestCodec& codec, clink::ClinkApi& api,
               const Clock& clock, ForwarderOptions options);

  // Handles one unary RPC: resolves its REST mapping from the request type,
  // takes the request id from `x-request-id` metadata (or makes one, and
  // returns it in initial metadata), bounds the upstream call by the caller's
  // deadline, and calls Finish exactly once when Clink's answer (or the
  // validation failure) arrives. Never blocks; returns at once.
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* context,
                                    const google::protobuf::Message& request,
                                    google::protobuf::Message* response);

 private:
  const clink::RestCodec& codec_;
  clink::ClinkApi& api_;
  const Clock& clock_;
  const ForwarderOptions options_;
};

// When the upstream call must end: shortly before the caller's deadline (so the
// gateway's own status still reaches the caller in time), and never later than
// now + max_rpc_timeout.
absl::Time UpstreamDeadline(absl::Time caller_deadline, absl::Time now,
                            absl::Duration max_rpc_timeout);

// The request id to use: the caller's `x-request-id` when it is 1-128 printable
// ASCII characters, otherwise a fresh random one (32 hex digits).
std::string RequestIdFrom(const grpc::CallbackServerContext& context);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_
