#include "adapters/http/egress_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::http {
namespace {

// One range of a classification table: the first `prefix_length` bits of
// `address` (network order).
struct Range4 {
  uint8_t address[4];
  int prefix_length;
  AddressClass address_class;
};

struct Range6 {
  uint8_t address[16];
  int prefix_length;
  AddressClass address_class;
};

// True when the first `prefix_length` bits of `a` and `b` are equal.
bool PrefixMatches(const uint8_t* a, const uint8_t* b, int prefix_length) {
  const int full_bytes = prefix_length / 8;
  if (std::memcmp(a, b, full_bytes) != 0) return false;
  const int rest = prefix_length % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full_bytes] & mask) == (b[full_bytes] & mask);
}

// The IPv4 table, most specific first where ranges overlap (the broadcast
// address is inside 240.0.0.0/4). IANA IPv4 Special-Purpose Address Registry;
// 192.0.0.0/24 is denied whole (its /32s for PCP and TURN anycast are not
// payments APIs), 192.88.99.0/24 (deprecated 6to4 relay anycast, RFC 7526)
// too.
constexpr Range4 kIPv4Ranges[] = {
    {{0, 0, 0, 0}, 8, AddressClass::kUnspecified},
    {{10, 0, 0, 0}, 8, AddressClass::kPrivate},
    {{100, 64, 0, 0}, 10, AddressClass::kCarrierGradeNat},
    {{127, 0, 0, 0}, 8, AddressClass::kLoopback},
    {{169, 254, 0, 0}, 16, AddressClass::kLinkLocal},
    {{172, 16, 0, 0}, 12, AddressClass::kPrivate},
    {{192, 0, 0, 0}, 24, AddressClass::kReserved},
    {{192, 0, 2, 0}, 24, AddressClass::kDocumentation},
    {{192, 88, 99, 0}, 24, AddressClass::kReserved},
    {{192, 168, 0, 0}, 16, AddressClass::kPrivate},
    {{198, 18, 0, 0}, 15, AddressClass::kReserved},
    {{198, 51, 100, 0}, 24, AddressClass::kDocumentation},
    {{203, 0, 113, 0}, 24, AddressClass::kDocumentation},
    {{224, 0, 0, 0}, 4, AddressClass::kMulticast},
    {{255, 255, 255, 255}, 32, AddressClass::kBroadcast},
    {{240, 0, 0, 0}, 4, AddressClass::kReserved},
};

// IPv6 ranges that embed no IPv4 address (those are handled in code first).
// Anything outside 2000::/3 that is not listed is kReserved.
constexpr Range6 kIPv6Ranges[] = {
    {{0x20, 0x01, 0x0d, 0xb8}, 32, AddressClass::kDocumentation},
    {{0x3f, 0xff}, 20, AddressClass::kDocumentation},
    {{0x20, 0x01}, 23, AddressClass::kReserved},
    {{0xff}, 8, AddressClass::kMulticast},
    {{0xfe, 0x80}, 10, AddressClass::kLinkLocal},
    {{0xfe, 0xc0}, 10, AddressClass::kPrivate},  // Deprecated site-local.
    {{0xfc}, 7, AddressClass::kUniqueLocal},
};

constexpr uint8_t kGlobalUnicast[16] = {0x20};                     // 2000::/3
constexpr uint8_t kNat64WellKnown[16] = {0x00, 0x64, 0xff, 0x9b};  // /96
constexpr uint8_t kNat64LocalUse[16] = {0x00, 0x64, 0xff,
                                        0x9b, 0x00, 0x01};  // /48
constexpr uint8_t kSixToFour[16] = {0x20, 0x02};            // /16
constexpr uint8_t kTeredo[16] = {0x20, 0x01};               // /32

