// Forwards any gateway RPC to Clink through ClinkApi, completing the gRPC call
// from the transport thread. Every RPC of the contract is registered from the
// descriptors onto RpcForwarder::Serve (contract_services.h): there is no
// per-RPC C++.
#ifndef CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_
#define CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "common/clock.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/string_ref.h"
#include "server/audit_log.h"
#include "server/authz_policy.h"
#include "server/peer_identity.h"
#include "server/rpc_observer.h"

namespace clink_gateway::server {

// The request size cap of an RPC whose RestRule sets no max_request_bytes.
inline constexpr size_t kDefaultMaxRequestBytes = 1 << 20;  // 1 MiB.
// The server-wide gRPC receive limit (ServerBuilder::SetMaxReceiveMessageSize):
// the largest cap a RestRule may set. gRPC itself refuses anything bigger
// (RESOURCE_EXHAUSTED) before a handler runs.
inline constexpr size_t kMaxReceiveMessageBytes = 6 << 20;  // 6 MiB.

// One RPC the gateway serves, built at startup from the descriptors
// (contract_services.h) and immutable afterwards.
struct ServedMethod {
  // The gRPC method path, "/clink.gateway.v1.PaymentService/CreatePayment".
  std::string path;
  // The compiled REST mapping (owned by the RestCodec): resolved here once, and
  // handed down to ClinkApi with every call.
  const clink::RestMethod* rest = nullptr;
  // The generated (MessageFactory::generated_factory()) prototypes of the
  // request and response messages.
  const google::protobuf::Message* request_prototype = nullptr;
  const google::protobuf::Message* response_prototype = nullptr;
  // Largest serialized request accepted, in bytes (RestRule.max_request_bytes,
  // or kDefaultMaxRequestBytes).
  size_t max_request_bytes = kDefaultMaxRequestBytes;
};

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
  // Where the audit line of each write RPC goes (server/audit_log.h); null
  // means the process log.
  std::shared_ptr<AuditLog> audit;
};

class RpcForwarder {
 public:
  // All references must outlive the forwarder.
  RpcForwarder(const clink::RestCodec& codec, clink::ClinkApi& api,
               const Clock& clock, ForwarderOptions options);

  // Serves one unary RPC of `method` (every RPC's raw-callback handler):
  //  - a request larger than method.max_request_bytes is refused with
  //    RESOURCE_EXHAUSTED (ErrorInfo REQUEST_TOO_LARGE, outcome not_sent)
  //    before it is parsed; one that does not parse as the request message
  //    with INVALID_ARGUMENT;
  //  - takes the request id from `x-request-id` metadata (or makes one) and
  //    returns it in initial metadata;
  //  - with an authorization policy (ForwarderOptions::authz), refuses a call
  //    it does not allow with PERMISSION_DENIED (UNAUTHENTICATED without a
  //    client identity), nothing sent;
  //  - reads the call metadata below; under mutual TLS the caller is the
  //    client certificate's identity (ApplyPeerIdentity: PERMISSION_DENIED,
  //    nothing sent, when x-clink-caller claims another);
  //  - validates the request once (ValidateRequest: INVALID_ARGUMENT naming
  //    each field, nothing sent);
  //  - bounds the upstream call by the caller's deadline and forwards it to
  //    ClinkApi with the mapping `method.rest`;
  //  - serializes the response into `response` and calls Finish exactly once,
  //    when Clink's answer (or the failure) arrives.
  // A caller that cancels (or whose deadline passes) while a read is in flight
  // has that read aborted upstream (CallOptions::cancel); a write is never
  // aborted: it runs to its end and its result is stored for its idempotency
  // key as if the caller had waited.
  // Never blocks; returns at once. Tells the observer when the RPC starts
  // and, just before Finish, how it ended; logs one JSON line per RPC ("rpc":
  // method, code, latency, endpoint, upstream status, attempts, request id,
  // merchant, caller, key fingerprint, ...; never request or response
  // contents) and, for a write (not a GET), its audit line just before Finish
  // (server/audit_log.h).
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context,
                                  const ServedMethod& method,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response);

 private:
  class Call;  // The reactor of one RPC (rpc_forwarder.cc).

  // Reports the end of `call`, finishes it and logs its line. `call` may be
  // gone once this returns.
  void Complete(Call* call, clink::CallResult result);

  const clink::RestCodec& codec_;
  clink::ClinkApi& api_;
  const Clock& clock_;
  const ForwarderOptions options_;
  const absl::flat_hash_set<std::string> merchants_;
  RpcObserver& observer_;
  const std::shared_ptr<AuditLog> audit_;
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
// adapters/idempotency/idempotent_clink_api.h.
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

// ErrorInfo reason (domain gateway.clink, outcome not_sent) of a malformed
// call metadata header.
inline constexpr absl::string_view kInvalidMetadataReason = "INVALID_METADATA";

// Reads the three headers above into `options`, resolving the merchant
// (`merchants`, `default_merchant` as in ForwarderOptions). INVALID_ARGUMENT
// (with a BadRequest naming the metadata key, and an ErrorInfo
// kInvalidMetadataReason) when a header is malformed, the merchant is not
// configured, or there is neither a header nor a default.
absl::Status ReadCallMetadata(const grpc::CallbackServerContext& context,
                              const absl::flat_hash_set<std::string>& merchants,
                              absl::string_view default_merchant,
                              clink::CallOptions& options);
absl::Status ReadCallMetadata(const ClientMetadata& metadata,
                              const absl::flat_hash_set<std::string>& merchants,
                              absl::string_view default_merchant,
                              clink::CallOptions& options);

// The checks every gateway RPC starts with (the forwarder's and the
// EventService's), in this order: AuthorizeCall, ReadCallMetadata,
// ApplyCallPeer.

// The caller as the transport authenticated it.
struct CallPeer {
  // True when the call came over mutual TLS; `certificate` is then the client
  // certificate's facts.
  bool mtls = false;
  PeerCertificate certificate;
};
// No auth context (a call without a transport, in handler tests): no mTLS.
CallPeer ReadCallPeer(const grpc::CallbackServerContext& context);

// The authorization policy's verdict on a call of `path`
// ("/clink.gateway.v1.EventService/StreamEvents"): OK, or PERMISSION_DENIED
// (ErrorInfo CALLER_NOT_PERMITTED, outcome not_sent). When it is refused under
// mutual TLS, `options.caller` becomes the certificate's identity (for the
// audit line and metrics). A null `authz` allows every call.
absl::Status AuthorizeCall(const AuthzPolicyFile* authz, absl::string_view path,
                           const CallPeer& peer,
                           const grpc::CallbackServerContext& context,
                           clink::CallOptions& options);

// Under mutual TLS the certificate names the caller (ApplyPeerIdentity):
// PERMISSION_DENIED (ErrorInfo CALLER_MISMATCH, outcome not_sent) when
// x-clink-caller claims another. OK, nothing changed, without mTLS.
absl::Status ApplyCallPeer(const CallPeer& peer, clink::CallOptions& options);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_RPC_FORWARDER_H_
