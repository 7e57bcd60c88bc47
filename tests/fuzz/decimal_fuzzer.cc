// Decimal parsing and formatting (adapters/clink/decimal.h) on arbitrary text,
// with exactness properties. The input is split at the first '\n' into a and b
// (b empty without one).
//
// Properties:
// - Validity: a valid decimal is a valid signed decimal, "-" + it too; a plain
//   decimal is its own plain form.
// - Round trip: when ToPlainDecimal(a) gives p, p is a valid signed decimal,
//   ToPlainDecimal(p) == p, and moving the point back (p with the opposite
//   exponent) gives a value equal to a's mantissa: no digit is lost or
//   invented.
// - Order: CompareDecimals is reflexive, antisymmetric, ignores trailing
//   fraction zeros, and agrees with IsPositiveDecimal.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "adapters/clink/decimal.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using clink_gateway::clink::CompareDecimals;
using clink_gateway::clink::IsPositiveDecimal;
using clink_gateway::clink::IsValidDecimal;
using clink_gateway::clink::IsValidSignedDecimal;
using clink_gateway::clink::kMaxDecimalLength;
using clink_gateway::clink::ToPlainDecimal;

// "%.*s" arguments for a string_view.
#define SV(s) static_cast<int>((s).size()), (s).data()

absl::string_view Unsigned(absl::string_view s) {
  if (!s.empty() && s.front() == '-') s.remove_prefix(1);
  return s;
}

void CheckOne(absl::string_view a) {
  const bool valid = IsValidDecimal(a);
  if (valid) {
    FUZZ_CHECK(IsValidSignedDecimal(a), "'%.*s'", SV(a));
    FUZZ_CHECK(a.size() <= kMaxDecimalLength, "'%.*s'", SV(a));
    const auto plain = ToPlainDecimal(a);
    FUZZ_CHECK(plain.has_value() && *plain == a, "plain form of '%.*s'", SV(a));
    FUZZ_CHECK(CompareDecimals(a, a) == 0, "'%.*s'", SV(a));
    FUZZ_CHECK(IsPositiveDecimal(a) == (CompareDecimals(a, "0") > 0), "'%.*s'",
               SV(a));
    if (a.find('.') != absl::string_view::npos) {
      const std::string padded = absl::StrCat(a, "00");
      FUZZ_CHECK(CompareDecimals(a, padded) == 0, "'%.*s'", SV(a));
    }
    if (a.size() < kMaxDecimalLength) {
      FUZZ_CHECK(IsValidSignedDecimal(absl::StrCat("-", a)), "'-%.*s'", SV(a));
    }
  }
  if (IsValidSignedDecimal(a)) {
    FUZZ_CHECK(IsValidDecimal(Unsigned(a)), "'%.*s'", SV(a));
  }

  const auto plain = ToPlainDecimal(a);
  if (!plain.has_value()) return;
  const absl::string_view p = *plain;
  FUZZ_CHECK(IsValidSignedDecimal(p), "'%.*s' -> '%.*s'", SV(a), SV(p));
  const auto again = ToPlainDecimal(p);
  FUZZ_CHECK(again.has_value() && *again == p, "'%.*s' -> '%.*s' is not plain",
             SV(a), SV(p));
  // The sign survives unless the value is zero.
  const bool negative = !a.empty() && a.front() == '-';
  if (CompareDecimals(Unsigned(p), "0") != 0) {
    FUZZ_CHECK(negative == (p.front() == '-'), "'%.*s' -> '%.*s'", SV(a),
               SV(p));
  }
  // Exactness: p * 10^-exponent equals the mantissa.
  const absl::string_view u = Unsigned(a);
  const size_t e = u.find_first_of("eE");
  if (e == absl::string_view::npos) {
    FUZZ_CHECK(p == a, "'%.*s' -> '%.*s'", SV(a), SV(p));
    return;
  }
  const absl::string_view mantissa = u.substr(0, e);
  int exponent = 0;
  absl::string_view exponent_text = u.substr(e + 1);
  if (!exponent_text.empty() && exponent_text.front() == '+') {
    exponent_text.remove_prefix(1);  // SimpleAtoi takes no '+' after '-'.
  }
  FUZZ_CHECK(absl::SimpleAtoi(exponent_text, &exponent),
             "'%.*s' has exponent '%.*s'", SV(a), SV(exponent_text));
  const auto back = ToPlainDecimal(absl::StrCat(Unsigned(p), "e", -exponent));
  // Moving the point back may need more room than kMaxDecimalLength (e.g.
  // "1e-39" -> "0.000...1" back to "1" is fine, but the mantissa itself may
  // carry many leading zeros); only a result is checked.
  if (back.has_value()) {
    FUZZ_CHECK(CompareDecimals(*back, mantissa) == 0,
               "'%.*s' -> '%.*s' -> '%.*s'", SV(a), SV(p), SV(*back));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const absl::string_view a = input.substr(0, newline);
  const absl::string_view b = newline == absl::string_view::npos
                                  ? absl::string_view()
                                  : input.substr(newline + 1);
  CheckOne(a);
  CheckOne(b);
  if (IsValidDecimal(a) && IsValidDecimal(b)) {
    const int ab = CompareDecimals(a, b);
    const int ba = CompareDecimals(b, a);
    FUZZ_CHECK(ab == -ba, "'%.*s' vs '%.*s': %d, %d", SV(a), SV(b), ab, ba);
    if (ab == 0) {
      FUZZ_CHECK(IsPositiveDecimal(a) == IsPositiveDecimal(b),
                 "'%.*s' vs '%.*s'", SV(a), SV(b));
    }
  }
  return 0;
}
