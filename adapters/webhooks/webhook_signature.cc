#include "adapters/webhooks/webhook_signature.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cstdint>
#include <memory>

#include "absl/strings/ascii.h"

namespace clink_gateway::webhooks {
namespace {

constexpr size_t kDigestBytes = 32;
constexpr size_t kSignatureHexLength = 2 * kDigestBytes;
// int64 milliseconds reach 19 digits; longer is not a timestamp.
constexpr size_t kMaxTimestampDigits = 19;
// Values below this are seconds (clink-api.md §13.3).
constexpr int64_t kMillisecondsThreshold = 1000000000000;

// HMAC-SHA256(key, timestamp "." body), or false when OpenSSL fails.
bool Hmac(absl::string_view key, absl::string_view timestamp,
          absl::string_view body, std::array<unsigned char, kDigestBytes>* out) {
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(
      EVP_MAC_fetch(nullptr, "HMAC", nullptr), &EVP_MAC_free);
  if (mac == nullptr) return false;
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
      EVP_MAC_CTX_new(mac.get()), &EVP_MAC_CTX_free);
  if (ctx == nullptr) return false;
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  static const unsigned char kEmpty = 0;
  const auto* key_bytes = key.empty()
                              ? &kEmpty
                              : reinterpret_cast<const unsigned char*>(key.data());
  size_t length = 0;
  return EVP_MAC_init(ctx.get(), key_bytes, key.size(), params) == 1 &&
         EVP_MAC_update(ctx.get(),
                        reinterpret_cast<const unsigned char*>(timestamp.data()),
                        timestamp.size()) == 1 &&
         EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>("."),
                        1) == 1 &&
         EVP_MAC_update(ctx.get(),
                        reinterpret_cast<const unsigned char*>(body.data()),
                        body.size()) == 1 &&
         EVP_MAC_final(ctx.get(), out->data(), &length, out->size()) == 1 &&
         length == kDigestBytes;
}

int LowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // Upper case too: Clink sends lower case.
}

// Decodes exactly 64 lower-case hex digits.
bool DecodeSignature(absl::string_view hex,
                     std::array<unsigned char, kDigestBytes>* out) {
  if (hex.size() != kSignatureHexLength) return false;
  for (size_t i = 0; i < kDigestBytes; ++i) {
    const int high = LowerHexValue(hex[2 * i]);
    const int low = LowerHexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    (*out)[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return true;
}

// 1-19 ASCII digits, as a time (seconds below 10^12, else milliseconds).
bool ParseTimestamp(absl::string_view text, absl::Time* when) {
  if (text.empty() || text.size() > kMaxTimestampDigits) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > static_cast<uint64_t>(INT64_MAX)) return false;
  const auto signed_value = static_cast<int64_t>(value);
  *when = signed_value < kMillisecondsThreshold
              ? absl::FromUnixSeconds(signed_value)
              : absl::FromUnixMillis(signed_value);
  return true;
}

}  // namespace

SignatureVerdict VerifySignature(const SignedDelivery& delivery,
                                 const std::vector<const Secret*>& secrets,
                                 absl::Time now, absl::Duration tolerance) {
  if (delivery.sign_type.has_value() && *delivery.sign_type != kSignTypeSha256) {
    return SignatureVerdict::kBadSignature;
  }
  absl::Time signed_at;
  std::array<unsigned char, kDigestBytes> claimed{};
  if (!delivery.timestamp.has_value() || !delivery.signature.has_value() ||
      !ParseTimestamp(*delivery.timestamp, &signed_at) ||
      !DecodeSignature(*delivery.signature, &claimed)) {
    return SignatureVerdict::kBadSignature;
  }
  if (absl::AbsDuration(now - signed_at) > tolerance) {
    return SignatureVerdict::kStaleTimestamp;
  }
  bool matched = false;
  for (const Secret* secret : secrets) {
    if (secret == nullptr || secret->empty()) continue;
    std::array<unsigned char, kDigestBytes> expected{};
    if (!Hmac(secret->Reveal(), *delivery.timestamp, delivery.body,
              &expected)) {
      continue;
    }
    // Every secret is tried (no early exit): the time taken says nothing
    // about which one matched.
    matched |= CRYPTO_memcmp(expected.data(), claimed.data(), kDigestBytes) == 0;
    OPENSSL_cleanse(expected.data(), expected.size());
  }
  return matched ? SignatureVerdict::kValid : SignatureVerdict::kBadSignature;
}

std::string SignWebhook(absl::string_view secret, absl::string_view timestamp,
                        absl::string_view body) {
  std::array<unsigned char, kDigestBytes> digest{};
  if (!Hmac(secret, timestamp, body, &digest)) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(kSignatureHexLength);
  for (unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0xf]);
  }
  return hex;
}

}  // namespace clink_gateway::webhooks
