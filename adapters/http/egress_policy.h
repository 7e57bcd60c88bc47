// Where the gateway may connect: only allow-listed hosts, and only public
// addresses (stripe/smokescreen's rules, applied inside the transport). Every
// address the transport is about to connect to (or to reuse a pooled
// connection to) is classified here first, so the check covers exactly the
// address used: no second DNS lookup can switch it (DNS rebinding).
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_EGRESS_POLICY_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_EGRESS_POLICY_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::http {

// Why an address is denied (the `reason` label of
// clink_gateway_egress_denied_total, and the ErrorInfo metadata of the RPC
// error). kNone: a public unicast address. Ranges follow the IANA IPv4 and
// IPv6 Special-Purpose Address Registries; where they are ambiguous the
// classifier denies (see the IPv6 notes below).
enum class AddressClass {
  kNone,
  kUnspecified,      // 0.0.0.0/8, ::/128
  kLoopback,         // 127.0.0.0/8, ::1/128
  kPrivate,          // RFC 1918: 10/8, 172.16/12, 192.168/16; and the
                     // deprecated IPv6 site-local fec0::/10 (RFC 3879)
  kLinkLocal,        // 169.254/16 (incl. 169.254.169.254, cloud metadata),
                     // fe80::/10
  kCarrierGradeNat,  // 100.64.0.0/10
  kMulticast,        // 224.0.0.0/4, ff00::/8
  kBroadcast,        // 255.255.255.255
  kReserved,         // 240.0.0.0/4, 192.0.0.0/24, 198.18.0.0/15
                     // (benchmarking), 192.88.99.0/24 (deprecated 6to4
                     // relay anycast); IPv6: everything outside 2000::/3
                     // that no other class names (100::/64 discard, the
                     // rest of ::/8, 5f00::/16 SRv6, ...), all of
                     // 2001::/23, 64:ff9b:1::/48, Teredo, and
                     // IPv4-compatible ::a.b.c.d with a public a.b.c.d
  kDocumentation,    // 192.0.2/24, 198.51.100/24, 203.0.113/24,
                     // 2001:db8::/32, 3fff::/20
  kUniqueLocal,      // fc00::/7
  kNotAllowedHost,   // The host is not on the allow-list (not an address
                     // class; used for the host check).
};

// "loopback", "private", "link_local", "carrier_grade_nat", ...: the
// enumerator in snake_case without the k ("none", "not_allowed_host").
// Bounded; metric label values.
absl::string_view AddressClassName(AddressClass c);

// A parsed CIDR range, IPv4 or IPv6.
struct Cidr {
  int family = AF_INET;  // AF_INET or AF_INET6
  uint8_t address[16] = {};
  int prefix_length = 0;
};

// "127.0.0.0/8", "::1/128", "10.1.2.3" (a single address). kInvalidArgument
// for anything else (including a host part with bits beyond the prefix).
absl::StatusOr<Cidr> ParseCidr(absl::string_view text);
// Comma-separated list of the above; empty text is an empty list.
absl::StatusOr<std::vector<Cidr>> ParseCidrList(absl::string_view text);

// The class of an IPv4 or IPv6 address given as 4 or 16 network-order bytes.
//
// IPv6 forms that embed an IPv4 address take the class of the embedded
// address when that one is denied. When it is public:
//   IPv4-mapped ::ffff:a.b.c.d        allowed (it is an IPv4 connection)
//   NAT64 well-known 64:ff9b::/96     allowed (RFC 6052: global only)
//   6to4 2002:AABB:CCDD::/48          allowed (AA.BB.CC.DD: the site's
//                                     6to4 router, which is public)
//   IPv4-compatible ::a.b.c.d         kReserved (deprecated, RFC 4291)
//   SIIT ::ffff:0:a.b.c.d             kReserved (not globally routed)
//   NAT64 local-use 64:ff9b:1::/48    kReserved (IANA: not globally
//                                     reachable; the embedding's position
//                                     depends on the operator's prefix
//                                     length, so only the /96 position,
//                                     the last 32 bits, names a reason)
//   Teredo 2001:0::/32                kReserved (a tunnel to whatever
//                                     client is behind the NAT; the client
//                                     is the last 32 bits XOR 0xffffffff)
// 2001::/23 (IETF protocol assignments) is denied as a whole, including the
// sub-blocks IANA lists as globally reachable (PCP/TURN/DNS-SD anycast
// 2001:1::1-3, AMT 2001:3::/32, AS112 2001:4:112::/48, ORCHIDv2
// 2001:20::/28, DRIP 2001:30::/28): none of them can be a payments API, and
// --egress_allow_cidrs can exempt one if ever needed. 2001:200:: onwards
// (outside the /23) is ordinary global unicast.
AddressClass ClassifyIPv4(const uint8_t bytes[4]);
AddressClass ClassifyIPv6(const uint8_t bytes[16]);
// From a sockaddr_in / sockaddr_in6; kReserved for any other family.
AddressClass ClassifySockaddr(const sockaddr* address);

// Parses a URL host the way libcurl, inet_aton and browsers (WHATWG URL)
// accept it, including the tricks that name an IP address in disguise:
// "2130706433" (decimal), "0177.0.0.1" (octal), "0x7f.1" (hex, short form),
// "127.1", "127.0.0.1." (trailing dot), "[::ffff:7f00:1]" (bracketed or not),
// "[fe80::1%25eth0]" (the zone id is dropped). Returns true and the bytes
// (the first 4 for AF_INET, the rest zeroed) when `host` is an IP literal in
// any such form; false for a name (including malformed numbers such as
// "08.1" or parts over 255, which resolvers do not treat as literals
// either). The host check is defence in depth: the address check on the
// address actually connected to is what stops a disguised literal.
bool ParseHostLiteral(absl::string_view host, int* family, uint8_t bytes[16]);

// "127.0.0.1", "::1" (no brackets), "::ffff:127.0.0.1": for logs and for
// comparing literals. AF_INET uses the first 4 bytes.
std::string FormatAddress(int family, const uint8_t bytes[16]);

// The host of an absolute URL (lower-cased; IPv6 literals keep their
// brackets), parsed strictly and without libcurl: "scheme://host[:port]"
// followed by nothing or by "/", "?" or "#". kInvalidArgument for anything
// else, in particular for userinfo ("https://allowed.example@127.0.0.1/"):
// the gateway never puts credentials in URLs, and parsers disagree on where
// userinfo ends, so refusing it beats guessing. Also refused: backslashes,
// whitespace, control and non-ASCII characters, percent-escapes (except an
// IPv6 zone id), an empty host and a port over 65535. The transport itself
// checks the host libcurl's CURLU parser gives (the same parser that then
// connects); this helper is for code that only has a URL string.
absl::StatusOr<std::string> HostOfUrl(absl::string_view url);

struct EgressPolicyOptions {
  // Hosts the gateway may call (names or IP literals); the host of
  // --clink_base_url by default. Compared exactly (no wildcards), after
  // lower-casing and dropping one trailing dot; IP literals are compared in
  // their canonical form (FormatAddress), so "0x7f.1" matches "127.0.0.1"
  // but "::ffff:127.0.0.1" does not. Empty: every host is denied.
  std::vector<std::string> allowed_hosts;
  // Ranges exempted from the deny list (--egress_allow_cidrs), e.g. the
  // emulator's 127.0.0.0/8 in tests. An IPv4 range also exempts the
  // IPv4-mapped form (::ffff:127.0.0.1), and an IPv6 range over
  // ::ffff:0:0/96 the plain IPv4 address; other embeddings (NAT64, 6to4,
  // Teredo) are not exempted by IPv4 ranges.
  std::vector<Cidr> allow_cidrs;
  // Log and count what would be denied, but let it through (roll-out).
  // Applies to both checks: the address classes and the host allow-list.
  bool report_only = false;
};

struct EgressDecision {
  bool allowed = true;  // false: refuse (never when report_only)
  AddressClass reason = AddressClass::kNone;  // kNone when nothing matched
  bool would_deny = false;  // report_only let a denied address through
};

class EgressPolicy {
 public:
  explicit EgressPolicy(EgressPolicyOptions options);

  // The host check, on the host as given (the transport passes the host
  // libcurl parsed from the URL; "allowed.example@127.0.0.1" is just a name
  // that is not on the list). Names are compared case-insensitively, one
  // trailing dot dropped. Literals in disguise are normalised first, so
  // "0x7f.1" is 127.0.0.1, and then classified as well: a denied address
  // class is the reason (even when the literal is allow-listed, unless an
  // allow_cidrs range exempts it), otherwise kNotAllowedHost when the host
  // is not on the list.
  EgressDecision CheckHost(absl::string_view host) const;
  // The address check, on the address about to be connected to. A null
  // address or a family other than AF_INET/AF_INET6 is kReserved.
  EgressDecision CheckAddress(const sockaddr* address) const;
  // `family` AF_INET (the first 4 bytes are used) or AF_INET6.
  EgressDecision CheckAddressBytes(int family, const uint8_t bytes[16]) const;

  const EgressPolicyOptions& options() const { return options_; }

 private:
  bool Exempt(int family, const uint8_t bytes[16]) const;
  EgressDecision Decide(AddressClass c) const;

  const EgressPolicyOptions options_;
  // allowed_hosts, normalised as CheckHost normalises the host.
  std::vector<std::string> normalized_hosts_;
};

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_EGRESS_POLICY_H_
