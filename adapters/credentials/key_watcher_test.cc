#include "adapters/credentials/key_watcher.h"

#include <stdio.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "adapters/http/http_types.h"
#include "common/clock.h"
#include "common/logging.h"
#include "gtest/gtest.h"

namespace clink_gateway::credentials {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

// The X-API-KEY `keys.signer(index)` sends.
std::string SignedKey(const KeySet& keys, size_t index) {
  return testing::SignedApiKey(keys.signer(index));
}

// Records what the watcher reports; tests wait on it. (std::mutex, like the
// code under test, so the TSan run sees the synchronisation.)
class RecordingObserver : public CredentialObserver {
 public:
  void OnKeyReload(absl::string_view merchant, ReloadOutcome outcome,
                   absl::Time when) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++outcomes_[outcome];
    changed_.notify_all();
  }
  void OnKeysInUse(absl::string_view merchant, const KeySet& keys,
                   const KeySet* replaced) override {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_.push_back(keys.fingerprint(0));
  }
  // Waits until `outcome` was reported at least `n` times.
  bool WaitFor(ReloadOutcome outcome, int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, absl::ToChronoSeconds(kWait),
                             [&] { return outcomes_[outcome] >= n; });
  }
  std::vector<std::string> in_use() {
    std::lock_guard<std::mutex> lock(mu_);
    return in_use_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<ReloadOutcome, int> outcomes_;  // Guarded by mu_.
  std::vector<std::string> in_use_;        // Guarded by mu_.
};

struct Fixture {
  explicit Fixture(std::map<std::string, std::string> files,
                   KeyWatcher::Options options = {})
      : volume(testing::NewTempPath("watch")) {
    volume.Write(files);
    ring = *KeyRing::Load("acme", volume.dir(), SystemClock());
    options.observer = &observer;
    watcher = *KeyWatcher::Start({ring.get()}, options);
  }
  testing::SecretVolume volume;
  RecordingObserver observer;
  std::unique_ptr<KeyRing> ring;
  std::unique_ptr<KeyWatcher> watcher;
};

KeyWatcher::Options NoPolling() {
  KeyWatcher::Options options;
  options.poll_interval = absl::Hours(1);
  return options;
}

TEST(KeyWatcherTest, FollowsTheKubeletsDataSwapThroughInotify) {
  Fixture f({{"api-key", "sk_test_first_0123456789"}}, NoPolling());
  EXPECT_EQ(f.observer.in_use(),
            std::vector<std::string>{
                Secret("sk_test_first_0123456789").Fingerprint()});
  f.volume.Write({{"api-key", "sk_test_second_0123456789"},
                  {"api-key-previous", "sk_test_first_0123456789"}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kApplied, 1));
  std::shared_ptr<const KeySet> keys = f.ring->Current();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ(SignedKey(*keys, 0), "sk_test_second_0123456789");
  EXPECT_EQ(SignedKey(*keys, 1), "sk_test_first_0123456789");
}

TEST(KeyWatcherTest, PeriodicReReadCatchesChangesWithoutEvents) {
  KeyWatcher::Options options;
  options.use_inotify = false;
  options.poll_interval = absl::Milliseconds(20);
  Fixture f({{"api-key", "sk_test_first_0123456789"}}, options);
  f.volume.Write({{"api-key", "sk_test_second_0123456789"}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kApplied, 1));
  EXPECT_EQ(SignedKey(*f.ring->Current(), 0), "sk_test_second_0123456789");
}

TEST(KeyWatcherTest, FollowsADirectoryThatIsReplacedWhole) {
  KeyWatcher::Options options;
  options.poll_interval = absl::Milliseconds(20);
  Fixture f({{"api-key", "sk_test_first_0123456789"}}, options);
  const std::string dir = f.volume.dir();
  ASSERT_EQ(rename(dir.c_str(), absl::StrCat(dir, ".old").c_str()), 0);
  testing::SecretVolume replacement(dir);
  replacement.Write({{"api-key", "sk_test_second_0123456789"}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kApplied, 1));
  EXPECT_EQ(SignedKey(*f.ring->Current(), 0), "sk_test_second_0123456789");
  // Watched again: a later swap in the new directory is seen too.
  replacement.Write({{"api-key", "sk_test_third_0123456789"}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kApplied, 2));
  EXPECT_EQ(SignedKey(*f.ring->Current(), 0), "sk_test_third_0123456789");
}