bool IsZero(const uint8_t* bytes, int n) {
  for (int i = 0; i < n; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

// ::ffff:0:0/96.
bool IsIPv4Mapped(const uint8_t bytes[16]) {
  return IsZero(bytes, 10) && bytes[10] == 0xff && bytes[11] == 0xff;
}

// The embedded address's class when denied, else `if_public`.
AddressClass EmbeddedClass(const uint8_t ipv4[4], AddressClass if_public) {
  const AddressClass c = ClassifyIPv4(ipv4);
  return c == AddressClass::kNone ? if_public : c;
}

bool IsAsciiDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

// One part of a loose IPv4 literal: decimal, octal (leading 0) or hex
// (leading 0x; "0x" alone is 0, as in the WHATWG URL parser). False for
// anything else or a value over 32 bits.
bool ParseIPv4Part(absl::string_view part, uint64_t* value) {
  int base = 10;
  if (part.size() >= 2 && part[0] == '0' &&
      (part[1] == 'x' || part[1] == 'X')) {
    base = 16;
    part.remove_prefix(2);
  } else if (part.size() >= 2 && part[0] == '0') {
    base = 8;
    part.remove_prefix(1);
  }
  uint64_t result = 0;
  for (char c : part) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return false;
    }
    if (digit >= base) return false;
    result = result * base + digit;
    if (result > 0xffffffffu) return false;
  }
  *value = result;
  return true;
}

// "127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", with an
// optional trailing dot: inet_aton's and WHATWG's forms.
bool ParseLooseIPv4(absl::string_view host, uint8_t bytes[4]) {
  std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  if (parts.size() > 1 && parts.back().empty()) parts.pop_back();
  if (parts.empty() || parts.size() > 4) return false;
  uint64_t values[4] = {};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty() || !ParseIPv4Part(parts[i], &values[i])) return false;
  }
  const size_t last = parts.size() - 1;
  for (size_t i = 0; i < last; ++i) {
    if (values[i] > 255) return false;
  }
  // The last part fills the remaining bytes.
  const int last_bytes = static_cast<int>(4 - last);
  if (last_bytes < 4 && values[last] >= (uint64_t{1} << (8 * last_bytes))) {
    return false;
  }
  uint32_t address = 0;
  for (size_t i = 0; i < last; ++i) {
    address |= static_cast<uint32_t>(values[i]) << (8 * (3 - i));
  }
  address |= static_cast<uint32_t>(values[last]);
  bytes[0] = static_cast<uint8_t>(address >> 24);
  bytes[1] = static_cast<uint8_t>(address >> 16);
  bytes[2] = static_cast<uint8_t>(address >> 8);
  bytes[3] = static_cast<uint8_t>(address);
  return true;
}

// An IPv6 literal without brackets; a zone id ("%eth0", "%25eth0") is
// dropped.
bool ParseIPv6(absl::string_view text, uint8_t bytes[16]) {
  const size_t percent = text.find('%');
  if (percent != absl::string_view::npos) {
    if (percent + 1 == text.size()) return false;  // Empty zone id.
    text = text.substr(0, percent);
  }
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  const std::string copy(text);
  return inet_pton(AF_INET6, copy.c_str(), bytes) == 1;
}

// Lower-cased, one trailing dot dropped, literals in canonical form.
std::string NormalizeHost(absl::string_view host) {
  std::string lower = absl::AsciiStrToLower(host);
  if (!lower.empty() && lower.back() == '.') lower.pop_back();
  int family = 0;
  uint8_t bytes[16];
  if (ParseHostLiteral(lower, &family, bytes)) {
    return FormatAddress(family, bytes);
  }
  return lower;
}

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '-' || c == '_';
}

}  // namespace

absl::string_view AddressClassName(AddressClass c) {
  switch (c) {
    case AddressClass::kNone:
      return "none";
    case AddressClass::kUnspecified:
      return "unspecified";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kLinkLocal:
      return "link_local";
    case AddressClass::kCarrierGradeNat:
      return "carrier_grade_nat";
    case AddressClass::kMulticast:
      return "multicast";
    case AddressClass::kBroadcast:
      return "broadcast";
    case AddressClass::kReserved:
      return "reserved";
    case AddressClass::kDocumentation:
      return "documentation";
    case AddressClass::kUniqueLocal:
      return "unique_local";
    case AddressClass::kNotAllowedHost:
      return "not_allowed_host";
  }
  return "unknown";
}

