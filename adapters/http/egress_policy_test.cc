#include "adapters/http/egress_policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "adapters/http/curl_wrappers.h"
#include "gtest/gtest.h"

namespace clink_gateway::http {
namespace {

using C = AddressClass;

// An address in presentation form ("10.0.0.1", "::1") as bytes.
struct Address {
  int family = AF_INET;
  uint8_t bytes[16] = {};
};

Address ParseAddress(absl::string_view text) {
  Address address;
  const std::string copy(text);
  address.family = copy.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  EXPECT_EQ(inet_pton(address.family, copy.c_str(), address.bytes), 1)
      << "bad test address " << text;
  return address;
}

Cidr MustParseCidr(absl::string_view text) {
  absl::StatusOr<Cidr> cidr = ParseCidr(text);
  EXPECT_TRUE(cidr.ok()) << text << ": " << cidr.status();
  return cidr.ok() ? *cidr : Cidr{};
}

struct ClassRow {
  const char* address;
  AddressClass expected;
};

// Every range, with the first and last address of each and the neighbours
// just outside it, so moving a boundary by one breaks a row.
constexpr ClassRow kClassRows[] = {
    // IPv4 public.
    {"1.1.1.1", C::kNone},
    {"8.8.8.8", C::kNone},
    {"192.31.196.1", C::kNone},  // AS112: globally reachable, allowed.
    // 0.0.0.0/8 unspecified ("this network").
    {"0.0.0.0", C::kUnspecified},
    {"0.0.0.1", C::kUnspecified},
    {"0.255.255.255", C::kUnspecified},
    {"1.0.0.0", C::kNone},
    // 10.0.0.0/8.
    {"9.255.255.255", C::kNone},
    {"10.0.0.0", C::kPrivate},
    {"10.255.255.255", C::kPrivate},
    {"11.0.0.0", C::kNone},
    // 100.64.0.0/10 CGNAT.
    {"100.63.255.255", C::kNone},
    {"100.64.0.0", C::kCarrierGradeNat},
    {"100.100.100.200", C::kCarrierGradeNat},  // Alibaba metadata.
    {"100.127.255.255", C::kCarrierGradeNat},
    {"100.128.0.0", C::kNone},
    // 127.0.0.0/8.
    {"126.255.255.255", C::kNone},
    {"127.0.0.0", C::kLoopback},
    {"127.0.0.1", C::kLoopback},
    {"127.255.255.255", C::kLoopback},
    {"128.0.0.0", C::kNone},
    // 169.254.0.0/16 link-local, cloud metadata.
    {"169.253.255.255", C::kNone},
    {"169.254.0.0", C::kLinkLocal},
    {"169.254.169.254", C::kLinkLocal},
    {"169.254.255.255", C::kLinkLocal},
    {"169.255.0.0", C::kNone},
    // 172.16.0.0/12.
    {"172.15.255.255", C::kNone},
    {"172.16.0.0", C::kPrivate},
    {"172.31.255.255", C::kPrivate},
    {"172.32.0.0", C::kNone},
    // 192.0.0.0/24 IETF protocol assignments, 192.0.2.0/24 TEST-NET-1.
    {"191.255.255.255", C::kNone},
    {"192.0.0.0", C::kReserved},
    {"192.0.0.9", C::kReserved},  // PCP anycast: denied with the /24.
    {"192.0.0.255", C::kReserved},
    {"192.0.1.0", C::kNone},
    {"192.0.1.255", C::kNone},
    {"192.0.2.0", C::kDocumentation},
    {"192.0.2.255", C::kDocumentation},
    {"192.0.3.0", C::kNone},
    // 192.88.99.0/24 deprecated 6to4 relay anycast.
    {"192.88.98.255", C::kNone},
    {"192.88.99.0", C::kReserved},
    {"192.88.99.255", C::kReserved},
    {"192.88.100.0", C::kNone},
    // 192.168.0.0/16.
    {"192.167.255.255", C::kNone},
    {"192.168.0.0", C::kPrivate},
    {"192.168.255.255", C::kPrivate},
    {"192.169.0.0", C::kNone},
    // 198.18.0.0/15 benchmarking.
    {"198.17.255.255", C::kNone},
    {"198.18.0.0", C::kReserved},
    {"198.19.255.255", C::kReserved},
    {"198.20.0.0", C::kNone},
    // 198.51.100.0/24 TEST-NET-2, 203.0.113.0/24 TEST-NET-3.
    {"198.51.99.255", C::kNone},
    {"198.51.100.0", C::kDocumentation},
    {"198.51.100.255", C::kDocumentation},
    {"198.51.101.0", C::kNone},
    {"203.0.112.255", C::kNone},
    {"203.0.113.0", C::kDocumentation},
    {"203.0.113.255", C::kDocumentation},
    {"203.0.114.0", C::kNone},
    // 224.0.0.0/4 multicast, 240.0.0.0/4 reserved, broadcast.
    {"223.255.255.255", C::kNone},
    {"224.0.0.0", C::kMulticast},
    {"239.255.255.255", C::kMulticast},
    {"240.0.0.0", C::kReserved},
    {"255.255.255.254", C::kReserved},
    {"255.255.255.255", C::kBroadcast},

    // IPv6 public.
    {"2606:4700:4700::1111", C::kNone},
    {"2a00:1450:4001:80b::200e", C::kNone},
    {"2620:4f:8000::1", C::kNone},  // AS112 direct delegation: global.
    // ::/128, ::1/128.
    {"::", C::kUnspecified},
    {"::1", C::kLoopback},
    // IPv4-compatible ::a.b.c.d: embedded reason, else reserved.
    {"::2", C::kUnspecified},  // ::0.0.0.2
    {"::127.0.0.1", C::kLoopback},
    {"::10.0.0.1", C::kPrivate},
    {"::169.254.169.254", C::kLinkLocal},
    {"::8.8.8.8", C::kReserved},
    // IPv4-mapped ::ffff:a.b.c.d: the embedded class, public allowed.
    {"::ffff:127.0.0.1", C::kLoopback},
    {"::ffff:7f00:1", C::kLoopback},
    {"::ffff:0.0.0.0", C::kUnspecified},
    {"::ffff:10.0.0.1", C::kPrivate},
    {"::ffff:172.16.0.1", C::kPrivate},
    {"::ffff:192.168.1.1", C::kPrivate},
    {"::ffff:100.64.0.1", C::kCarrierGradeNat},
    {"::ffff:169.254.169.254", C::kLinkLocal},
    {"::ffff:224.0.0.1", C::kMulticast},
    {"::ffff:255.255.255.255", C::kBroadcast},
    {"::ffff:240.0.0.1", C::kReserved},
    {"::ffff:192.0.2.1", C::kDocumentation},
    {"::ffff:8.8.8.8", C::kNone},
    {"::ffff:172.15.255.255", C::kNone},
    // SIIT ::ffff:0:a.b.c.d: embedded reason, else reserved.
    {"::ffff:0:127.0.0.1", C::kLoopback},
    {"::ffff:0:8.8.8.8", C::kReserved},
    // The rest of ::/8 is reserved.
    {"::1:0:0:0", C::kReserved},
    {"::fffe:8.8.8.8", C::kReserved},
    {"ff::", C::kReserved},
    // NAT64 well-known 64:ff9b::/96: embedded class, public allowed.
    {"64:ff9b::127.0.0.1", C::kLoopback},
    {"64:ff9b::10.0.0.1", C::kPrivate},
    {"64:ff9b::169.254.169.254", C::kLinkLocal},
    {"64:ff9b::100.64.0.1", C::kCarrierGradeNat},
    {"64:ff9b::8.8.8.8", C::kNone},
    {"64:ff9b::1:808:808", C::kReserved},  // Outside the /96.
    {"64:ff9a:ffff:ffff:ffff:ffff:808:808", C::kReserved},
    // NAT64 local-use 64:ff9b:1::/48: embedded reason, else reserved.
    {"64:ff9b:1::127.0.0.1", C::kLoopback},
    {"64:ff9b:1::8.8.8.8", C::kReserved},
    {"64:ff9b:1:ffff:ffff:ffff:808:808", C::kReserved},
    {"64:ff9b:2::8.8.8.8", C::kReserved},
    // 100::/64 discard-only (and the rest of 100::/8).
    {"100::", C::kReserved},
    {"100::ffff:ffff:ffff:ffff", C::kReserved},
    {"100:0:0:1::1", C::kReserved},
    // Teredo 2001::/32: client = last 32 bits XOR 0xffffffff.
    {"2001:0:4136:e378:8000:63bf:80ff:fffe", C::kLoopback},  // 127.0.0.1
    {"2001:0:4136:e378:8000:63bf:f5ff:fffe", C::kPrivate},   // 10.0.0.1
    {"2001:0:4136:e378:8000:63bf:5601:5601", C::kLinkLocal},
    {"2001:0:4136:e378:8000:63bf:ffff:ffff", C::kUnspecified},  // 0.0.0.0
    {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", C::kReserved},     // 8.8.8.8
    // 2001::/23 IETF protocol assignments, denied whole.
    {"2001:1::1", C::kReserved},      // PCP anycast.
    {"2001:1::2", C::kReserved},      // TURN anycast.
    {"2001:2::1", C::kReserved},      // Benchmarking.
    {"2001:3::1", C::kReserved},      // AMT.
    {"2001:4:112::1", C::kReserved},  // AS112-v6.
    {"2001:10::1", C::kReserved},     // ORCHID.
    {"2001:20::1", C::kReserved},     // ORCHIDv2.
    {"2001:30::1", C::kReserved},     // DRIP.
    {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", C::kReserved},
    {"2001:200::", C::kNone},
    {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kNone},
    // 2001:db8::/32 and 3fff::/20 documentation.
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", C::kNone},
    {"2001:db8::", C::kDocumentation},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", C::kDocumentation},
    {"2001:db9::", C::kNone},
    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kNone},
    {"3fff::", C::kDocumentation},
    {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", C::kDocumentation},
    {"3fff:1000::", C::kNone},
    // 6to4 2002::/16: embedded class, public allowed.
    {"2002:7f00:1::1", C::kLoopback},
    {"2002:a00:1::1", C::kPrivate},
    {"2002:a9fe:a9fe::1", C::kLinkLocal},
    {"2002:c000:201::1", C::kDocumentation},
    {"2002::", C::kUnspecified},
    {"2002:808:808::1", C::kNone},
    {"2003::1", C::kNone},
    // Outside 2000::/3: reserved unless named below.
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kReserved},
    {"2000::", C::kNone},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kNone},
    {"4000::", C::kReserved},
    {"5f00::1", C::kReserved},  // SRv6 SIDs.
    // fc00::/7 unique local.
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kReserved},
    {"fc00::", C::kUniqueLocal},
    {"fd00::1", C::kUniqueLocal},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kUniqueLocal},
    {"fe00::", C::kReserved},
    // fe80::/10 link-local, fec0::/10 site-local.
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kReserved},
    {"fe80::", C::kLinkLocal},
    {"fe80::1", C::kLinkLocal},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kLinkLocal},
    {"fec0::", C::kPrivate},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kPrivate},
    // ff00::/8 multicast.
    {"ff00::", C::kMulticast},
    {"ff02::1", C::kMulticast},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kMulticast},
};

