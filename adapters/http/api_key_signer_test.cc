#include "adapters/http/api_key_signer.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/http/http_types.h"
#include "common/secret.h"
#include "common/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::http {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

constexpr char kKey[] = "sk_test_51HxKEYMATERIALq9Zz";

TEST(ApiKeySignerTest, AddsExactHeaders) {
  FakeClock clock(absl::FromUnixMillis(1700000000123));
  ApiKeySigner signer(Secret(kKey), clock);
  HttpRequest request;
  request.method = Method::kPost;
  request.path_and_query = "/checkout/session";
  request.headers = {{"X-Request-Id", "req-1"}};
  request.body = "{}";

  ASSERT_TRUE(signer.Sign(request).ok());
  EXPECT_THAT(
      request.headers,
      ElementsAre(Pair("X-Request-Id", "req-1"), Pair("X-API-KEY", kKey),
                  Pair("X-Timestamp", "1700000000123")));
  EXPECT_EQ(request.body, "{}");
  EXPECT_EQ(request.path_and_query, "/checkout/session");
}

TEST(ApiKeySignerTest, TimestampComesFromTheClockAtSigningTime) {
  FakeClock clock(absl::FromUnixMillis(1000));
  ApiKeySigner signer(Secret(kKey), clock);
  HttpRequest first;
  ASSERT_TRUE(signer.Sign(first).ok());
  clock.Advance(absl::Milliseconds(1500));
  HttpRequest second;
  ASSERT_TRUE(signer.Sign(second).ok());
  EXPECT_THAT(first.headers, ElementsAre(Pair("X-API-KEY", kKey),
                                         Pair("X-Timestamp", "1000")));
  EXPECT_THAT(second.headers, ElementsAre(Pair("X-API-KEY", kKey),
                                          Pair("X-Timestamp", "2500")));
}

TEST(ApiKeySignerTest, ReplacesExistingAuthHeaders) {
  FakeClock clock(absl::FromUnixMillis(5));
  ApiKeySigner signer(Secret(kKey), clock);
  HttpRequest request;
  request.headers = {
      {"x-api-key", "forged"}, {"Accept-Language", "en"}, {"X-TIMESTAMP", "1"}};
  ASSERT_TRUE(signer.Sign(request).ok());
  // Signing twice (e.g. a retry of the same request) must not duplicate them
  // either.
  clock.Advance(absl::Milliseconds(2));
  ASSERT_TRUE(signer.Sign(request).ok());
  EXPECT_THAT(request.headers,
              ElementsAre(Pair("Accept-Language", "en"),
                          Pair("X-API-KEY", kKey), Pair("X-Timestamp", "7")));
}

TEST(ApiKeySignerTest, RejectsKeysThatAreNotHeaderSafe) {
  FakeClock clock;
  for (const std::string& bad :
       {std::string(), std::string("sk_test_abc\r\nX-Evil: 1"),
        std::string("sk test with spaces")}) {
    ApiKeySigner signer{Secret(bad), clock};
    HttpRequest request;
    const absl::Status status = signer.Sign(request);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(request.headers.empty());
    if (!bad.empty()) {
      EXPECT_THAT(std::string(status.message()), Not(HasSubstr(bad)));
    }
  }
}

TEST(ApiKeySignerTest, FingerprintDoesNotRevealTheKey) {
  FakeClock clock;
  ApiKeySigner signer(Secret(kKey), clock);
  const std::string fingerprint = signer.KeyFingerprint();
  EXPECT_EQ(fingerprint, Secret(kKey).Fingerprint());
  EXPECT_THAT(fingerprint, HasSubstr("sk_test_"));
  EXPECT_THAT(fingerprint, HasSubstr("q9Zz#"));
  EXPECT_THAT(fingerprint, Not(HasSubstr("KEYMATERIAL")));
  EXPECT_THAT(fingerprint, Not(HasSubstr(kKey)));
}

TEST(ApiKeySignerTest, SecretDebugOutputDoesNotRevealTheKey) {
  Secret secret(kKey);
  EXPECT_THAT(secret.DebugString(), Not(HasSubstr("KEYMATERIAL")));
  EXPECT_THAT(::testing::PrintToString(secret), Not(HasSubstr("KEYMATERIAL")));
}

}  // namespace
}  // namespace clink_gateway::http
