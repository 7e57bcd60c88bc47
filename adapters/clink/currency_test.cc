#include "adapters/clink/currency.h"

#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

TEST(CurrencyTest, MinorUnitsComeFromIcu) {
  EXPECT_EQ(MinorUnitDigits("USD"), 2);
  EXPECT_EQ(MinorUnitDigits("EUR"), 2);
  EXPECT_EQ(MinorUnitDigits("JPY"), 0);
  EXPECT_EQ(MinorUnitDigits("KRW"), 0);
  EXPECT_EQ(MinorUnitDigits("KWD"), 3);
  EXPECT_EQ(MinorUnitDigits("BHD"), 3);
  EXPECT_EQ(MaxMinorUnitDigits(), 3);
}

TEST(CurrencyTest, EveryCurrencyClinkDocumentsIsKnown) {
  // clink-api.md: the price/invoice currency enum.
  for (const char* code :
       {"USD", "EUR", "JPY", "GBP", "AUD", "CAD", "CNY", "HKD", "SGD", "KRW",
        "AED", "THB", "IDR", "PHP", "MYR", "BRL", "INR"}) {
    EXPECT_TRUE(MinorUnitDigits(code).has_value()) << code;
  }
}

TEST(CurrencyTest, RefusesWhatIsNotACurrentCurrencyInUpperCase) {
  for (const char* code : {"", "usd", "Usd", "US", "USDX", "XYZ", "DEM", "XTS",
                           "XXX", "XAU", "CLF", "U$D", "US\xC3\x90"}) {
    EXPECT_FALSE(MinorUnitDigits(code).has_value()) << code;
  }
}

}  // namespace
}  // namespace clink_gateway::clink