TEST(EgressPolicyTest, ClassifiesEveryRange) {
  const EgressPolicy policy{EgressPolicyOptions{}};
  for (const ClassRow& row : kClassRows) {
    SCOPED_TRACE(row.address);
    const Address address = ParseAddress(row.address);
    const AddressClass c = address.family == AF_INET
                               ? ClassifyIPv4(address.bytes)
                               : ClassifyIPv6(address.bytes);
    EXPECT_EQ(AddressClassName(c), AddressClassName(row.expected));

    // The same through a sockaddr, as the transport sees it.
    sockaddr_storage storage = {};
    if (address.family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&storage);
      in->sin_family = AF_INET;
      std::memcpy(&in->sin_addr, address.bytes, 4);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
      in6->sin6_family = AF_INET6;
      std::memcpy(&in6->sin6_addr, address.bytes, 16);
    }
    const auto* sa = reinterpret_cast<const sockaddr*>(&storage);
    EXPECT_EQ(AddressClassName(ClassifySockaddr(sa)),
              AddressClassName(row.expected));

    // Deny by default: only kNone is allowed.
    const EgressDecision decision = policy.CheckAddress(sa);
    EXPECT_EQ(decision.allowed, row.expected == C::kNone);
    EXPECT_EQ(AddressClassName(decision.reason),
              AddressClassName(row.expected));
    EXPECT_FALSE(decision.would_deny);
    const EgressDecision by_bytes =
        policy.CheckAddressBytes(address.family, address.bytes);
    EXPECT_EQ(by_bytes.allowed, decision.allowed);
    EXPECT_EQ(by_bytes.reason, decision.reason);
  }
}

