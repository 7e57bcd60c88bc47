#include "tests/emulator/decimal.h"

#include <string>

#include "gtest/gtest.h"

namespace clink_gateway::emulator {
namespace {

Decimal D(const std::string& text) {
  absl::StatusOr<Decimal> value = Decimal::Parse(text);
  EXPECT_TRUE(value.ok()) << text << ": " << value.status();
  return value.value_or(Decimal());
}

TEST(DecimalTest, ParsesJsonNumbers) {
  EXPECT_EQ(D("19.990").ToString(), "19.99");
  EXPECT_EQ(D("0").ToString(), "0");
  EXPECT_EQ(D("-0.0").ToString(), "0");
  EXPECT_EQ(D("1e3").ToString(), "1000");
  EXPECT_EQ(D("12.5E-2").ToString(), "0.125");
  EXPECT_EQ(D("-7.05").ToString(), "-7.05");
  EXPECT_EQ(D("123456789012345678901234567890.123456789").ToString(),
            "123456789012345678901234567890.123456789");
  EXPECT_TRUE(D("0.5").IsPositive());
  EXPECT_TRUE(D("-0.5").IsNegative());
  EXPECT_TRUE(D("0e999999999").IsZero());
}

TEST(DecimalTest, RejectsNonJsonSyntax) {
  for (const char* text : {"", "+1", " 1", "1 ", "1.", ".5", "01", "0x10",
                           "NaN", "1e", "--1", "1,5", "١"}) {
    EXPECT_EQ(Decimal::Parse(text).status().code(),
              absl::StatusCode::kInvalidArgument)
        << text;
  }
}

TEST(DecimalTest, RejectsHugeValues) {
  EXPECT_EQ(Decimal::Parse("1e101").status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Decimal::Parse("1e-101").status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Decimal::Parse(std::string(101, '9')).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(DecimalTest, AddsAndSubtractsExactly) {
  EXPECT_EQ((D("0.1") + D("0.2")).ToString(), "0.3");
  EXPECT_EQ((D("19.99") - D("19.990")).ToString(), "0");
  EXPECT_EQ((D("10") - D("10.01")).ToString(), "-0.01");
  EXPECT_EQ((D("-1.5") + D("0.25")).ToString(), "-1.25");
  EXPECT_EQ((D("-1.5") - D("-1.5")).ToString(), "0");
  EXPECT_EQ((D("999.999") + D("0.001")).ToString(), "1000");
  EXPECT_EQ((D("0") - D("0.05")).ToString(), "-0.05");
}

TEST(DecimalTest, Compares) {
  EXPECT_EQ(D("19.99"), D("19.990"));
  EXPECT_LT(D("0.05"), D("0.5"));
  EXPECT_GT(D("10"), D("9.999"));
  EXPECT_LT(D("-2"), D("-1"));
  EXPECT_LT(D("0"), D("0.0000001"));
  EXPECT_GT(D("1e3"), D("999.99"));
}

}  // namespace
}  // namespace clink_gateway::emulator
