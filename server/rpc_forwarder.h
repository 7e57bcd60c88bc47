// Forwards any gateway RPC to Clink through ClinkApi, completing the gRPC call
// from the transport thread. The service classes (services.h) are one line per
// RPC on top of this.
#ifndef CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_
#define CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "common/clock.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/string_ref.h"
#include "server/authz_policy.h"
#include "server/rpc_observer.h"

namespace clink_gateway::server {

struct ForwarderOptions {
  // Upper bound on an RPC's upstream time when the caller set no deadline (or a
  // longer one).
  absl::Duration max_rpc_timeout = absl::Seconds(30);
  // Told when each RPC starts and finishes (the gRPC server metrics); null
  // means none. Must outlive the forwarder.
  RpcObserver* observer = nullptr;
  // The merchant accounts callers may name with `x-clink-merchant`, and the
  // one calls without it go to (empty: such calls are refused).
  std::vector<std::string> merchants = {"default"};
  std::string default_merchant = "default";
  // The caller authorization policy (authz_policy.h), checked first on every
  // call: a call it does not allow gets PERMISSION_DENIED, nothing sent, and
  // is reported with RpcObserver::OnRpcDenied. Null: every call is allowed.
  // Must outlive the forwarder.
  const AuthzPolicyFile* authz = nullptr;
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
  // validation failure) arrives. Under mutual TLS the caller is the client
  // certificate's identity (ApplyPeerIdentity: PERMISSION_DENIED, nothing
  // sent, when x-clink-caller claims another). Never blocks; returns at once.
  // Tells the observer when the RPC starts and, just before Finish, how it
  // ended; logs one JSON line per RPC ("rpc": method, code, latency, endpoint,
  // upstream status, attempts, request id, merchant, key fingerprint, ...;
  // never request or response contents).
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* context,
                                    const google::protobuf::Message& request,
                                    google::protobuf::Message* response);

 private:
  // Reports the end of an RPC, finishes it and logs its line.
  void Complete(const clink::RestMethod& method,
                grpc::ServerUnaryReactor* reactor, absl::Time start, bool keyed,
                const std::string& request_id, const std::string& merchant,
                clink::CallResult result);

  const clink::RestCodec& codec_;
  clink::ClinkApi& api_;
  const Clock& clock_;
  const ForwarderOptions options_;
  const absl::flat_hash_set<std::string> merchants_;
  RpcObserver& observer_;
};

// When the upstream call must end: shortly before the caller's deadline (so the
// gateway's own status still reaches the caller in time), and never later than
// now + max_rpc_timeout.
absl::Time UpstreamDeadline(absl::Time caller_deadline, absl::Time now,
                            absl::Duration max_rpc_timeout);

// A call's metadata as gRPC gives it (ServerContextBase::client_metadata()):
// the overloads below that take it are what the context versions run, and
// what tests and fuzzers call without a live call.
using ClientMetadata = std::multimap<grpc::string_ref, grpc::string_ref>;

// The request id to use: the caller's `x-request-id` when it is 1-128 printable
// ASCII characters, otherwise a fresh random one (32 hex digits).
std::string RequestIdFrom(const grpc::CallbackServerContext& context);
std::string RequestIdFrom(const ClientMetadata& metadata);

// gRPC metadata a caller sets to make a mutating RPC idempotent: 1-255
// printable ASCII characters (a UUID is a good choice). Later calls with the
// same key, RPC and request get the first call's result for at least the
// retention period (24 h by default); see
// adapters/clink/idempotent_clink_api.h.
inline constexpr absl::string_view kIdempotencyKeyMetadata = "idempotency-key";

// gRPC metadata naming the calling service (1-128 characters from
// [A-Za-z0-9._:/@-], e.g. "checkout-web" or a SPIFFE id). Idempotency keys are
// scoped by it, so two services using the same key never collide. Callers that
// send none share one anonymous scope. Under mutual TLS (--grpc_tls_*) the
// client certificate's identity is the scope instead (server/peer_identity.h)
// and this header, if sent, must equal it (else PERMISSION_DENIED); without
// TLS, in a service mesh, have the sidecar set it from the authenticated peer
// identity.
inline constexpr absl::string_view kCallerMetadata = "x-clink-caller";

// gRPC metadata choosing the Clink merchant account a call goes to (a name
// from the gateway's merchant configuration). Without it the configured
// default merchant is used. Idempotency keys are scoped by merchant.
inline constexpr absl::string_view kMerchantMetadata = "x-clink-merchant";

// Reads the three headers above into `options`, resolving the merchant
// (`merchants`, `default_merchant` as in ForwarderOptions). INVALID_ARGUMENT
// (with a BadRequest naming the metadata key) when a header is malformed, the
// merchant is not configured, or there is neither a header nor a default.
absl::Status ReadCallMetadata(const grpc::CallbackServerContext& context,
                              const absl::flat_hash_set<std::string>& merchants,
                              absl::string_view default_merchant,
                              clink::CallOptions& options);
absl::Status ReadCallMetadata(const ClientMetadata& metadata,
                              const absl::flat_hash_set<std::string>& merchants,
                              absl::string_view default_merchant,
                              clink::CallOptions& options);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_