absl::StatusOr<Cidr> ParseCidr(absl::string_view text) {
  Cidr cidr;
  absl::string_view address = text;
  absl::string_view prefix;
  bool has_prefix = false;
  if (const size_t slash = text.find('/'); slash != absl::string_view::npos) {
    address = text.substr(0, slash);
    prefix = text.substr(slash + 1);
    has_prefix = true;
  }
  if (address.empty() || address.size() >= INET6_ADDRSTRLEN) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a CIDR range: \"", text, "\""));
  }
  const std::string copy(address);
  if (address.find(':') != absl::string_view::npos) {
    cidr.family = AF_INET6;
    if (inet_pton(AF_INET6, copy.c_str(), cidr.address) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("not an IPv6 address in \"", text, "\""));
    }
  } else {
    cidr.family = AF_INET;
    // inet_pton is strict: four decimal parts, no leading zeros.
    if (inet_pton(AF_INET, copy.c_str(), cidr.address) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("not an IPv4 address in \"", text, "\""));
    }
  }
  const int max_prefix = cidr.family == AF_INET ? 32 : 128;
  cidr.prefix_length = max_prefix;
  if (has_prefix) {
    if (!IsAsciiDigits(prefix) || prefix.size() > 3 ||
        (prefix.size() > 1 && prefix[0] == '0')) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad prefix length in \"", text, "\""));
    }
    int length = 0;
    for (char c : prefix) length = length * 10 + (c - '0');
    if (length > max_prefix) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prefix length over ", max_prefix, " in \"", text, "\""));
    }
    cidr.prefix_length = length;
  }
  const int address_bytes = cidr.family == AF_INET ? 4 : 16;
  for (int bit = cidr.prefix_length; bit < address_bytes * 8; ++bit) {
    if (cidr.address[bit / 8] & (0x80 >> (bit % 8))) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" has host bits set beyond the /",
                       cidr.prefix_length, " prefix"));
    }
  }
  return cidr;
}

absl::StatusOr<std::vector<Cidr>> ParseCidrList(absl::string_view text) {
  std::vector<Cidr> result;
  if (absl::StripAsciiWhitespace(text).empty()) return result;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    absl::StatusOr<Cidr> cidr = ParseCidr(absl::StripAsciiWhitespace(item));
    if (!cidr.ok()) return cidr.status();
    result.push_back(*cidr);
  }
  return result;
}

AddressClass ClassifyIPv4(const uint8_t bytes[4]) {
  for (const Range4& range : kIPv4Ranges) {
    if (PrefixMatches(bytes, range.address, range.prefix_length)) {
      return range.address_class;
    }
  }
  return AddressClass::kNone;
}

AddressClass ClassifyIPv6(const uint8_t bytes[16]) {
  // Forms embedding an IPv4 address first.
  if (IsIPv4Mapped(bytes)) return ClassifyIPv4(bytes + 12);
  if (IsZero(bytes, 12)) {
    if (IsZero(bytes + 12, 3)) {
      if (bytes[15] == 0) return AddressClass::kUnspecified;
      if (bytes[15] == 1) return AddressClass::kLoopback;
    }
    // IPv4-compatible ::a.b.c.d (deprecated).
    return EmbeddedClass(bytes + 12, AddressClass::kReserved);
  }
  // SIIT IPv4-translated ::ffff:0:a.b.c.d (RFC 2765).
  if (IsZero(bytes, 8) && bytes[8] == 0xff && bytes[9] == 0xff &&
      bytes[10] == 0 && bytes[11] == 0) {
    return EmbeddedClass(bytes + 12, AddressClass::kReserved);
  }
  if (PrefixMatches(bytes, kNat64WellKnown, 96)) {
    return ClassifyIPv4(bytes + 12);
  }
  if (PrefixMatches(bytes, kNat64LocalUse, 48)) {
    return EmbeddedClass(bytes + 12, AddressClass::kReserved);
  }
  if (PrefixMatches(bytes, kSixToFour, 16)) return ClassifyIPv4(bytes + 2);
  if (PrefixMatches(bytes, kTeredo, 32)) {
    const uint8_t client[4] = {
        static_cast<uint8_t>(bytes[12] ^ 0xff),
        static_cast<uint8_t>(bytes[13] ^ 0xff),
        static_cast<uint8_t>(bytes[14] ^ 0xff),
        static_cast<uint8_t>(bytes[15] ^ 0xff),
    };
    return EmbeddedClass(client, AddressClass::kReserved);
  }
  for (const Range6& range : kIPv6Ranges) {
    if (PrefixMatches(bytes, range.address, range.prefix_length)) {
      return range.address_class;
    }
  }
  if (!PrefixMatches(bytes, kGlobalUnicast, 3)) return AddressClass::kReserved;
  return AddressClass::kNone;
}