TEST(EgressPolicyTest, OtherFamiliesAndNullAreReserved) {
  const EgressPolicy policy{EgressPolicyOptions{}};
  sockaddr_un un = {};
  un.sun_family = AF_UNIX;
  const auto* sa = reinterpret_cast<const sockaddr*>(&un);
  EXPECT_EQ(ClassifySockaddr(sa), C::kReserved);
  EXPECT_EQ(ClassifySockaddr(nullptr), C::kReserved);
  EXPECT_FALSE(policy.CheckAddress(sa).allowed);
  EXPECT_FALSE(policy.CheckAddress(nullptr).allowed);
  const uint8_t bytes[16] = {8, 8, 8, 8};
  EXPECT_FALSE(policy.CheckAddressBytes(AF_UNIX, bytes).allowed);
  EXPECT_TRUE(policy.CheckAddressBytes(AF_INET, bytes).allowed);
}

TEST(EgressPolicyTest, AddressClassNamesAreDistinctLabels) {
  const std::vector<std::pair<AddressClass, absl::string_view>> names = {
      {C::kNone, "none"},
      {C::kUnspecified, "unspecified"},
      {C::kLoopback, "loopback"},
      {C::kPrivate, "private"},
      {C::kLinkLocal, "link_local"},
      {C::kCarrierGradeNat, "carrier_grade_nat"},
      {C::kMulticast, "multicast"},
      {C::kBroadcast, "broadcast"},
      {C::kReserved, "reserved"},
      {C::kDocumentation, "documentation"},
      {C::kUniqueLocal, "unique_local"},
      {C::kNotAllowedHost, "not_allowed_host"},
  };
  std::set<absl::string_view> seen;
  for (const auto& [c, name] : names) {
    EXPECT_EQ(AddressClassName(c), name);
    EXPECT_TRUE(seen.insert(name).second) << name;
  }
}

