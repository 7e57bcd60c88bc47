// URL, host and IP-literal classification (adapters/http/egress_policy.h): the
// input is used whole as a host, a URL and a CIDR range, and its first 16 bytes
// as a raw address.
//
// Properties:
// - Literals: a host ParseHostLiteral reads formats (FormatAddress) to a
//   literal that reads back to the same address; CheckHost denies it for its
//   address class, or, when public and allow-listed in canonical form, allows
//   it.
// - Classes: an IPv4 address embedded as IPv4-mapped (::ffff:a.b.c.d), NAT64
//   (64:ff9b::a.b.c.d) or 6to4 (2002:aabb:ccdd::) has the IPv4 address's class;
//   an address is allowed by the default policy exactly when its class is
//   kNone.
// - Allow-list: with only api.clinkbill.com allowed, CheckHost allows nothing
//   but that name (any case, one trailing dot).
// - CIDR: a parsed range formats and parses back to itself.
// - URLs: HostOfUrl's host is non-empty, lower-case visible ASCII without '@';
//   libcurl's parser (the one the transport connects with) finds the same
//   host: allow-listing HostOfUrl's host allows libcurl's.
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "adapters/http/curl_wrappers.h"
#include "adapters/http/egress_policy.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using clink_gateway::http::AddressClass;
using clink_gateway::http::AddressClassName;
using clink_gateway::http::EgressPolicy;
using clink_gateway::http::EgressPolicyOptions;

#define SV(s) static_cast<int>((s).size()), (s).data()

const char* Name(AddressClass c) { return AddressClassName(c).data(); }

AddressClass Classify(int family, const uint8_t bytes[16]) {
  return family == AF_INET ? clink_gateway::http::ClassifyIPv4(bytes)
                           : clink_gateway::http::ClassifyIPv6(bytes);
}

void CheckLiteral(absl::string_view host) {
  int family = 0;
  uint8_t bytes[16];
  if (!clink_gateway::http::ParseHostLiteral(host, &family, bytes)) return;
  FUZZ_CHECK(family == AF_INET || family == AF_INET6, "'%.*s'", SV(host));
  if (family == AF_INET) {
    for (int i = 4; i < 16; ++i) {
      FUZZ_CHECK(bytes[i] == 0, "'%.*s': byte %d set", SV(host), i);
    }
  }
  const std::string canonical =
      clink_gateway::http::FormatAddress(family, bytes);
  int family2 = 0;
  uint8_t bytes2[16];
  FUZZ_CHECK(clink_gateway::http::ParseHostLiteral(canonical, &family2, bytes2),
             "'%.*s' formats as '%s', which does not parse", SV(host),
             canonical.c_str());
  FUZZ_CHECK(family2 == family && std::memcmp(bytes, bytes2, 16) == 0,
             "'%.*s' -> '%s' -> another address", SV(host), canonical.c_str());

  EgressPolicyOptions options;
  options.allowed_hosts = {canonical};
  const EgressPolicy policy(options);
  const auto decision = policy.CheckHost(host);
  const AddressClass c = Classify(family, bytes);
  if (c != AddressClass::kNone) {
    FUZZ_CHECK(!decision.allowed, "'%.*s' (%s) is %s, CheckHost allows it",
               SV(host), canonical.c_str(), Name(c));
  }
  // CheckHost reads the host lower-cased and without one trailing dot: when
  // that is the same literal, the reason is its class, and a public literal
  // on the allow-list is allowed. (Otherwise it is a name, never allowed:
  // "::17%." is ::17 with a zone id ".", but "::17%" is nothing.)
  std::string normalized = absl::AsciiStrToLower(host);
  if (!normalized.empty() && normalized.back() == '.') normalized.pop_back();
  int family3 = 0;
  uint8_t bytes3[16];
  if (!clink_gateway::http::ParseHostLiteral(normalized, &family3, bytes3) ||
      family3 != family || std::memcmp(bytes, bytes3, 16) != 0) {
    return;
  }
  if (c != AddressClass::kNone) {
    FUZZ_CHECK(decision.reason == c, "'%.*s' (%s) is %s, CheckHost says %s",
               SV(host), canonical.c_str(), Name(c), Name(decision.reason));
  } else {
    FUZZ_CHECK(decision.allowed, "'%.*s' (%s), allow-listed, denied: %s",
               SV(host), canonical.c_str(), Name(decision.reason));
  }
}

