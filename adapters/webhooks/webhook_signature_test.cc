#include "adapters/webhooks/webhook_signature.h"

#include <optional>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "gtest/gtest.h"

namespace clink_gateway::webhooks {
namespace {

constexpr char kSecret[] = "whsec_current_0123456789abcdef";
constexpr char kPrevious[] = "whsec_previous_fedcba9876543210";
constexpr char kBody[] = R"({"id":"evt_1","type":"order.succeeded"})";
const absl::Time kNow = absl::FromUnixSeconds(1750062041);

std::string Seconds(absl::Time t) { return absl::StrCat(absl::ToUnixSeconds(t)); }
std::string Millis(absl::Time t) { return absl::StrCat(absl::ToUnixMillis(t)); }

// A delivery as Clink sends it: timestamp, signature over it, SignType.
struct Forged {
  std::string name;
  std::optional<std::string> timestamp;
  std::optional<std::string> signature;
  std::optional<std::string> sign_type;
  std::string body = kBody;
  SignatureVerdict want;
};

SignatureVerdict Verify(const Forged& d, const std::vector<const Secret*>& s) {
  SignedDelivery delivery;
  if (d.timestamp) delivery.timestamp = *d.timestamp;
  if (d.signature) delivery.signature = *d.signature;
  if (d.sign_type) delivery.sign_type = *d.sign_type;
  delivery.body = d.body;
  return VerifySignature(delivery, s, kNow, kDefaultTimestampTolerance);
}

TEST(WebhookSignatureTest, KnownVector) {
  // HMAC-SHA256 of "1750062041.{}" under "whsec_test" (computed with
  // `printf '1750062041.{}' | openssl dgst -sha256 -hmac whsec_test`).
  EXPECT_EQ(SignWebhook("whsec_test", "1750062041", "{}"),
            "11e5d98458debeafb043fcb3857f1c693e4f4ad8525fb208d5621ba4d1cabd40");
}

TEST(WebhookSignatureTest, ValidInSecondsAndMilliseconds) {
  const Secret secret{std::string(kSecret)};
  for (const std::string& ts : {Seconds(kNow), Millis(kNow)}) {
    Forged d{"ok", ts, SignWebhook(kSecret, ts, kBody), "SHA256", kBody,
             SignatureVerdict::kValid};
    EXPECT_EQ(Verify(d, {&secret}), SignatureVerdict::kValid) << ts;
    d.sign_type.reset();  // The header is optional.
    EXPECT_EQ(Verify(d, {&secret}), SignatureVerdict::kValid) << ts;
  }
}

TEST(WebhookSignatureTest, EdgesOfTheToleranceAreAccepted) {
  const Secret secret{std::string(kSecret)};
  for (absl::Time t : {kNow - absl::Seconds(300), kNow + absl::Seconds(300)}) {
    const std::string ts = Millis(t);
    Forged d{"edge", ts, SignWebhook(kSecret, ts, kBody), std::nullopt, kBody,
             SignatureVerdict::kValid};
    EXPECT_EQ(Verify(d, {&secret}), SignatureVerdict::kValid) << ts;
  }
}

TEST(WebhookSignatureTest, PreviousSecretAcceptedDuringRotation) {
  const Secret current{std::string(kSecret)};
  const Secret previous{std::string(kPrevious)};
  const std::string ts = Millis(kNow);
  Forged d{"previous", ts, SignWebhook(kPrevious, ts, kBody), "SHA256", kBody,
           SignatureVerdict::kValid};
  EXPECT_EQ(Verify(d, {&current, &previous}), SignatureVerdict::kValid);
  EXPECT_EQ(Verify(d, {&current}), SignatureVerdict::kBadSignature);
}

TEST(WebhookSignatureTest, ForgedDeliveriesAreRefused) {
  const Secret secret{std::string(kSecret)};
  const std::string ms = Millis(kNow);
  const std::string good = SignWebhook(kSecret, ms, kBody);
  auto signed_at = [](absl::Time t, bool millis) {
    const std::string ts = millis ? Millis(t) : Seconds(t);
    return std::make_pair(ts, SignWebhook(kSecret, ts, kBody));
  };
  std::string changed_body = kBody;
  changed_body[8] = 'X';
  std::vector<Forged> table = {
      {"wrong secret", ms, SignWebhook("whsec_other", ms, kBody), "SHA256",
       kBody, SignatureVerdict::kBadSignature},
      {"one body byte changed", ms, good, "SHA256", changed_body,
       SignatureVerdict::kBadSignature},
      {"timestamp changed", Millis(kNow + absl::Milliseconds(1)), good,
       "SHA256", kBody, SignatureVerdict::kBadSignature},
      {"missing timestamp", std::nullopt, good, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"missing signature", ms, std::nullopt, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"empty signature", ms, "", "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"uppercase hex", ms, absl::AsciiStrToUpper(good), "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"non-hex", ms, std::string(64, 'g'), "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"odd length", ms, good.substr(0, 63), "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"overlong signature", ms, good + good, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"wrong SignType", ms, good, "SHA1", kBody,
       SignatureVerdict::kBadSignature},
      {"lower-case SignType", ms, good, "sha256", kBody,
       SignatureVerdict::kBadSignature},
      {"non-digit timestamp", "17500620x1", good, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"negative timestamp", "-1", good, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"empty timestamp", "", good, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"overlong timestamp", std::string(4096, '1'), good, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
      {"timestamp past int64", "99999999999999999999", good, "SHA256", kBody,
       SignatureVerdict::kBadSignature},
  };
  for (auto [t, millis, name] :
       {std::make_tuple(kNow - absl::Seconds(301), false, "stale s"),
        std::make_tuple(kNow - absl::Seconds(301), true, "stale ms"),
        std::make_tuple(kNow + absl::Seconds(301), false, "future s"),
        std::make_tuple(kNow + absl::Seconds(301), true, "future ms"),
        std::make_tuple(absl::UnixEpoch(), false, "epoch")}) {
    auto [ts, sig] = signed_at(t, millis);
    table.push_back(
        {name, ts, sig, "SHA256", kBody, SignatureVerdict::kStaleTimestamp});
  }
  for (const Forged& d : table) {
    EXPECT_EQ(Verify(d, {&secret}), d.want) << d.name;
  }
}

TEST(WebhookSignatureTest, EmptyOrNoSecretAcceptsNothing) {
  const Secret empty;
  const std::string ts = Millis(kNow);
  Forged d{"empty secret", ts, SignWebhook("", ts, kBody), "SHA256", kBody,
           SignatureVerdict::kBadSignature};
  EXPECT_EQ(Verify(d, {&empty}), SignatureVerdict::kBadSignature);
  EXPECT_EQ(Verify(d, {}), SignatureVerdict::kBadSignature);
  EXPECT_EQ(Verify(d, {nullptr}), SignatureVerdict::kBadSignature);
}

}  // namespace
}  // namespace clink_gateway::webhooks