AddressClass ClassifySockaddr(const sockaddr* address) {
  if (address == nullptr) return AddressClass::kReserved;
  if (address->sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, address, sizeof(in));
    uint8_t bytes[4];
    std::memcpy(bytes, &in.sin_addr, 4);
    return ClassifyIPv4(bytes);
  }
  if (address->sa_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, address, sizeof(in6));
    uint8_t bytes[16];
    std::memcpy(bytes, &in6.sin6_addr, 16);
    return ClassifyIPv6(bytes);
  }
  return AddressClass::kReserved;
}

bool ParseHostLiteral(absl::string_view host, int* family, uint8_t bytes[16]) {
  std::memset(bytes, 0, 16);
  if (host.empty()) return false;
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return false;
    if (!ParseIPv6(host.substr(1, host.size() - 2), bytes)) return false;
    *family = AF_INET6;
    return true;
  }
  if (host.find(':') != absl::string_view::npos) {
    if (!ParseIPv6(host, bytes)) return false;
    *family = AF_INET6;
    return true;
  }
  if (!ParseLooseIPv4(host, bytes)) {
    std::memset(bytes, 0, 16);
    return false;
  }
  *family = AF_INET;
  return true;
}

std::string FormatAddress(int family, const uint8_t bytes[16]) {
  char text[INET6_ADDRSTRLEN] = {};
  if ((family != AF_INET && family != AF_INET6) ||
      inet_ntop(family, bytes, text, sizeof(text)) == nullptr) {
    return "?";
  }
  return text;
}

absl::StatusOr<std::string> HostOfUrl(absl::string_view url) {
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '\\') {
      return absl::InvalidArgumentError(
          "URL has whitespace, control, non-ASCII or backslash characters");
    }
  }
  const size_t separator = url.find("://");
  if (separator == absl::string_view::npos || separator == 0) {
    return absl::InvalidArgumentError("URL has no scheme://");
  }
  const absl::string_view scheme = url.substr(0, separator);
  if (!absl::ascii_isalpha(static_cast<unsigned char>(scheme[0])) ||
      !std::all_of(scheme.begin(), scheme.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' ||
               c == '-' || c == '.';
      })) {
    return absl::InvalidArgumentError("URL has a malformed scheme");
  }
  absl::string_view authority = url.substr(separator + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "URL has userinfo (user@host), which is never allowed");
  }
  absl::string_view host;
  absl::string_view after_host;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("URL has an unclosed IPv6 literal");
    }
    host = authority.substr(0, close + 1);
    after_host = authority.substr(close + 1);
    int family = 0;
    uint8_t bytes[16];
    const absl::string_view inner = host.substr(1, host.size() - 2);
    const size_t percent = inner.find('%');
    // A zone id must be written %25<zone> in a URL (RFC 6874).
    if ((percent != absl::string_view::npos &&
         (inner.substr(percent, 3) != "%25" ||
          !std::all_of(inner.begin() + percent + 3, inner.end(),
                       IsHostNameChar))) ||
        !ParseHostLiteral(host, &family, bytes) || family != AF_INET6) {
      return absl::InvalidArgumentError("URL has a malformed IPv6 literal");
    }
  } else {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    after_host = colon == absl::string_view::npos ? absl::string_view()
                                                  : authority.substr(colon);
    if (!std::all_of(host.begin(), host.end(), IsHostNameChar)) {
      return absl::InvalidArgumentError(
          "URL host has characters other than letters, digits, '.', '-' "
          "and '_'");
    }
  }
  if (host.empty()) return absl::InvalidArgumentError("URL has no host");
  if (!after_host.empty()) {
    const absl::string_view port = after_host.substr(1);
    if (after_host[0] != ':' || !IsAsciiDigits(port) || port.size() > 5) {
      return absl::InvalidArgumentError("URL has a malformed port");
    }
    int value = 0;
    for (char c : port) value = value * 10 + (c - '0');
    if (value > 65535) return absl::InvalidArgumentError("URL port over 65535");
  }
  return absl::AsciiStrToLower(host);
}