void CheckEmbeddings(const uint8_t raw[16]) {
  const uint8_t* v4 = raw;
  const AddressClass c4 = clink_gateway::http::ClassifyIPv4(v4);
  uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  std::memcpy(mapped + 12, v4, 4);
  uint8_t nat64[16] = {0, 0x64, 0xff, 0x9b};
  std::memcpy(nat64 + 12, v4, 4);
  uint8_t six_to_four[16] = {0x20, 0x02};
  std::memcpy(six_to_four + 2, v4, 4);
  std::memcpy(six_to_four + 6, raw + 6, 10);  // The site's subnet and host.
  for (const uint8_t* form : {mapped, nat64, six_to_four}) {
    const AddressClass c6 = clink_gateway::http::ClassifyIPv6(form);
    FUZZ_CHECK(c6 == c4, "%s embeds %s (%s) but is %s",
               clink_gateway::http::FormatAddress(AF_INET6, form).c_str(),
               clink_gateway::http::FormatAddress(AF_INET, v4).c_str(),
               Name(c4), Name(c6));
  }

  const EgressPolicy policy{EgressPolicyOptions{}};
  for (const int family : {AF_INET, AF_INET6}) {
    const AddressClass c = Classify(family, raw);
    const auto decision = policy.CheckAddressBytes(family, raw);
    FUZZ_CHECK(
        decision.allowed == (c == AddressClass::kNone) && decision.reason == c,
        "%s", clink_gateway::http::FormatAddress(family, raw).c_str());
    FUZZ_CHECK(!AddressClassName(c).empty(), "class %d", static_cast<int>(c));
  }
  sockaddr_in6 in6 = {};
  in6.sin6_family = AF_INET6;
  std::memcpy(&in6.sin6_addr, raw, 16);
  FUZZ_CHECK(clink_gateway::http::ClassifySockaddr(
                 reinterpret_cast<const sockaddr*>(&in6)) ==
                 clink_gateway::http::ClassifyIPv6(raw),
             "sockaddr_in6");
}

void CheckAllowList(absl::string_view host) {
  EgressPolicyOptions options;
  options.allowed_hosts = {"api.clinkbill.com"};
  const EgressPolicy policy(options);
  if (!policy.CheckHost(host).allowed) return;
  std::string normalized = absl::AsciiStrToLower(host);
  if (!normalized.empty() && normalized.back() == '.') normalized.pop_back();
  FUZZ_CHECK(normalized == "api.clinkbill.com", "'%.*s' allowed", SV(host));
}

void CheckCidr(absl::string_view text) {
  const auto cidr = clink_gateway::http::ParseCidr(text);
  if (!cidr.ok()) return;
  const int max = cidr->family == AF_INET ? 32 : 128;
  FUZZ_CHECK(cidr->prefix_length >= 0 && cidr->prefix_length <= max,
             "'%.*s': /%d", SV(text), cidr->prefix_length);
  const std::string again = absl::StrCat(
      clink_gateway::http::FormatAddress(cidr->family, cidr->address), "/",
      cidr->prefix_length);
  const auto reparsed = clink_gateway::http::ParseCidr(again);
  FUZZ_CHECK(reparsed.ok() && reparsed->family == cidr->family &&
                 reparsed->prefix_length == cidr->prefix_length &&
                 std::memcmp(reparsed->address, cidr->address, 16) == 0,
             "'%.*s' -> '%s'", SV(text), again.c_str());
}

void CheckUrl(absl::string_view url) {
  const auto host = clink_gateway::http::HostOfUrl(url);
  if (!host.ok()) return;
  FUZZ_CHECK(!host->empty(), "'%.*s'", SV(url));
  for (const char c : *host) {
    FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '@' && !absl::ascii_isupper(c),
               "'%.*s' has host '%s'", SV(url), host->c_str());
  }
  // libcurl's view of the same URL (it stops at a NUL; so does a C string).
  if (url.find('\0') != absl::string_view::npos) return;
  const std::string text(url);
  clink_gateway::http::CurlUrlPtr handle = clink_gateway::http::MakeCurlUrl();
  if (handle == nullptr ||
      curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    return;  // libcurl refuses it: nothing would be sent.
  }
  char* curl_host = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_HOST, &curl_host, 0) != CURLUE_OK ||
      curl_host == nullptr) {
    return;
  }
  const std::string curl_host_text(curl_host);
  curl_free(curl_host);
  EgressPolicyOptions options;
  options.allowed_hosts = {*host};
  options.allow_cidrs = *clink_gateway::http::ParseCidrList("0.0.0.0/0,::/0");
  const EgressPolicy policy(options);
  if (!policy.CheckHost(*host).allowed) return;
  FUZZ_CHECK(policy.CheckHost(curl_host_text).allowed,
             "'%.*s': HostOfUrl says '%s', libcurl connects to '%s'", SV(url),
             host->c_str(), curl_host_text.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  uint8_t raw[16] = {};
  std::memcpy(raw, data, size < 16 ? size : 16);
  CheckEmbeddings(raw);
  CheckLiteral(text);
  CheckAllowList(text);
  CheckCidr(text);
  CheckUrl(text);
  return 0;
}
