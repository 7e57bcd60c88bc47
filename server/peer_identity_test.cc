#include "server/peer_identity.h"

#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

constexpr char kSpiffe[] = "spiffe://cluster.local/ns/shop/sa/checkout-web";

TEST(PeerIdentityTest, SpiffeIdFirstThenFirstDnsSan) {
  PeerCertificate peer;
  peer.spiffe_id = kSpiffe;
  peer.dns_sans = {"checkout.shop.svc", "other"};
  EXPECT_EQ(*CallerIdentity(peer), kSpiffe);
  peer.spiffe_id.clear();
  EXPECT_EQ(*CallerIdentity(peer), "checkout.shop.svc");
  peer.dns_sans.clear();
  EXPECT_EQ(CallerIdentity(peer).status().code(),
            absl::StatusCode::kPermissionDenied);
  peer.dns_sans = {"bad name"};
  EXPECT_EQ(CallerIdentity(peer).status().code(),
            absl::StatusCode::kPermissionDenied);
  peer.dns_sans = {std::string(256, 'a')};
  EXPECT_EQ(CallerIdentity(peer).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(PeerIdentityTest, TheCertificateIsTheScopeAndTheHeaderMustAgree) {
  PeerCertificate peer;
  peer.spiffe_id = kSpiffe;
  clink::CallOptions options;
  ASSERT_TRUE(ApplyPeerIdentity(peer, options).ok());
  EXPECT_EQ(options.caller, kSpiffe);
  EXPECT_TRUE(options.caller_authenticated);

  clink::CallOptions same;
  same.caller = kSpiffe;  // x-clink-caller, as ReadCallMetadata put it.
  EXPECT_TRUE(ApplyPeerIdentity(peer, same).ok());
  EXPECT_TRUE(same.caller_authenticated);

  clink::CallOptions other;
  other.caller = "checkout-web";
  const absl::Status status = ApplyPeerIdentity(peer, other);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(status.message().find("x-clink-caller"), std::string::npos);
  EXPECT_FALSE(other.caller_authenticated);
}

}  // namespace
}  // namespace clink_gateway::server
