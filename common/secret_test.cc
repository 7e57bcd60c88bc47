#include "common/secret.h"

#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Expected hashes computed independently: printf '<value>' | sha256sum.
constexpr char kKey[] = "sk_test_abcdefghijklmnopa1b2";  // sha256 1015d5b3...

TEST(SecretTest, RevealReturnsTheValue) {
  Secret secret(kKey);
  EXPECT_EQ(secret.Reveal(), kKey);
  EXPECT_EQ(secret.size(), sizeof(kKey) - 1);
  EXPECT_FALSE(secret.empty());
}

TEST(SecretTest, FingerprintShowsPrefixSuffixAndHash) {
  EXPECT_EQ(Secret(kKey).Fingerprint(),
            "sk_test_\xE2\x80\xA6"
            "a1b2#1015d5b3");
}

TEST(SecretTest, FingerprintOfShortValueIsOnlyTheHash) {
  EXPECT_EQ(Secret("short_key").Fingerprint(), "#ecbc0440");
}

TEST(SecretTest, FingerprintWithoutPrefix) {
  EXPECT_EQ(Secret("abcdefghijklmnopqrstuvwxyz").Fingerprint(),
            "\xE2\x80\xA6"
            "wxyz#71c480df");
}

TEST(SecretTest, FingerprintDropsPrefixThatWouldRevealTooMuch) {
  // "sk_test_" + "abcd" + "wxyz": prefix and suffix would leave only 4
  // characters hidden.
  EXPECT_EQ(Secret("sk_test_abcdwxyz").Fingerprint(),
            "\xE2\x80\xA6"
            "wxyz#435d0da8");
}

TEST(SecretTest, EmptySecret) {
  Secret secret;
  EXPECT_TRUE(secret.empty());
  EXPECT_EQ(secret.Reveal(), "");
  EXPECT_EQ(secret.Fingerprint(), "<empty>");
}

TEST(SecretTest, DebugOutputNeverContainsTheValue) {
  // A made-up key in the live-key shape, assembled so the repository holds no
  // string that looks like a real production key.
  const std::string key = std::string("sk_live_") + "0123456789SECRETPARTzz";
  Secret secret(key);
  const std::string hidden = "SECRETPART";
  EXPECT_THAT(secret.Fingerprint(), Not(HasSubstr(hidden)));
  EXPECT_THAT(secret.DebugString(), Not(HasSubstr(hidden)));
  EXPECT_THAT(secret.DebugString(), HasSubstr(secret.Fingerprint()));
  // gtest's printer (used in assertion failure messages) goes through PrintTo.
  const std::string printed = ::testing::PrintToString(secret);
  EXPECT_THAT(printed, Not(HasSubstr(hidden)));
  EXPECT_EQ(printed, secret.DebugString());
}

TEST(SecretTest, EqualsComparesValues) {
  EXPECT_TRUE(Secret("sk_test_abc").Equals(Secret("sk_test_abc")));
  EXPECT_FALSE(Secret("sk_test_abc").Equals(Secret("sk_test_abd")));
  EXPECT_FALSE(Secret("sk_test_abc").Equals(Secret("sk_test_abcd")));
  EXPECT_TRUE(Secret().Equals(Secret()));
  EXPECT_FALSE(Secret().Equals(Secret("x")));
}

TEST(SecretTest, MoveTransfersTheValue) {
  Secret a(kKey);
  Secret b(std::move(a));
  EXPECT_EQ(b.Reveal(), kKey);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): documented state
  Secret c("another-secret-value");
  c = std::move(b);
  EXPECT_EQ(c.Reveal(), kKey);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(WipeTest, WipeStringZeroesTheWholeBufferAndEmptiesIt) {
  std::string value = "X-API-KEY: sk_test_wipe_me_0123456789abcdef";
  value.reserve(100);
  const char* buffer = value.data();
  const size_t capacity = value.capacity();
  WipeString(value);
  EXPECT_TRUE(value.empty());
  EXPECT_EQ(value.data(), buffer);  // The same buffer, not a new one.
  EXPECT_EQ(value.capacity(), capacity);
  for (size_t i = 0; i < capacity; ++i) {
    ASSERT_EQ(buffer[i], '\0') << "byte " << i;
  }
}

TEST(WipeTest, WipeBytes) {
  char bytes[] = "sk_test_secret";
  WipeBytes(bytes, sizeof(bytes));
  for (const char c : bytes) EXPECT_EQ(c, '\0');
  WipeBytes(nullptr, 3);  // No-op.
}

}  // namespace
}  // namespace clink_gateway
