// Exact decimal numbers for money in the Clink emulator. No floating point
// anywhere.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_DECIMAL_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_DECIMAL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::emulator {

// An exact signed decimal: coefficient × 10^-scale, held as a digit string.
// Used to compare and subtract amounts (for example the refundable balance of
// an order) while the amounts themselves are stored and echoed as the exact
// text the client sent.
class Decimal {
 public:
  // Largest number of digits (integer digits + fraction digits) a value may
  // have.
  static constexpr int kMaxDigits = 100;

  // Parses JSON number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
  // Anything else
  // ("+1", " 1", "1.", ".5", "0x10", "NaN", "") is InvalidArgument; a value
  // needing more than kMaxDigits digits is OutOfRange.
  static absl::StatusOr<Decimal> Parse(absl::string_view text);

  Decimal() = default;  // Zero.

  bool IsZero() const { return digits_ == "0"; }
  bool IsNegative() const { return negative_; }
  bool IsPositive() const { return !negative_ && !IsZero(); }

  // Plain notation, no exponent, no trailing fraction zeros: "19.990" ->
  // "19.99", "1e3" -> "1000", "-0.0" -> "0".
  std::string ToString() const;

  friend Decimal operator+(const Decimal& a, const Decimal& b);
  friend Decimal operator-(const Decimal& a, const Decimal& b);
  // Returns -1, 0 or 1 as a is less than, equal to or greater than b.
  friend int Compare(const Decimal& a, const Decimal& b);

  friend bool operator==(const Decimal& a, const Decimal& b) {
    return Compare(a, b) == 0;
  }
  friend bool operator!=(const Decimal& a, const Decimal& b) {
    return Compare(a, b) != 0;
  }
  friend bool operator<(const Decimal& a, const Decimal& b) {
    return Compare(a, b) < 0;
  }
  friend bool operator<=(const Decimal& a, const Decimal& b) {
    return Compare(a, b) <= 0;
  }
  friend bool operator>(const Decimal& a, const Decimal& b) {
    return Compare(a, b) > 0;
  }
  friend bool operator>=(const Decimal& a, const Decimal& b) {
    return Compare(a, b) >= 0;
  }

 private:
  // Normalizes: strips leading coefficient zeros and trailing fraction zeros;
  // zero is never negative.
  Decimal(bool negative, std::string digits, int scale);

  bool negative_ = false;
  std::string digits_ = "0";  // Magnitude coefficient, no leading zeros.
  int scale_ = 0;             // Number of fraction digits, >= 0.
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_DECIMAL_H_
