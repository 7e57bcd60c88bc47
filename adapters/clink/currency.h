// ISO 4217 currencies and their minor units, from ICU's currency data (the
// CLDR supplemental data that Debian's libicu ships), so that an amount can be
// checked against what its currency can actually be charged in.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_CURRENCY_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_CURRENCY_H_

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace clink_gateway::clink {

// The number of decimal places of `code`'s minor unit (ICU's default fraction
// digits: "USD" 2, "EUR" 2, "JPY" 0, "KRW" 0, "KWD" 3, "BHD" 3), or nullopt
// when `code` is not a current ISO 4217 currency that ICU knows: not three
// upper-case letters ("usd"), unknown ("XYZ"), withdrawn ("DEM"), or not money
// one can be charged in (funds and test codes such as "XTS", "XXX", "XAU",
// "CLF"). Thread-safe; the table is built from ICU once, on first use.
absl::optional<int> MinorUnitDigits(absl::string_view code);

// The largest MinorUnitDigits of any currency (3): the finest amount any
// charge can have when the currency is not known.
int MaxMinorUnitDigits();

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_CURRENCY_H_
