#include "adapters/clink/decimal.h"

#include <string>

#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

TEST(DecimalTest, AcceptsPlainMajorUnitDecimals) {
  for (const char* ok : {"0", "19.99", "680", "0.10", "12.345678", "1.000",
                         "123456789012345678901234567890.123456789"}) {
    EXPECT_TRUE(IsValidDecimal(ok)) << ok;
  }
}

TEST(DecimalTest, RejectsEverythingElse) {
  for (const char* bad :
       {"", "-1", "+1", "1e3", "1E3", "1.", ".5", "01", "00.1", "1.2.3", " 1",
        "1 ", "0x10", "NaN", "Infinity", "1,5", "١"}) {
    EXPECT_FALSE(IsValidDecimal(bad)) << bad;
  }
  EXPECT_FALSE(IsValidDecimal(std::string(kMaxDecimalLength + 1, '1')));
  EXPECT_TRUE(IsValidDecimal(std::string(kMaxDecimalLength, '1')));
}

TEST(DecimalTest, SignedAcceptsOneLeadingMinus) {
  EXPECT_TRUE(IsValidSignedDecimal("-3.50"));
  EXPECT_TRUE(IsValidSignedDecimal("3.50"));
  EXPECT_FALSE(IsValidSignedDecimal("--3"));
  EXPECT_FALSE(IsValidSignedDecimal("-"));
}

TEST(DecimalTest, ComparesExactly) {
  EXPECT_EQ(CompareDecimals("1.50", "1.5"), 0);
  EXPECT_EQ(CompareDecimals("10", "9.99"), 1);
  EXPECT_EQ(CompareDecimals("0.49", "0.5"), -1);
  EXPECT_EQ(CompareDecimals("0.5", "0.5000000000000000001"), -1);
  EXPECT_EQ(CompareDecimals("100", "100.000"), 0);
  // Doubles cannot tell these apart; the decimal comparison can.
  EXPECT_EQ(CompareDecimals("9007199254740993", "9007199254740992"), 1);
}

TEST(DecimalTest, Positive) {
  EXPECT_TRUE(IsPositiveDecimal("0.01"));
  EXPECT_FALSE(IsPositiveDecimal("0"));
  EXPECT_FALSE(IsPositiveDecimal("0.000"));
}

}  // namespace
}  // namespace clink_gateway::clink

namespace clink_gateway::clink {
namespace {

TEST(ToPlainDecimalTest, ShiftsTheDecimalPointAsText) {
  EXPECT_EQ(ToPlainDecimal("19.99"), "19.99");
  EXPECT_EQ(ToPlainDecimal("-4.50"), "-4.50");
  EXPECT_EQ(ToPlainDecimal("1E+3"), "1000");
  EXPECT_EQ(ToPlainDecimal("1e3"), "1000");
  EXPECT_EQ(ToPlainDecimal("0E-8"), "0.00000000");
  EXPECT_EQ(ToPlainDecimal("1.50e1"), "15.0");
  EXPECT_EQ(ToPlainDecimal("5E-1"), "0.5");
  EXPECT_EQ(ToPlainDecimal("0.5E+1"), "5");
  EXPECT_EQ(ToPlainDecimal("-1.2E-2"), "-0.012");
  EXPECT_EQ(ToPlainDecimal("123.456E-3"), "0.123456");
  EXPECT_EQ(ToPlainDecimal("1E+03"), "1000");
  EXPECT_EQ(ToPlainDecimal("1E+0003"), "1000");
  EXPECT_EQ(ToPlainDecimal("-0E0"), "0");
  EXPECT_EQ(ToPlainDecimal("0.1E40"), std::string(40, '0').replace(0, 1, "1"));
}

TEST(ToPlainDecimalTest, RejectsWhatIsNotANumberOrTooLong) {
  for (const char* bad :
       {"", "abc", "1e", "e3", "1e+", "1.e3", "--1", "1e1000", "1e45", "0x10",
        "1e3.5", "1E+-3", "1E++3", "1e 3", "1e3 ", "1E-40"}) {
    EXPECT_FALSE(ToPlainDecimal(bad).has_value()) << bad;
  }
}

TEST(DecimalTest, SignificantFractionDigitsIgnoreTrailingZeros) {
  EXPECT_EQ(SignificantFractionDigits("680"), 0);
  EXPECT_EQ(SignificantFractionDigits("19.99"), 2);
  EXPECT_EQ(SignificantFractionDigits("1.50"), 1);
  EXPECT_EQ(SignificantFractionDigits("100.00"), 0);
  EXPECT_EQ(SignificantFractionDigits("0.001"), 3);
  EXPECT_EQ(SignificantFractionDigits("0.0010"), 3);
  EXPECT_EQ(SignificantFractionDigits("12.345678"), 6);
}

}  // namespace
}  // namespace clink_gateway::clink