TEST(EgressPolicyTest, ParseCidrAcceptsRangesAndSingleAddresses) {
  struct Row {
    const char* text;
    int family;
    int prefix_length;
    const char* address;
  };
  const Row rows[] = {
      {"127.0.0.0/8", AF_INET, 8, "127.0.0.0"},
      {"10.1.2.3", AF_INET, 32, "10.1.2.3"},
      {"10.1.2.3/32", AF_INET, 32, "10.1.2.3"},
      {"0.0.0.0/0", AF_INET, 0, "0.0.0.0"},
      {"10.0.0.0/7", AF_INET, 7, "10.0.0.0"},
      {"172.16.0.0/12", AF_INET, 12, "172.16.0.0"},
      {"::1/128", AF_INET6, 128, "::1"},
      {"::1", AF_INET6, 128, "::1"},
      {"::/0", AF_INET6, 0, "::"},
      {"fc00::/7", AF_INET6, 7, "fc00::"},
      {"::ffff:127.0.0.0/104", AF_INET6, 104, "::ffff:127.0.0.0"},
      {"2001:DB8::/32", AF_INET6, 32, "2001:db8::"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.text);
    absl::StatusOr<Cidr> cidr = ParseCidr(row.text);
    ASSERT_TRUE(cidr.ok()) << cidr.status();
    EXPECT_EQ(cidr->family, row.family);
    EXPECT_EQ(cidr->prefix_length, row.prefix_length);
    EXPECT_EQ(FormatAddress(cidr->family, cidr->address), row.address);
  }
}

