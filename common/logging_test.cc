#include "common/logging.h"

#include <string>

#include "gtest/gtest.h"

namespace clink_gateway {
namespace {

TEST(LoggingTest, FormatsOneJsonObjectWithEscapes) {
  EXPECT_EQ(
      FormatLogLine(LogLevel::kWarning, "rpc",
                    {{"method", "a\"b"}, {"x", "line\nnext"}}),
      R"({"level":"warning","event":"rpc","method":"a\"b","x":"line\nnext"})");
}

TEST(LoggingTest, LevelFilterAndParsing) {
  LogLevel level;
  ASSERT_TRUE(ParseLogLevel("warning", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  EXPECT_FALSE(ParseLogLevel("verbose", &level));
  SetMinLogLevel(LogLevel::kWarning);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  SetMinLogLevel(LogLevel::kInfo);
  EXPECT_TRUE(LogEnabled(LogLevel::kInfo));
}

TEST(LoggingTest, LinesAreWrittenInOrderByTheBackgroundWriter) {
  SetMinLogLevel(LogLevel::kInfo);
  testing::internal::CaptureStdout();
  for (int i = 0; i < 100; ++i) {
    Log(LogLevel::kInfo, "tick", {{"i", std::to_string(i)}});
  }
  Log(LogLevel::kDebug, "hidden");
  FlushLogs();
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find(R"("event":"tick","i":"0"})"), std::string::npos);
  EXPECT_LT(out.find(R"("i":"41")"), out.find(R"("i":"42")"));
  EXPECT_NE(out.find(R"("i":"99")"), std::string::npos);
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_EQ(DroppedLogLines(), 0);
}

TEST(LoggingTest, LogAlwaysIgnoresTheLevelAndTimestampsItsLine) {
  SetMinLogLevel(LogLevel::kError);
  testing::internal::CaptureStdout();
  LogAlways(LogLevel::kInfo, "audit", {{"caller", "checkout-web"}});
  Log(LogLevel::kInfo, "filtered");
  FlushLogs();
  const std::string out = testing::internal::GetCapturedStdout();
  SetMinLogLevel(LogLevel::kInfo);
  EXPECT_NE(out.find(R"("event":"audit","caller":"checkout-web"})"),
            std::string::npos);
  EXPECT_EQ(out.find("filtered"), std::string::npos);

  const std::string line =
      TimestampedLogLine(LogLevel::kInfo, "audit", {{"k", "v"}});
  EXPECT_EQ(line.rfind(R"({"ts":")", 0), 0u);
  EXPECT_EQ(line.substr(line.size() - 2), "}\n");
  EXPECT_NE(line.find(R"("level":"info","event":"audit","k":"v")"),
            std::string::npos);
}

}  // namespace
}  // namespace clink_gateway
