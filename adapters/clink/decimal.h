// Exact decimal-string checks for money. Amounts cross the gateway as the
// caller's (or Clink's) own digits; nothing here converts them to binary
// floating point.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_DECIMAL_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_DECIMAL_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace clink_gateway::clink {

// The longest decimal the gateway accepts, in characters. Far beyond any real
// amount, but bounds the work and the size of what is forwarded.
inline constexpr size_t kMaxDecimalLength = 40;

// True for a plain non-negative decimal in major units: one or more digits
// without a superfluous leading zero, optionally followed by '.' and one or
// more digits: "0", "19.99", "680", "0.10", "12.345678". Rejects "", "-1",
// "+1", "1e3", "1.", ".5", "01", "1.2.3", " 1", and anything longer than
// kMaxDecimalLength.
bool IsValidDecimal(absl::string_view text);

// As IsValidDecimal, but also accepts a leading '-' (Clink sends negative
// amounts in a few responses, e.g. proration lines). Used when reading
// responses only.
bool IsValidSignedDecimal(absl::string_view text);

// Rewrites a JSON number from a response as a plain decimal, exactly, by moving
// the decimal point in the text: "1E+3" -> "1000", "0E-8" -> "0.00000000",
// "1.50e1" -> "15.0", "-4.5" -> "-4.5". Java's BigDecimal prints exponents like
// these. nullopt for anything that is not a JSON number, or whose plain form
// is longer than kMaxDecimalLength.
absl::optional<std::string> ToPlainDecimal(absl::string_view text);

// Compares two valid non-negative decimals exactly: <0, 0 or >0 like strcmp.
// "1.50" == "1.5"; "10" > "9.99".
int CompareDecimals(absl::string_view a, absl::string_view b);

// True when a valid decimal is greater than zero ("0.00" is not).
bool IsPositiveDecimal(absl::string_view text);

// The decimal places a valid decimal needs: the digits after the point, less
// trailing zeros. "19.99" 2, "1.50" 1, "100.00" 0, "0.001" 3, "680" 0.
int SignificantFractionDigits(absl::string_view text);

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_DECIMAL_H_
