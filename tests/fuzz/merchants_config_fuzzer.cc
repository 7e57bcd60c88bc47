// The --merchants_config text (server/merchants_config.h): arbitrary bytes
// parsed as a text-format MerchantsConfig, then checked as the gateway checks
// its options at startup (ValidateOptions).
//
// Properties:
// - Never a crash, a sanitizer report or a hang.
// - A parse error is INVALID_ARGUMENT and its message is exactly the fixed text
//   with the file name and a line and column: nothing of the file's contents
//   (a key pasted into it) is printed.
// - A parsed config leaves one MerchantOptions per `merchants` entry; when it
//   also passes ValidateOptions, the names are unique and the default merchant
//   (if any) is one of them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "server/gateway_server.h"
#include "server/merchants_config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr absl::string_view kErrorPrefix =
    "--merchants_config /etc/clink/merchants.textproto is not a text-format "
    "clink.gateway.config.v1.MerchantsConfig "
    "(proto/clink/gateway/config/v1/merchants.proto): error at line ";

// "L, column C" with two positive integers.
bool IsPosition(absl::string_view s) {
  const size_t comma = s.find(", column ");
  if (comma == absl::string_view::npos) return false;
  int line = 0;
  int column = 0;
  return absl::SimpleAtoi(s.substr(0, comma), &line) && line >= 1 &&
         absl::SimpleAtoi(s.substr(comma + 9), &column) && column >= 1 &&
         s.substr(comma + 9).find_first_not_of("0123456789") ==
             absl::string_view::npos &&
         s.substr(0, comma).find_first_not_of("0123456789") ==
             absl::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  clink_gateway::server::GatewayOptions options;
  const absl::Status parsed = clink_gateway::server::ParseMerchantsConfig(
      text, "/etc/clink/merchants.textproto", options);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.code() == absl::StatusCode::kInvalidArgument, "%s",
               parsed.ToString().c_str());
    const absl::string_view message = parsed.message();
    FUZZ_CHECK(absl::StartsWith(message, kErrorPrefix) &&
                   IsPosition(message.substr(kErrorPrefix.size())),
               "unexpected message: %s", std::string(message).c_str());
    FUZZ_CHECK(options.merchants.empty() && options.default_merchant.empty(),
               "options changed by a failed parse");
    return 0;
  }
  const absl::Status valid = clink_gateway::server::ValidateOptions(options);
  if (!valid.ok()) {
    FUZZ_CHECK(valid.code() == absl::StatusCode::kInvalidArgument, "%s",
               valid.ToString().c_str());
    return 0;
  }
  absl::flat_hash_set<std::string> names;
  for (const auto& merchant : options.merchants) {
    FUZZ_CHECK(names.insert(merchant.name).second,
               "merchant %s configured twice but valid", merchant.name.c_str());
    FUZZ_CHECK(!merchant.key_dir.empty(), "merchant %s has no key_dir",
               merchant.name.c_str());
  }
  FUZZ_CHECK(!names.empty(), "no merchant, yet valid");
  FUZZ_CHECK(options.default_merchant.empty() ||
                 names.contains(options.default_merchant),
             "default merchant %s is not configured",
             options.default_merchant.c_str());
  return 0;
}