TEST(EgressPolicyTest, ParseCidrRejectsMalformedText) {
  const char* const rows[] = {
      "",
      "/8",
      "127.0.0.0/",
      "127.0.0.0/33",
      "::/129",
      "127.0.0.1/8",  // Host bits beyond the prefix.
      "11.0.0.0/7",   // 11 = 00001011: bit 7 is beyond the prefix.
      "fc00::1/7",
      "::1/127",
      "10.0.0.0/-1",
      "10.0.0.0/+8",
      "10.0.0.0/08",
      "10.0.0.0/8/8",
      "10.0.0.0/1000",
      "::1/12a",
      "10.0.0.0 /8",
      " 10.0.0.0/8",
      "10.0.0.0/8 ",
      "0177.0.0.1/32",  // Loose literals are for URLs, not configuration.
      "0x7f.0.0.1",
      "127.1/32",
      "2130706433",
      "10.0.0.256/32",
      "1.2.3.4.5",
      "fe80::1%eth0/128",
      "[::1]/128",
      "example.com/32",
      ":::1/128",
  };
  for (const char* text : rows) {
    SCOPED_TRACE(text);
    absl::StatusOr<Cidr> cidr = ParseCidr(text);
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(EgressPolicyTest, ParseCidrList) {
  absl::StatusOr<std::vector<Cidr>> empty = ParseCidrList("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  absl::StatusOr<std::vector<Cidr>> blank = ParseCidrList("  ");
  ASSERT_TRUE(blank.ok());
  EXPECT_TRUE(blank->empty());

  absl::StatusOr<std::vector<Cidr>> two = ParseCidrList("127.0.0.0/8, ::1/128");
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].family, AF_INET);
  EXPECT_EQ((*two)[0].prefix_length, 8);
  EXPECT_EQ((*two)[1].family, AF_INET6);
  EXPECT_EQ((*two)[1].prefix_length, 128);

  for (const char* bad : {"127.0.0.0/8,,::1/128", "127.0.0.0/8,", ",",
                          "127.0.0.0/8,bogus", "127.0.0.0/8;::1/128"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(ParseCidrList(bad).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(EgressPolicyTest, AllowCidrsExemptOnlyTheirRange) {
  struct Row {
    const char* allow;  // ParseCidrList text.
    const char* address;
    bool allowed;
    AddressClass reason;
  };
  const Row rows[] = {
      {"127.0.0.0/8", "127.0.0.1", true, C::kNone},
      {"127.0.0.0/8", "127.0.0.0", true, C::kNone},
      {"127.0.0.0/8", "127.255.255.255", true, C::kNone},
      {"127.0.0.0/8", "::ffff:127.0.0.1", true, C::kNone},  // Mapped.
      {"127.0.0.0/8", "::1", false, C::kLoopback},
      {"127.0.0.0/8", "::127.0.0.1", false, C::kLoopback},  // Compatible.
      {"127.0.0.0/8", "64:ff9b::127.0.0.1", false, C::kLoopback},
      {"127.0.0.0/8", "2002:7f00:1::", false, C::kLoopback},
      {"127.0.0.0/8", "10.0.0.1", false, C::kPrivate},
      {"127.0.0.0/8", "169.254.169.254", false, C::kLinkLocal},
      {"::1/128", "::1", true, C::kNone},
      {"::1/128", "127.0.0.1", false, C::kLoopback},
      {"::1/128", "::2", false, C::kUnspecified},
      {"::1/128", "::ffff:127.0.0.1", false, C::kLoopback},
      {"10.1.2.3/32", "10.1.2.3", true, C::kNone},
      {"10.1.2.3", "::ffff:10.1.2.3", true, C::kNone},
      {"10.1.2.3/32", "10.1.2.2", false, C::kPrivate},
      {"10.1.2.3/32", "10.1.2.4", false, C::kPrivate},
      {"::ffff:10.0.0.0/104", "10.9.9.9", true, C::kNone},
      {"::ffff:10.0.0.0/104", "11.0.0.1", true, C::kNone},  // Public anyway.
      {"::ffff:10.0.0.0/104", "172.16.0.1", false, C::kPrivate},
      {"fd00::/8", "fd12:3456::1", true, C::kNone},
      {"fd00::/8", "fc00::1", false, C::kUniqueLocal},
      {"127.0.0.0/8, fe80::/10", "fe80::1", true, C::kNone},
      {"127.0.0.0/8, fe80::/10", "127.0.0.1", true, C::kNone},
      {"", "127.0.0.1", false, C::kLoopback},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(std::string(row.allow) + " / " + row.address);
    absl::StatusOr<std::vector<Cidr>> cidrs = ParseCidrList(row.allow);
    ASSERT_TRUE(cidrs.ok()) << cidrs.status();
    EgressPolicyOptions options;
    options.allow_cidrs = *cidrs;
    const EgressPolicy policy(std::move(options));
    const Address address = ParseAddress(row.address);
    const EgressDecision decision =
        policy.CheckAddressBytes(address.family, address.bytes);
    EXPECT_EQ(decision.allowed, row.allowed);
    EXPECT_EQ(AddressClassName(decision.reason), AddressClassName(row.reason));
    EXPECT_FALSE(decision.would_deny);
  }
}

TEST(EgressPolicyTest, ReportOnlyLetsDeniedThroughButSaysWhy) {
  EgressPolicyOptions options;
  options.allowed_hosts = {"api.clink.example"};
  options.allow_cidrs = {MustParseCidr("127.0.0.0/8")};
  options.report_only = true;
  const EgressPolicy report_only(options);
  options.report_only = false;
  const EgressPolicy enforcing(options);

  const Address metadata = ParseAddress("169.254.169.254");
  EgressDecision d =
      report_only.CheckAddressBytes(metadata.family, metadata.bytes);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.would_deny);
  EXPECT_EQ(d.reason, C::kLinkLocal);
  d = enforcing.CheckAddressBytes(metadata.family, metadata.bytes);
  EXPECT_FALSE(d.allowed);
  EXPECT_FALSE(d.would_deny);
  EXPECT_EQ(d.reason, C::kLinkLocal);

  const Address mapped = ParseAddress("::ffff:10.0.0.1");
  d = report_only.CheckAddressBytes(mapped.family, mapped.bytes);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.would_deny);
  EXPECT_EQ(d.reason, C::kPrivate);

  // Exempt and public addresses are not "would deny".
  for (const char* text : {"127.0.0.1", "8.8.8.8", "2606:4700::1111"}) {
    SCOPED_TRACE(text);
    const Address a = ParseAddress(text);
    d = report_only.CheckAddressBytes(a.family, a.bytes);
    EXPECT_TRUE(d.allowed);
    EXPECT_FALSE(d.would_deny);
    EXPECT_EQ(d.reason, C::kNone);
  }

  // The host check too.
  d = report_only.CheckHost("evil.example");
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.would_deny);
  EXPECT_EQ(d.reason, C::kNotAllowedHost);
  d = enforcing.CheckHost("evil.example");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, C::kNotAllowedHost);
  d = report_only.CheckHost("0xa9fea9fe");
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.would_deny);
  EXPECT_EQ(d.reason, C::kLinkLocal);
  d = report_only.CheckHost("api.clink.example");
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.would_deny);
}

