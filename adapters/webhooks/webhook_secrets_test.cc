#include "adapters/webhooks/webhook_secrets.h"

#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "adapters/credentials/key_set.h"
#include "adapters/credentials/key_watcher.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "adapters/webhooks/webhook_signature.h"
#include "common/clock.h"
#include "common/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::webhooks {
namespace {

using credentials::testing::NewTempPath;
using credentials::testing::SecretVolume;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kApiKey[] = "sk_test_0123456789abcdefghij";
constexpr char kSecretA[] = "whsec_AAAAAAAAAAAAAAAAAAAAAAAA";
constexpr char kSecretB[] = "whsec_BBBBBBBBBBBBBBBBBBBBBBBB";
constexpr char kBody[] = R"({"id":"evt_1","type":"order.succeeded"})";

// Whether a delivery signed now with `secret` verifies against the
// merchant's secrets in use.
bool Accepts(const WebhookSecrets& secrets, absl::string_view merchant,
             absl::string_view secret) {
  std::shared_ptr<const WebhookSecretSet> set = secrets.Current(merchant);
  if (set == nullptr) return false;
  const std::string ts = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  const std::string sig = SignWebhook(secret, ts, kBody);
  SignedDelivery d{ts, sig, std::nullopt, kBody};
  return VerifySignature(d, set->pointers(), absl::Now(),
                         kDefaultTimestampTolerance) ==
         SignatureVerdict::kValid;
}

TEST(WebhookSecretsTest, RotationByReplacingFiles) {
  SecretVolume volume(NewTempPath("rotate"));
  volume.Write({{"api-key", kApiKey}, {"webhook-secret", kSecretA}});
  WebhookSecrets secrets({{"default", volume.dir()}});
  EXPECT_TRUE(Accepts(secrets, "default", kSecretA));
  EXPECT_FALSE(Accepts(secrets, "default", kSecretB));

  // Rotation: the new secret, the old one kept as previous.
  volume.Write({{"api-key", kApiKey},
                {"webhook-secret", kSecretB},
                {"webhook-secret-previous", kSecretA}});
  secrets.Reload("default");
  EXPECT_TRUE(Accepts(secrets, "default", kSecretA));
  EXPECT_TRUE(Accepts(secrets, "default", kSecretB));

  // Rotation done: the previous secret no longer accepted.
  volume.Write({{"api-key", kApiKey}, {"webhook-secret", kSecretB}});
  secrets.Reload("default");
  EXPECT_FALSE(Accepts(secrets, "default", kSecretA));
  EXPECT_TRUE(Accepts(secrets, "default", kSecretB));
}

TEST(WebhookSecretsTest, BadUpdateKeepsTheLastGoodSecretsAndLogsNoSecret) {
  SecretVolume volume(NewTempPath("bad"));
  volume.Write({{"api-key", kApiKey}, {"webhook-secret", kSecretA}});
  WebhookSecrets secrets({{"default", volume.dir()}});
  ::testing::internal::CaptureStdout();
  for (const auto& files : std::vector<std::map<std::string, std::string>>{
           {{"api-key", kApiKey}, {"webhook-secret", "  \n"}},
           {{"api-key", kApiKey}, {"webhook-secret", "whsec_with space"}},
           {{"api-key", kApiKey}, {"webhook-secret", std::string(5000, 'x')}},
           {{"api-key", kApiKey}}}) {
    volume.Write(files);
    secrets.Reload("default");
    EXPECT_TRUE(Accepts(secrets, "default", kSecretA));
  }
  FlushLogs();
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("webhook_secrets_reload_failed"));
  EXPECT_THAT(out, Not(HasSubstr(kSecretA)));
  EXPECT_THAT(out, Not(HasSubstr("with space")));
}

TEST(WebhookSecretsTest, MerchantWithoutSecretHasNoneUntilOneAppears) {
  SecretVolume volume(NewTempPath("none"));
  volume.Write({{"api-key", kApiKey}});
  ::testing::internal::CaptureStdout();
  WebhookSecrets secrets({{"acme", volume.dir()}});
  FlushLogs();
  EXPECT_THAT(::testing::internal::GetCapturedStdout(),
              HasSubstr("webhook_secret_missing"));
  EXPECT_TRUE(secrets.Configured("acme"));
  EXPECT_FALSE(secrets.Configured("other"));
  EXPECT_EQ(secrets.Current("acme"), nullptr);
  EXPECT_EQ(secrets.Current("other"), nullptr);
  secrets.Reload("other");  // Ignored.

  volume.Write({{"api-key", kApiKey}, {"webhook-secret", kSecretA}});
  secrets.Reload("acme");
  EXPECT_TRUE(Accepts(secrets, "acme", kSecretA));
}

// The KeyWatcher that follows the merchant's key directory reloads the
// webhook secrets too (its on_directory_reload hook).
TEST(WebhookSecretsTest, KeyWatcherReloadsThem) {
  SecretVolume volume(NewTempPath("watched"));
  volume.Write({{"api-key", kApiKey}, {"webhook-secret", kSecretA}});
  WebhookSecrets secrets({{"acme", volume.dir()}});
  std::unique_ptr<credentials::KeyRing> ring =
      *credentials::KeyRing::Load("acme", volume.dir(), SystemClock());
  credentials::KeyWatcher::Options options;
  options.poll_interval = absl::Hours(1);
  options.use_inotify = false;
  options.on_directory_reload = [&secrets](const std::string& merchant) {
    secrets.Reload(merchant);
  };
  std::unique_ptr<credentials::KeyWatcher> watcher =
      *credentials::KeyWatcher::Start({ring.get()}, options);
  volume.Write({{"api-key", kApiKey}, {"webhook-secret", kSecretB}});
  watcher->ReloadNow(*ring);
  EXPECT_TRUE(Accepts(secrets, "acme", kSecretB));
  EXPECT_FALSE(Accepts(secrets, "acme", kSecretA));
}

}  // namespace
}  // namespace clink_gateway::webhooks
