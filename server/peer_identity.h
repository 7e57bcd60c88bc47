// The calling service's identity under mutual TLS, and how it scopes a call.
#ifndef CLINK_GATEWAY_SERVER_PEER_IDENTITY_H_
#define CLINK_GATEWAY_SERVER_PEER_IDENTITY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "adapters/clink/clink_api.h"
#include "grpcpp/security/auth_context.h"

namespace clink_gateway::server {

// What gRPC's TLS handshake says about the peer (AuthContext properties).
struct PeerCertificate {
  // "peer_spiffe_id": the URI SAN when the certificate has exactly one URI
  // SAN and it is a valid SPIFFE id; empty otherwise.
  std::string spiffe_id;
  // "peer_uri": the URI SANs, in certificate order.
  std::vector<std::string> uri_sans;
  // "peer_dns": the DNS SANs, in certificate order.
  std::vector<std::string> dns_sans;
};

// Fills `out` with the peer's certificate facts and returns true when the call
// came over TLS; false (out untouched) on a plaintext port (--grpc_insecure).
bool ReadPeerCertificate(const grpc::AuthContext& auth, PeerCertificate& out);

// The caller identity of a verified client certificate: its SPIFFE id (e.g.
// "spiffe://cluster.local/ns/shop/sa/checkout-web"), else its first DNS SAN.
// PERMISSION_DENIED when it has neither, or when the one found is longer than
// 255 bytes or has a character outside [A-Za-z0-9._:/@-] (it becomes a log
// field and the idempotency scope).
absl::StatusOr<std::string> CallerIdentity(const PeerCertificate& peer);

// Under mutual TLS (`peer` from ReadPeerCertificate), makes the certificate's
// identity the call's caller: options.caller = CallerIdentity(peer),
// options.caller_authenticated = true. An `x-clink-caller` the caller sent
// (already in options.caller, see ReadCallMetadata) must equal it: a different
// one is PERMISSION_DENIED (naming the header), so no caller can act in
// another's idempotency scope. (Without TLS there is nothing to apply: the
// scope stays the x-clink-caller header, as before mutual TLS.)
absl::Status ApplyPeerIdentity(const PeerCertificate& peer,
                               clink::CallOptions& options);

// What an authorization policy's principals are matched against: the URI SANs,
// then the DNS SANs.
std::vector<std::string> Principals(const PeerCertificate& peer);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_PEER_IDENTITY_H_