TEST(EgressPolicyTest, ParseHostLiteralSeesThroughDisguises) {
  struct Row {
    const char* host;
    const char* canonical;  // nullptr: not a literal (a name).
  };
  const Row rows[] = {
      {"127.0.0.1", "127.0.0.1"},
      {"2130706433", "127.0.0.1"},  // Decimal.
      {"0177.0.0.1", "127.0.0.1"},  // Octal.
      {"0x7f.1", "127.0.0.1"},      // Hex, short form.
      {"0X7F.1", "127.0.0.1"},
      {"0x7f000001", "127.0.0.1"},    // Hex, one part.
      {"017700000001", "127.0.0.1"},  // Octal, one part.
      {"127.1", "127.0.0.1"},         // Short form.
      {"127.0.1", "127.0.0.1"},
      {"127.0.0.1.", "127.0.0.1"},  // Trailing dot.
      {"0x7f.0x0.0x0.0x1", "127.0.0.1"},
      {"00000177.0.0.01", "127.0.0.1"},
      {"0x", "0.0.0.0"},
      {"0", "0.0.0.0"},
      {"4294967295", "255.255.255.255"},
      {"169.254.43518", "169.254.169.254"},
      {"0xa9fea9fe", "169.254.169.254"},
      {"0251.0376.0251.0376", "169.254.169.254"},
      {"10.0x10000", "10.1.0.0"},  // The last part fills 3 bytes.
      {"1.2.65535", "1.2.255.255"},
      {"[::ffff:7f00:1]", "::ffff:127.0.0.1"},
      {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
      {"::ffff:7f00:1", "::ffff:127.0.0.1"},  // Unbracketed.
      {"[::1]", "::1"},
      {"[0:0:0:0:0:0:0:1]", "::1"},
      {"[fe80::1%25eth0]", "fe80::1"},  // Zone id, URL-encoded.
      {"[FE80::1%eth0]", "fe80::1"},
      // Names, or malformed numbers that resolvers don't take as literals.
      {"4294967296", nullptr},
      {"256.0.0.1", nullptr},
      {"1.2.3.256", nullptr},
      {"1.2.65536", nullptr},
      {"1.16777216", nullptr},
      {"1.2.3.4.5", nullptr},
      {"08.0.0.1", nullptr},
      {"0x7g.1", nullptr},
      {"1..1", nullptr},
      {".1", nullptr},
      {"-1", nullptr},
      {"+1", nullptr},
      {" 127.0.0.1", nullptr},
      {"127.0.0.1 ", nullptr},
      {"example.com", nullptr},
      {"allowed.example@127.0.0.1", nullptr},
      {"", nullptr},
      {"[::1", nullptr},
      {"::1]", nullptr},
      {"[]", nullptr},
      {"[127.0.0.1]", nullptr},
      {"[fe80::1%]", nullptr},
      {"[::ffff:0177.0.0.1]", nullptr},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.host);
    int family = 0;
    uint8_t bytes[16];
    const bool literal = ParseHostLiteral(row.host, &family, bytes);
    if (row.canonical == nullptr) {
      EXPECT_FALSE(literal) << FormatAddress(family, bytes);
    } else {
      ASSERT_TRUE(literal);
      EXPECT_EQ(FormatAddress(family, bytes), row.canonical);
    }
  }
}

TEST(EgressPolicyTest, CheckHostAllowListAndLiteralTricks) {
  EgressPolicyOptions options;
  options.allowed_hosts = {"API.clink.example.", "allowed.example"};
  const EgressPolicy policy(std::move(options));
  struct Row {
    const char* host;
    bool allowed;
    AddressClass reason;
  };
  const Row rows[] = {
      {"api.clink.example", true, C::kNone},
      {"API.Clink.Example", true, C::kNone},
      {"api.clink.example.", true, C::kNone},
      {"allowed.example", true, C::kNone},
      {"api.clink.example..", false, C::kNotAllowedHost},
      {"clink.example", false, C::kNotAllowedHost},
      {"x.api.clink.example", false, C::kNotAllowedHost},
      {"api.clink.example.evil.example", false, C::kNotAllowedHost},
      {"api.clink.example:443", false, C::kNotAllowedHost},
      {"evil.example", false, C::kNotAllowedHost},
      {"", false, C::kNotAllowedHost},
      {".", false, C::kNotAllowedHost},
      // Userinfo tricks are just names that are not on the list.
      {"allowed.example@127.0.0.1", false, C::kNotAllowedHost},
      {"127.0.0.1@allowed.example", false, C::kNotAllowedHost},
      // Literals in disguise: classified after normalising.
      {"127.0.0.1", false, C::kLoopback},
      {"2130706433", false, C::kLoopback},
      {"0177.0.0.1", false, C::kLoopback},
      {"0x7f.1", false, C::kLoopback},
      {"0x7f000001", false, C::kLoopback},
      {"017700000001", false, C::kLoopback},
      {"127.1", false, C::kLoopback},
      {"127.0.0.1.", false, C::kLoopback},
      {"[::ffff:7f00:1]", false, C::kLoopback},
      {"[::1]", false, C::kLoopback},
      {"[::127.0.0.1]", false, C::kLoopback},
      {"[64:ff9b::7f00:1]", false, C::kLoopback},
      {"[fe80::1%25eth0]", false, C::kLinkLocal},
      {"169.254.43518", false, C::kLinkLocal},
      {"0xa9fea9fe", false, C::kLinkLocal},
      {"0x0a.1", false, C::kPrivate},
      {"0", false, C::kUnspecified},
      {"[fd00::1]", false, C::kUniqueLocal},
      // A public literal still has to be on the list.
      {"8.8.8.8", false, C::kNotAllowedHost},
      {"[2606:4700::1111]", false, C::kNotAllowedHost},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.host);
    const EgressDecision decision = policy.CheckHost(row.host);
    EXPECT_EQ(decision.allowed, row.allowed);
    EXPECT_EQ(AddressClassName(decision.reason), AddressClassName(row.reason));
    EXPECT_FALSE(decision.would_deny);
  }
}

