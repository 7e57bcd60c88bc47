#include "adapters/credentials/key_set.h"

#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "adapters/http/http_types.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::credentials {
namespace {

// An sk_prod_-shaped fixture that is obviously not a key (two literals, so
// secret scanners do not take it for a committed production key).
constexpr char kFakeProdKey[] = "sk_prod_" "FAKE0test0fixture";

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kNew[] = "sk_test_new_0123456789abcdef";
constexpr char kOld[] = "sk_test_old_0123456789abcdef";

// The X-API-KEY `keys.signer(index)` sends.
std::string SignedKey(const KeySet& keys, size_t index) {
  return testing::SignedApiKey(keys.signer(index));
}

std::vector<std::string> Values(absl::StatusOr<std::vector<Secret>> keys) {
  std::vector<std::string> values;
  if (!keys.ok()) return values;
  for (const Secret& key : *keys) values.emplace_back(key.Reveal());
  return values;
}

TEST(ReadKeyDirectoryTest, ReadsASecretVolume) {
  testing::SecretVolume volume(testing::NewTempPath("volume"));
  volume.Write(
      {{"api-key", absl::StrCat(kNew, "\n")}, {"api-key-previous", kOld}});
  EXPECT_THAT(Values(ReadKeyDirectory(volume.dir())),
              ::testing::ElementsAre(kNew, kOld));
  volume.Write({{"api-key", kOld}});
  EXPECT_THAT(Values(ReadKeyDirectory(volume.dir())),
              ::testing::ElementsAre(kOld));
}

TEST(ReadKeyDirectoryTest, ReadsAPlainDirectory) {
  const std::string dir = testing::NewTempPath("plain");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FILE* f = fopen(absl::StrCat(dir, "/api-key").c_str(), "w");
  fputs("  sk_test_plain_0123456789\r\n", f);
  fclose(f);
  EXPECT_THAT(Values(ReadKeyDirectory(dir)),
              ::testing::ElementsAre("sk_test_plain_0123456789"));
}

struct BadUpdate {
  std::string name;
  std::map<std::string, std::string> files;
  ReloadOutcome outcome;
};

class BadUpdateTest : public ::testing::TestWithParam<BadUpdate> {};

TEST_P(BadUpdateTest, IsClassifiedAndNeverShowsTheKey) {
  testing::SecretVolume volume(testing::NewTempPath("bad"));
  volume.Write(GetParam().files);
  absl::StatusOr<std::shared_ptr<const KeySet>> keys =
      LoadKeySet(volume.dir(), SystemClock());
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(FailureOutcome(keys.status()), GetParam().outcome) << keys.status();
  for (const auto& [name, contents] : GetParam().files) {
    if (contents.size() > 12) {
      EXPECT_THAT(std::string(keys.status().message()),
                  Not(HasSubstr(contents.substr(0, 12))));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Updates, BadUpdateTest,
    ::testing::Values(
        BadUpdate{"missing", {{"other", kNew}}, ReloadOutcome::kMissing},
        BadUpdate{"empty", {{"api-key", ""}}, ReloadOutcome::kEmpty},
        BadUpdate{"whitespace", {{"api-key", " \n"}}, ReloadOutcome::kEmpty},
        BadUpdate{"previous_empty",
                  {{"api-key", kNew}, {"api-key-previous", ""}},
                  ReloadOutcome::kEmpty},
        BadUpdate{"publishable_key",
                  {{"api-key", "pk_test_0123456789abcdef"}},
                  ReloadOutcome::kInvalid},
        BadUpdate{"not_a_key",
                  {{"api-key", "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n"}},
                  ReloadOutcome::kInvalid},
        BadUpdate{"header_injection",
                  {{"api-key", "sk_test_abc\r\nX-Injected: 1"}},
                  ReloadOutcome::kInvalid},
        BadUpdate{
            "too_large",
            {{"api-key", absl::StrCat("sk_test_", std::string(5000, 'a'))}},
            ReloadOutcome::kInvalid},
        BadUpdate{"mixed_modes",
                  {{"api-key", kFakeProdKey},
                   {"api-key-previous", kOld}},
                  ReloadOutcome::kInvalid}),
    [](const auto& info) { return info.param.name; });

TEST(ReadKeyDirectoryTest, MissingDirectoryIsMissing) {
  EXPECT_EQ(FailureOutcome(ReadKeyDirectory(testing::NewTempPath("absent")).status()),
            ReloadOutcome::kMissing);
}

TEST(ReadKeyDirectoryTest, UnreadableFileIsUnreadable) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  testing::SecretVolume volume(testing::NewTempPath("unreadable"));
  volume.Write({{"api-key", kNew}});
  ASSERT_EQ(chmod(absl::StrCat(volume.dir(), "/api-key").c_str(), 0), 0);
  EXPECT_EQ(FailureOutcome(ReadKeyDirectory(volume.dir()).status()),
            ReloadOutcome::kUnreadable);
}

TEST(KeySetTest, SignsWithEachKeyAndDropsADuplicatePrevious) {
  std::vector<Secret> keys;
  keys.emplace_back(kNew);
  keys.emplace_back(kOld);
  absl::StatusOr<std::shared_ptr<const KeySet>> set =
      KeySet::Create(std::move(keys), SystemClock());
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ((*set)->size(), 2u);
  EXPECT_EQ(SignedKey(**set, 0), kNew);
  EXPECT_EQ(SignedKey(**set, 1), kOld);
  EXPECT_EQ((*set)->fingerprint(0), Secret(kNew).Fingerprint());

  std::vector<Secret> same;
  same.emplace_back(kNew);
  same.emplace_back(kNew);
  set = KeySet::Create(std::move(same), SystemClock());
  ASSERT_TRUE(set.ok());
  EXPECT_EQ((*set)->size(), 1u);
}

TEST(KeySetTest, PreferenceExpires) {
  std::vector<Secret> keys;
  keys.emplace_back(kNew);
  keys.emplace_back(kOld);
  std::shared_ptr<const KeySet> set =
      *KeySet::Create(std::move(keys), SystemClock());
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(set->preferred(now), 0u);
  set->Prefer(1, now + absl::Seconds(60));
  EXPECT_EQ(set->preferred(now), 1u);
  EXPECT_EQ(set->preferred(now + absl::Seconds(61)), 0u);
  set->Prefer(0, now);
  EXPECT_EQ(set->preferred(now), 0u);
}

TEST(KeyRingTest, ReloadAppliesChangesAndKeepsKeysOnBadUpdates) {
  testing::SecretVolume volume(testing::NewTempPath("ring"));
  volume.Write({{"api-key", kOld}});
  absl::StatusOr<std::unique_ptr<KeyRing>> ring =
      KeyRing::Load("acme", volume.dir(), SystemClock());
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ((*ring)->Reload().outcome, ReloadOutcome::kUnchanged);

  volume.Write({{"api-key", kNew}, {"api-key-previous", kOld}});
  KeyRing::ReloadResult applied = (*ring)->Reload();
  EXPECT_EQ(applied.outcome, ReloadOutcome::kApplied);
  ASSERT_NE(applied.replaced, nullptr);
  EXPECT_EQ(SignedKey(*applied.replaced, 0), kOld);
  std::shared_ptr<const KeySet> current = (*ring)->Current();
  EXPECT_EQ(SignedKey(*current, 0), kNew);
  EXPECT_EQ(SignedKey(*current, 1), kOld);

  volume.Write({{"api-key", ""}});
  EXPECT_EQ((*ring)->Reload().outcome, ReloadOutcome::kEmpty);
  volume.Write({});
  EXPECT_EQ((*ring)->Reload().outcome, ReloadOutcome::kMissing);
  EXPECT_EQ((*ring)->Current(), current);  // The last good keys, untouched.
}

TEST(KeyRingTest, LoadFailsWithoutAValidKey) {
  testing::SecretVolume volume(testing::NewTempPath("noload"));
  volume.Write({{"api-key", "hunter2"}});
  absl::StatusOr<std::unique_ptr<KeyRing>> ring =
      KeyRing::Load("acme", volume.dir(), SystemClock());
  ASSERT_FALSE(ring.ok());
  EXPECT_THAT(std::string(ring.status().message()), HasSubstr("merchant acme"));
  EXPECT_THAT(std::string(ring.status().message()), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace clink_gateway::credentials