TEST(KeyWatcherTest, BadUpdatesKeepTheKeysAndAreLoggedByFingerprint) {
  Fixture f({{"api-key", "sk_test_good_0123456789"}}, NoPolling());
  ::testing::internal::CaptureStdout();
  f.volume.Write({{"api-key", ""}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kEmpty, 1));
  f.watcher->ReloadNow(*f.ring);  // Still broken: counted, not logged again.
  f.watcher->ReloadNow(*f.ring);
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kEmpty, 3));
  f.volume.Write({{"api-key", "pk_test_not_a_secret_key_0123"}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kInvalid, 1));
  f.volume.Write({{"other", "x"}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kMissing, 1));
  FlushLogs();
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(SignedKey(*f.ring->Current(), 0), "sk_test_good_0123456789");
  EXPECT_TRUE(absl::StrContains(out, "keys_reload_failed")) << out;
  int empty_warnings = 0;
  for (size_t at = out.find("\"outcome\":\"empty\""); at != std::string::npos;
       at = out.find("\"outcome\":\"empty\"", at + 1)) {
    ++empty_warnings;
  }
  EXPECT_EQ(empty_warnings, 1) << out;
  EXPECT_TRUE(
      absl::StrContains(out, Secret("sk_test_good_0123456789").Fingerprint()))
      << out;
  EXPECT_FALSE(absl::StrContains(out, "sk_test_good_0123456789")) << out;
  EXPECT_FALSE(absl::StrContains(out, "pk_test_not_a_secret")) << out;

  // A good update after bad ones is applied.
  f.volume.Write({{"api-key", "sk_test_fixed_0123456789"}});
  ASSERT_TRUE(f.observer.WaitFor(ReloadOutcome::kApplied, 1));
  EXPECT_EQ(SignedKey(*f.ring->Current(), 0), "sk_test_fixed_0123456789");
}

// The generation number in "sk_test_g<N>_<role>_pad".
int Generation(const std::string& key) {
  int n = -1;
  const size_t start = key.find("_g") + 2;
  (void)absl::SimpleAtoi(key.substr(start, key.find('_', start) - start), &n);
  return n;
}

std::string KeyOf(int generation, absl::string_view role) {
  return absl::StrCat("sk_test_g", generation, "_", role, "_0123456789");
}

// 1000 swaps while signers run: every signature pair comes from one version.
// tools/test.sh also runs this under --config=tsan (no reports).
TEST(KeyWatcherTest, RapidSwapsNeverMixTwoVersions) {
  constexpr int kSwaps = 1000;
  // A line per swap would only slow this down (and the logger's absl::Mutex
  // is invisible to TSan).
  SetMinLogLevel(LogLevel::kError);
  Fixture f(
      {{"api-key", KeyOf(0, "new")}, {"api-key-previous", KeyOf(0, "old")}},
      NoPolling());
  std::atomic<bool> done{false};
  std::atomic<int> mixed{0};
  std::atomic<int64_t> signed_pairs{0};
  std::vector<std::thread> signers;
  for (int t = 0; t < 4; ++t) {
    signers.emplace_back([&] {
      int last = 0;
      while (!done.load()) {
        std::shared_ptr<const KeySet> keys = f.ring->Current();
        const int g0 = Generation(SignedKey(*keys, 0));
        const int g1 = keys->size() > 1 ? Generation(SignedKey(*keys, 1)) : -2;
        if (g0 != g1 || g0 < last) mixed.fetch_add(1);
        last = g0;
        signed_pairs.fetch_add(1);
      }
    });
  }
  for (int g = 1; g <= kSwaps; ++g) {
    f.volume.Write(
        {{"api-key", KeyOf(g, "new")}, {"api-key-previous", KeyOf(g, "old")}});
    if (g % 100 == 0) f.watcher->ReloadNow(*f.ring);  // A second reloader.
  }
  f.watcher->ReloadNow(*f.ring);
  done.store(true);
  for (std::thread& t : signers) t.join();
  EXPECT_EQ(mixed.load(), 0);
  EXPECT_GT(signed_pairs.load(), 0);
  EXPECT_EQ(SignedKey(*f.ring->Current(), 0), KeyOf(kSwaps, "new"));
  EXPECT_EQ(SignedKey(*f.ring->Current(), 1), KeyOf(kSwaps, "old"));
  SetMinLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace clink_gateway::credentials