TEST(EgressPolicyTest, CheckHostComparesNormalisedLiterals) {
  EgressPolicyOptions options;
  options.allowed_hosts = {"8.8.8.8", "[2606:4700::1111]", "127.0.0.1"};
  const EgressPolicy policy(options);
  options.allow_cidrs = {MustParseCidr("127.0.0.0/8")};
  const EgressPolicy with_loopback(options);
  struct Row {
    const EgressPolicy* policy;
    const char* host;
    bool allowed;
    AddressClass reason;
  };
  const Row rows[] = {
      {&policy, "8.8.8.8", true, C::kNone},
      {&policy, "134744072", true, C::kNone},
      {&policy, "0x8.0x8.0x8.0x8", true, C::kNone},
      {&policy, "8.8.2056", true, C::kNone},
      {&policy, "8.8.8.9", false, C::kNotAllowedHost},
      // A mapped literal is another spelling, not the listed one.
      {&policy, "[::ffff:8.8.8.8]", false, C::kNotAllowedHost},
      {&policy, "[2606:4700::1111]", true, C::kNone},
      {&policy, "2606:4700:0:0:0:0:0:1111", true, C::kNone},
      {&policy, "[2606:4700:0::1111]", true, C::kNone},
      {&policy, "[2606:4700::1112]", false, C::kNotAllowedHost},
      // Listing a denied literal does not exempt it; allow_cidrs does.
      {&policy, "127.0.0.1", false, C::kLoopback},
      {&with_loopback, "127.0.0.1", true, C::kNone},
      {&with_loopback, "0x7f.1", true, C::kNone},
      {&with_loopback, "2130706433", true, C::kNone},
      {&with_loopback, "127.0.0.2", false, C::kNotAllowedHost},
      {&with_loopback, "[::1]", false, C::kLoopback},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.host);
    const EgressDecision decision = row.policy->CheckHost(row.host);
    EXPECT_EQ(decision.allowed, row.allowed);
    EXPECT_EQ(AddressClassName(decision.reason), AddressClassName(row.reason));
  }
}

TEST(EgressPolicyTest, NoAllowedHostsDeniesEveryHost) {
  const EgressPolicy policy{EgressPolicyOptions{}};
  EXPECT_EQ(policy.CheckHost("api.clink.example").reason, C::kNotAllowedHost);
  EXPECT_EQ(policy.CheckHost("8.8.8.8").reason, C::kNotAllowedHost);
  EXPECT_FALSE(policy.CheckHost("8.8.8.8").allowed);
}

