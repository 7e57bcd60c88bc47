// A Clink webhook delivery as the listener reads it after the HTTP layer
// (adapters/webhooks/webhook_signature.h, webhook_payload.h). The input is
// "{X-Clink-Timestamp}\n{X-Clink-Signature}\n{body}" (a missing line leaves
// that header absent); the secret is fixed (kSecret) and so is the clock
// (kNow, 1750062041 s).
//
// Properties:
// - VerifySignature accepts exactly when the signature is
//   SignWebhook(kSecret, timestamp, body) and the timestamp (1-19 digits,
//   seconds below 10^12, else ms) is within 300 s of kNow.
// - ParseWebhookPayload never crashes; what it accepts has an id and a type
//   of 1-255 printable ASCII; a body over 1 MiB is never accepted.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/webhooks/webhook_payload.h"
#include "adapters/webhooks/webhook_signature.h"
#include "common/secret.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace webhooks = clink_gateway::webhooks;

constexpr char kSecret[] = "whsec_fuzz_secret_0123456789";
const absl::Time kNow = absl::FromUnixSeconds(1750062041);

bool PrintableName(const std::string& s) {
  if (s.empty() || s.size() > webhooks::kMaxEventIdLength) return false;
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// The timestamp as the documented rule reads it, or nullopt.
std::optional<absl::Time> ExpectedTime(absl::string_view ts) {
  if (ts.empty() || ts.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : ts) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  const auto s = static_cast<int64_t>(v);
  return s < 1000000000000 ? absl::FromUnixSeconds(s) : absl::FromUnixMillis(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  webhooks::SignedDelivery delivery;
  absl::string_view rest = input;
  const size_t first = rest.find('\n');
  if (first != absl::string_view::npos) {
    delivery.timestamp = rest.substr(0, first);
    rest.remove_prefix(first + 1);
    const size_t second = rest.find('\n');
    if (second != absl::string_view::npos) {
      delivery.signature = rest.substr(0, second);
      rest.remove_prefix(second + 1);
    }
  }
  delivery.body = rest;

  const clink_gateway::Secret secret{std::string(kSecret)};
  const webhooks::SignatureVerdict verdict = webhooks::VerifySignature(
      delivery, {&secret}, kNow, webhooks::kDefaultTimestampTolerance);
  bool want_valid = false;
  if (delivery.timestamp.has_value() && delivery.signature.has_value()) {
    const std::optional<absl::Time> t = ExpectedTime(*delivery.timestamp);
    want_valid = t.has_value() &&
                 absl::AbsDuration(kNow - *t) <= absl::Seconds(300) &&
                 *delivery.signature ==
                     webhooks::SignWebhook(kSecret, *delivery.timestamp,
                                           delivery.body);
  }
  FUZZ_CHECK((verdict == webhooks::SignatureVerdict::kValid) == want_valid,
             "verdict %d, expected valid=%d", static_cast<int>(verdict),
             want_valid);

  absl::StatusOr<webhooks::WebhookPayload> payload =
      webhooks::ParseWebhookPayload(delivery.body);
  if (payload.ok()) {
    FUZZ_CHECK(delivery.body.size() <= webhooks::kMaxWebhookBodyBytes,
               "accepted a body of %zu bytes", delivery.body.size());
    FUZZ_CHECK(PrintableName(payload->id), "bad id accepted");
    FUZZ_CHECK(PrintableName(payload->type), "bad type accepted");
    FUZZ_CHECK(!payload->legacy_data || payload->has_data,
               "legacy form without data");
  }
  return 0;
}
