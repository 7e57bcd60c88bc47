#include "common/logging.h"

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

}  // namespace
}  // namespace clink_gateway
