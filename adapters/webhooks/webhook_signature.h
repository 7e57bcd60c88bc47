// Verification of a Clink webhook delivery's signature (clink-api.md §13.3).
//
// Clink signs each delivery with the endpoint's signing secret ("whsec_…"):
//   X-Clink-Timestamp: when Clink signed, Unix seconds or milliseconds (a
//                      value below 10^12 is seconds, as Clink's own CLI and
//                      third-party verifiers read it)
//   X-Clink-Signature: lower-case hex HMAC-SHA256, key = the whole secret's
//                      bytes (prefix included, no base64), message =
//                      "{X-Clink-Timestamp}.{raw body}"
//   X-Clink-SignType:  the algorithm, "SHA256". The header's name is known
//                      only from a third party, so a delivery without it is
//                      accepted (the signature alone decides); any other
//                      value is refused.
// A delivery is accepted when the timestamp is within `tolerance` of the
// gateway's clock, in either direction (stale or from the future), and the
// signature matches any one of the merchant's secrets (current, and the
// previous one while rotating), compared in constant time (CRYPTO_memcmp).
// Everything else is refused: missing or overlong headers, a timestamp that is
// not 1-19 ASCII digits, a signature that is not exactly 64 lower-case hex
// digits, an empty secret.
#ifndef CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_SIGNATURE_H_
#define CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_SIGNATURE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/secret.h"

namespace clink_gateway::webhooks {

inline constexpr char kTimestampHeader[] = "X-Clink-Timestamp";
inline constexpr char kSignatureHeader[] = "X-Clink-Signature";
inline constexpr char kSignTypeHeader[] = "X-Clink-SignType";
inline constexpr absl::string_view kSignTypeSha256 = "SHA256";

// The default --webhook_timestamp_tolerance (what Clink's CLI and the
// third-party verifiers use).
inline constexpr absl::Duration kDefaultTimestampTolerance = absl::Seconds(300);

// The signed parts of one delivery, as received (nullopt: header absent).
struct SignedDelivery {
  std::optional<absl::string_view> timestamp;
  std::optional<absl::string_view> signature;
  std::optional<absl::string_view> sign_type;
  absl::string_view body;
};

enum class SignatureVerdict {
  kValid,
  // A header missing or malformed, a SignType other than SHA256, no usable
  // secret, or no secret produces the signature.
  kBadSignature,
  // Well-formed, but the timestamp is outside the tolerance (checked before
  // the signature: the answer is the same 401 either way).
  kStaleTimestamp,
};

// Verifies `delivery` against `secrets` (any one may match) at `now`.
SignatureVerdict VerifySignature(const SignedDelivery& delivery,
                                 const std::vector<const Secret*>& secrets,
                                 absl::Time now, absl::Duration tolerance);

// The X-Clink-Signature value for `timestamp` and `body` under `secret`
// (64 lower-case hex digits): what Clink sends. For tests and the emulator.
std::string SignWebhook(absl::string_view secret, absl::string_view timestamp,
                        absl::string_view body);

}  // namespace clink_gateway::webhooks

#endif  // CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_SIGNATURE_H_