TEST(EgressPolicyTest, HostOfUrlIsStrict) {
  struct Row {
    const char* url;
    const char* host;  // nullptr: kInvalidArgument.
  };
  const Row rows[] = {
      {"https://api.clink.example/v1/payments", "api.clink.example"},
      {"https://API.Clink.Example:8443", "api.clink.example"},
      {"https://api.clink.example?x=1", "api.clink.example"},
      {"https://api.clink.example#f", "api.clink.example"},
      {"https://api.clink.example./", "api.clink.example."},
      {"https://[::1]:443/", "[::1]"},
      {"https://[fe80::1%25eth0]/", "[fe80::1%25eth0]"},
      {"https://0x7f.1/", "0x7f.1"},
      {"https://2130706433/", "2130706433"},
      {"https://allowed.example@127.0.0.1/", nullptr},
      {"https://user:pw@api.clink.example/", nullptr},
      {"https://api.clink.example@/", nullptr},
      {"https://127.0.0.1\\@api.clink.example/", nullptr},
      {"https://api.clink.example\\.evil.example/", nullptr},
      {"https://api.clink.example /", nullptr},
      {"https://api.clink.example\t/", nullptr},
      {"https://ex\xc3\xa4mple/", nullptr},
      {"https://api%2eclink.example/", nullptr},
      {"https://[fe80::1%eth0]/", nullptr},
      {"https://[fe80::1%25eth/0]/", nullptr},
      {"https://[127.0.0.1]/", nullptr},
      {"https://[::1/", nullptr},
      {"https://[::1]x/", nullptr},
      {"https://", nullptr},
      {"https:///path", nullptr},
      {"https://:443/", nullptr},
      {"https://h:/", nullptr},
      {"https://h:80x/", nullptr},
      {"https://h:65536/", nullptr},
      {"https://h:0443000/", nullptr},
      {"https:/h", nullptr},
      {"h", nullptr},
      {"://h", nullptr},
      {"1https://h", nullptr},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.url);
    absl::StatusOr<std::string> host = HostOfUrl(row.url);
    if (row.host == nullptr) {
      EXPECT_EQ(host.status().code(), absl::StatusCode::kInvalidArgument)
          << (host.ok() ? *host : "");
    } else {
      ASSERT_TRUE(host.ok()) << host.status();
      EXPECT_EQ(*host, row.host);
    }
  }
  absl::StatusOr<std::string> port = HostOfUrl("https://h:65535/");
  ASSERT_TRUE(port.ok());
  EXPECT_EQ(*port, "h");
}

// libcurl's URL parser, which the transport uses, on the tricks: whatever
// host it would connect to, CheckHost denies it for the embedded reason, and
// ParseHostLiteral reads curl's host and HostOfUrl's host as the same address.
absl::StatusOr<std::string> CurlHost(const char* url) {
  CurlUrlPtr handle = MakeCurlUrl();
  if (handle == nullptr) return absl::ResourceExhaustedError("curl_url");
  if (CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, url, 0);
      rc != CURLUE_OK) {
    return absl::InvalidArgumentError(curl_url_strerror(rc));
  }
  char* host = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      host == nullptr) {
    return absl::InvalidArgumentError("no host");
  }
  std::string result(host);
  curl_free(host);
  return result;
}

TEST(EgressPolicyTest, UserinfoTrickConnectsToTheAddressAfterTheAt) {
  const char* const url = "https://allowed.example@127.0.0.1/";
  absl::StatusOr<std::string> curl_host = CurlHost(url);
  ASSERT_TRUE(curl_host.ok()) << curl_host.status();
  EXPECT_EQ(*curl_host, "127.0.0.1");

  EgressPolicyOptions options;
  options.allowed_hosts = {"allowed.example"};
  const EgressPolicy policy(std::move(options));
  const EgressDecision decision = policy.CheckHost(*curl_host);
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.reason, C::kLoopback);
  EXPECT_TRUE(policy.CheckHost("allowed.example").allowed);

  // The strict parser refuses the URL outright.
  EXPECT_EQ(HostOfUrl(url).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EgressPolicyTest, CurlAndParseHostLiteralAgreeOnDisguisedLiterals) {
  struct Row {
    const char* url;
    const char* canonical;
  };
  const Row rows[] = {
      {"https://2130706433/", "127.0.0.1"},
      {"https://0177.0.0.1/", "127.0.0.1"},
      {"https://0x7f.1/", "127.0.0.1"},
      {"https://0x7f000001/", "127.0.0.1"},
      {"https://017700000001/", "127.0.0.1"},
      {"https://127.1/", "127.0.0.1"},
      {"https://[::ffff:7f00:1]/", "::ffff:127.0.0.1"},
      {"https://0xa9fea9fe/", "169.254.169.254"},
  };
  EgressPolicyOptions options;
  options.allowed_hosts = {"allowed.example"};
  const EgressPolicy policy(std::move(options));
  for (const Row& row : rows) {
    SCOPED_TRACE(row.url);
    absl::StatusOr<std::string> curl_host = CurlHost(row.url);
    ASSERT_TRUE(curl_host.ok()) << curl_host.status();
    absl::StatusOr<std::string> our_host = HostOfUrl(row.url);
    ASSERT_TRUE(our_host.ok()) << our_host.status();
    for (const std::string& host : {*curl_host, *our_host}) {
      SCOPED_TRACE(host);
      int family = 0;
      uint8_t bytes[16];
      ASSERT_TRUE(ParseHostLiteral(host, &family, bytes));
      EXPECT_EQ(FormatAddress(family, bytes), row.canonical);
      const EgressDecision decision = policy.CheckHost(host);
      EXPECT_FALSE(decision.allowed);
      EXPECT_NE(decision.reason, C::kNone);
      EXPECT_NE(decision.reason, C::kNotAllowedHost);
    }
  }
}

}  // namespace
}  // namespace clink_gateway::http