EgressPolicy::EgressPolicy(EgressPolicyOptions options)
    : options_(std::move(options)) {
  for (const std::string& host : options_.allowed_hosts) {
    std::string normalized = NormalizeHost(host);
    if (!normalized.empty()) normalized_hosts_.push_back(std::move(normalized));
  }
}

EgressDecision EgressPolicy::CheckHost(absl::string_view host) const {
  std::string lower = absl::AsciiStrToLower(host);
  if (!lower.empty() && lower.back() == '.') lower.pop_back();
  if (lower.empty()) return Decide(AddressClass::kNotAllowedHost);
  int family = 0;
  uint8_t bytes[16];
  std::string normalized = std::move(lower);
  if (ParseHostLiteral(normalized, &family, bytes)) {
    EgressDecision decision = CheckAddressBytes(family, bytes);
    if (decision.reason != AddressClass::kNone) return decision;
    normalized = FormatAddress(family, bytes);
  }
  if (std::find(normalized_hosts_.begin(), normalized_hosts_.end(),
                normalized) == normalized_hosts_.end()) {
    return Decide(AddressClass::kNotAllowedHost);
  }
  return Decide(AddressClass::kNone);
}

EgressDecision EgressPolicy::CheckAddress(const sockaddr* address) const {
  if (address == nullptr) return Decide(AddressClass::kReserved);
  uint8_t bytes[16] = {};
  if (address->sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, address, sizeof(in));
    std::memcpy(bytes, &in.sin_addr, 4);
    return CheckAddressBytes(AF_INET, bytes);
  }
  if (address->sa_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, address, sizeof(in6));
    std::memcpy(bytes, &in6.sin6_addr, 16);
    return CheckAddressBytes(AF_INET6, bytes);
  }
  return Decide(AddressClass::kReserved);
}

EgressDecision EgressPolicy::CheckAddressBytes(int family,
                                               const uint8_t bytes[16]) const {
  AddressClass c;
  if (family == AF_INET) {
    c = ClassifyIPv4(bytes);
  } else if (family == AF_INET6) {
    c = ClassifyIPv6(bytes);
  } else {
    return Decide(AddressClass::kReserved);
  }
  if (c != AddressClass::kNone && Exempt(family, bytes)) {
    return Decide(AddressClass::kNone);
  }
  return Decide(c);
}

bool EgressPolicy::Exempt(int family, const uint8_t bytes[16]) const {
  uint8_t mapped[16] = {};  // ::ffff:a.b.c.d of an IPv4 address.
  if (family == AF_INET) {
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    std::memcpy(mapped + 12, bytes, 4);
  }
  for (const Cidr& cidr : options_.allow_cidrs) {
    if (family == AF_INET) {
      if (cidr.family == AF_INET &&
          PrefixMatches(bytes, cidr.address, cidr.prefix_length)) {
        return true;
      }
      if (cidr.family == AF_INET6 &&
          PrefixMatches(mapped, cidr.address, cidr.prefix_length)) {
        return true;
      }
    } else if (family == AF_INET6) {
      if (cidr.family == AF_INET6 &&
          PrefixMatches(bytes, cidr.address, cidr.prefix_length)) {
        return true;
      }
      if (cidr.family == AF_INET && IsIPv4Mapped(bytes) &&
          PrefixMatches(bytes + 12, cidr.address, cidr.prefix_length)) {
        return true;
      }
    }
  }
  return false;
}

EgressDecision EgressPolicy::Decide(AddressClass c) const {
  EgressDecision decision;
  decision.reason = c;
  if (c == AddressClass::kNone) return decision;
  if (options_.report_only) {
    decision.allowed = true;
    decision.would_deny = true;
  } else {
    decision.allowed = false;
  }
  return decision;
}

}  // namespace clink_gateway::http
