// What the gRPC services see of Clink: one asynchronous, generic entry point.
// The method descriptor carries the REST mapping, so adding an endpoint is a
// proto change, not new C++.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_API_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_API_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace clink_gateway::clink {

struct CallOptions {
  // The caller's gRPC deadline; bounds the upstream call. Already passed:
  // nothing is sent.
  absl::Time deadline = absl::InfiniteFuture();
  // Correlation id, sent upstream as X-Request-Id.
  std::string request_id;
  // The caller's idempotency key (gRPC metadata `idempotency-key`), or empty.
  // Only mutating RPCs use it; see idempotent_clink_api.h.
  std::string idempotency_key;
  // The calling identity the key is scoped to: under mutual TLS the client
  // certificate's SPIFFE id or first DNS SAN (server/peer_identity.h);
  // otherwise gRPC metadata `x-clink-caller`, or empty for anonymous callers.
  std::string caller;
  // True when `caller` comes from a verified client certificate (mutual TLS),
  // false when it is only what the caller claimed (x-clink-caller) or empty.
  bool caller_authenticated = false;
  // The merchant account to call Clink as (gRPC metadata `x-clink-merchant`,
  // resolved to the configured default when absent). Idempotency keys are
  // scoped by it too.
  std::string merchant;
};

// How one call went, for the per-RPC log line and metrics.
struct CallResult {
  // OK, or the mapped error (see error_mapping.h) with google.rpc details as
  // payloads.
  absl::Status status;
  // "POST /payment" (the path template, a bounded label), or empty if the RPC
  // is unknown.
  std::string endpoint;
  // The HTTP status Clink answered with, or 0 when no response arrived (or
  // nothing was sent).
  int http_status = 0;
  // JSON members in the response that the gateway has no field for (Clink API
  // drift).
  int unknown_fields = 0;
  // HTTP attempts made (0 when nothing was sent, 2+ after retries).
  int attempts = 0;
  // The result was replayed from the idempotency store: Clink was not called.
  bool replayed = false;
  // Secret::Fingerprint() of the key the last attempt was signed with; empty
  // when nothing was signed.
  std::string key_fingerprint;
};

class ClinkApi {
 public:
  using Callback = absl::AnyInvocable<void(CallResult) &&>;

  virtual ~ClinkApi() = default;

  // Validates `request`, sends it to the Clink endpoint annotated on `method`,
  // fills `response` and calls `done` exactly once — on a transport thread, or
  // inline when the request fails validation (INVALID_ARGUMENT, nothing sent).
  // Never blocks. `request` is only read during this call; `response` must stay
  // valid until `done` runs.
  virtual void Call(const google::protobuf::MethodDescriptor& method,
                    const google::protobuf::Message& request,
                    const CallOptions& options,
                    google::protobuf::Message* response, Callback done) = 0;
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_API_H_
