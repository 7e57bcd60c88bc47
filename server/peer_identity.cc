#include "server/peer_identity.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "grpc/grpc_security_constants.h"

namespace clink_gateway::server {
namespace {

constexpr size_t kMaxIdentityLength = 255;

bool IsIdentityChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("._:/@-").find(c) != absl::string_view::npos;
}

std::string Str(const grpc::string_ref& ref) {
  return std::string(ref.data(), ref.size());
}

}  // namespace

bool ReadPeerCertificate(const grpc::AuthContext& auth, PeerCertificate& out) {
  const std::vector<grpc::string_ref> type =
      auth.FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  if (type.empty() || (type[0] != GRPC_SSL_TRANSPORT_SECURITY_TYPE &&
                       type[0] != GRPC_TLS_TRANSPORT_SECURITY_TYPE)) {
    return false;
  }
  out = PeerCertificate();
  const std::vector<grpc::string_ref> spiffe =
      auth.FindPropertyValues(GRPC_PEER_SPIFFE_ID_PROPERTY_NAME);
  if (!spiffe.empty()) out.spiffe_id = Str(spiffe[0]);
  for (const grpc::string_ref& uri :
       auth.FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
    out.uri_sans.push_back(Str(uri));
  }
  for (const grpc::string_ref& dns :
       auth.FindPropertyValues(GRPC_PEER_DNS_PROPERTY_NAME)) {
    out.dns_sans.push_back(Str(dns));
  }
  return true;
}

absl::StatusOr<std::string> CallerIdentity(const PeerCertificate& peer) {
  const std::string& identity = !peer.spiffe_id.empty()  ? peer.spiffe_id
                                : !peer.dns_sans.empty() ? peer.dns_sans[0]
                                                         : peer.spiffe_id;
  if (identity.empty()) {
    return absl::PermissionDeniedError(
        "the client certificate names no SPIFFE id (URI SAN) and no DNS SAN");
  }
  if (identity.size() > kMaxIdentityLength ||
      !std::all_of(identity.begin(), identity.end(), IsIdentityChar)) {
    return absl::PermissionDeniedError(
        "the client certificate's identity is longer than 255 characters or "
        "has characters outside [A-Za-z0-9._:/@-]");
  }
  return identity;
}

absl::Status ApplyPeerIdentity(const PeerCertificate& peer,
                               clink::CallOptions& options) {
  absl::StatusOr<std::string> identity = CallerIdentity(peer);
  if (!identity.ok()) return identity.status();
  if (!options.caller.empty() && options.caller != *identity) {
    // Not echoed: the header is whatever the caller claims.
    return absl::PermissionDeniedError(absl::StrCat(
        "x-clink-caller differs from the client certificate's identity ",
        *identity, ": under mutual TLS the certificate names the caller"));
  }
  options.caller = *std::move(identity);
  options.caller_authenticated = true;
  return absl::OkStatus();
}

std::vector<std::string> Principals(const PeerCertificate& peer) {
  std::vector<std::string> out = peer.uri_sans;
  out.insert(out.end(), peer.dns_sans.begin(), peer.dns_sans.end());
  return out;
}

}  // namespace clink_gateway::server
