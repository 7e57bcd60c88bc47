#include "server/process_stats.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

// A fake /proc: <dir>/self/{stat,limits,fd/*} and <dir>/stat.
class ProcessStatsTest : public testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/proc_",
                        testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name());
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    ASSERT_EQ(mkdir(Self().c_str(), 0700), 0);
    paths_.self_dir = Self();
    paths_.proc_stat = absl::StrCat(dir_, "/stat");
    Write(paths_.proc_stat,
          "cpu  1 2 3 4\nintr 5\nbtime 1700000000\nprocesses 42\n");
  }

  std::string Self() const { return absl::StrCat(dir_, "/self"); }

  static void Write(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
  }

  // A stat line for a process named `comm` with utime 250 and stime 150
  // ticks, 7 threads, started 1000 ticks after boot, 200 MiB virtual, 1000
  // resident pages.
  static std::string StatLine(const std::string& comm) {
    return absl::StrCat(
        "4242 (", comm,
        ") S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 1000 ",
        200 << 20, " 1000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 "
                   "0 0 0 0\n");
  }

  std::string dir_;
  ProcfsPaths paths_;
};

TEST_F(ProcessStatsTest, ReadsEveryFieldFromProcfs) {
  Write(Self() + "/stat", StatLine("clink_gateway"));
  Write(Self() + "/limits",
        "Limit                     Soft Limit           Hard Limit           "
        "Units     \n"
        "Max cpu time              unlimited            unlimited            "
        "seconds   \n"
        "Max open files            65536                1048576              "
        "files     \n");
  ASSERT_EQ(mkdir((Self() + "/fd").c_str(), 0700), 0);
  for (int i = 0; i < 5; ++i) Write(absl::StrCat(Self(), "/fd/", i), "");

  const absl::StatusOr<ProcessStats> stats =
      ReadProcessStats(paths_, /*ticks_per_second=*/100, /*page_size=*/4096);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_DOUBLE_EQ(stats->cpu_seconds, 4.0);
  EXPECT_EQ(stats->threads, 7);
  EXPECT_DOUBLE_EQ(stats->start_time_seconds, 1700000010.0);
  EXPECT_DOUBLE_EQ(stats->virtual_memory_bytes, 200.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(stats->resident_memory_bytes, 1000.0 * 4096);
  EXPECT_EQ(stats->open_fds, 5);
  EXPECT_EQ(stats->max_fds, 65536);
}

TEST_F(ProcessStatsTest, CommandNamesWithSpacesAndParensAreSkipped) {
  Write(Self() + "/stat", StatLine("a) b (c"));
  const absl::StatusOr<ProcessStats> stats = ReadProcessStats(paths_, 100, 4096);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_DOUBLE_EQ(stats->cpu_seconds, 4.0);
  EXPECT_EQ(stats->threads, 7);
  // No fd directory and no limits file: those two are left out.
  EXPECT_FALSE(stats->open_fds.has_value());
  EXPECT_FALSE(stats->max_fds.has_value());
}

TEST_F(ProcessStatsTest, UnlimitedOpenFilesHasNoMaximum) {
  Write(Self() + "/stat", StatLine("gw"));
  Write(Self() + "/limits",
        "Max open files            unlimited            unlimited            "
        "files     \n");
  const absl::StatusOr<ProcessStats> stats = ReadProcessStats(paths_, 100, 4096);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_FALSE(stats->max_fds.has_value());
}

TEST_F(ProcessStatsTest, MissingOrTruncatedStatIsAnError) {
  EXPECT_EQ(ReadProcessStats(paths_).status().code(),
            absl::StatusCode::kNotFound);
  Write(Self() + "/stat", "4242 (gw) S 1 2 3");
  EXPECT_EQ(ReadProcessStats(paths_).status().code(),
            absl::StatusCode::kInternal);
  Write(Self() + "/stat", StatLine("gw"));
  Write(paths_.proc_stat, "cpu 1 2 3\n");  // No btime.
  EXPECT_EQ(ReadProcessStats(paths_).status().code(),
            absl::StatusCode::kInternal);
}

TEST(ProcessStatsRealProcTest, ThisProcessLooksPlausible) {
  const absl::StatusOr<ProcessStats> stats = ReadProcessStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->resident_memory_bytes, 0);
  EXPECT_GE(stats->virtual_memory_bytes, stats->resident_memory_bytes);
  EXPECT_GE(stats->threads, 1);
  ASSERT_TRUE(stats->open_fds.has_value());
  EXPECT_GE(*stats->open_fds, 3);  // stdin, stdout, stderr at least.
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  // Started in the last hour (and not in the future, give or take a tick).
  EXPECT_LE(stats->start_time_seconds, now + 1);
  EXPECT_GT(stats->start_time_seconds, now - 3600);
  // Burn CPU until the counter moves forward (it ticks in 10 ms steps, and a
  // loaded machine may not run this thread for a while): bounded, not timed.
  const double before = stats->cpu_seconds;
  volatile uint64_t x = 0;
  absl::StatusOr<ProcessStats> after = ReadProcessStats();
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (after.ok() && after->cpu_seconds <= before && absl::Now() < give_up) {
    for (int i = 0; i < 1000000; ++i) x = x + 1;
    after = ReadProcessStats();
  }
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->cpu_seconds, before);
}

}  // namespace
}  // namespace clink_gateway::server
