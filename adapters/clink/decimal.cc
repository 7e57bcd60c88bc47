#include "adapters/clink/decimal.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace clink_gateway::clink {
namespace {

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(c);
  });
}

// Splits a valid decimal into its integer digits (leading zeros stripped,
// possibly empty) and fraction digits (trailing zeros stripped, possibly
// empty).
void Normalize(absl::string_view text, absl::string_view* integer,
               absl::string_view* fraction) {
  const size_t dot = text.find('.');
  absl::string_view i = text.substr(0, dot);
  absl::string_view f = dot == absl::string_view::npos ? absl::string_view()
                                                       : text.substr(dot + 1);
  while (!i.empty() && i.front() == '0') i.remove_prefix(1);
  while (!f.empty() && f.back() == '0') f.remove_suffix(1);
  *integer = i;
  *fraction = f;
}

}  // namespace

bool IsValidDecimal(absl::string_view text) {
  if (text.empty() || text.size() > kMaxDecimalLength) return false;
  const size_t dot = text.find('.');
  const absl::string_view integer = text.substr(0, dot);
  if (!AllDigits(integer)) return false;
  if (integer.size() > 1 && integer.front() == '0') return false;
  if (dot == absl::string_view::npos) return true;
  return AllDigits(text.substr(dot + 1));
}

bool IsValidSignedDecimal(absl::string_view text) {
  if (!text.empty() && text.front() == '-') text.remove_prefix(1);
  return IsValidDecimal(text);
}

int CompareDecimals(absl::string_view a, absl::string_view b) {
  absl::string_view ai, af, bi, bf;
  Normalize(a, &ai, &af);
  Normalize(b, &bi, &bf);
  if (ai.size() != bi.size()) return ai.size() < bi.size() ? -1 : 1;
  if (const int c = ai.compare(bi); c != 0) return c < 0 ? -1 : 1;
  const size_t n = std::max(af.size(), bf.size());
  for (size_t k = 0; k < n; ++k) {
    const char x = k < af.size() ? af[k] : '0';
    const char y = k < bf.size() ? bf[k] : '0';
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

absl::optional<std::string> ToPlainDecimal(absl::string_view text) {
  std::string sign;
  if (!text.empty() && text.front() == '-') {
    sign = "-";
    text.remove_prefix(1);
  }
  const size_t e = text.find_first_of("eE");
  const absl::string_view mantissa = text.substr(0, e);
  if (e == absl::string_view::npos) {
    if (!IsValidDecimal(mantissa)) return absl::nullopt;
    return absl::StrCat(sign, mantissa);
  }
  // The exponent: an optional sign, then ASCII digits only.
  absl::string_view exponent_text = text.substr(e + 1);
  bool negative = false;
  if (!exponent_text.empty() &&
      (exponent_text.front() == '+' || exponent_text.front() == '-')) {
    negative = exponent_text.front() == '-';
    exponent_text.remove_prefix(1);
  }
  while (exponent_text.size() > 1 && exponent_text.front() == '0') {
    exponent_text.remove_prefix(1);
  }
  if (exponent_text.empty() || exponent_text.size() > 3 ||
      !std::all_of(exponent_text.begin(), exponent_text.end(),
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      !IsValidDecimal(mantissa)) {
    return absl::nullopt;
  }
  int exponent = 0;
  for (const char c : exponent_text) exponent = exponent * 10 + (c - '0');
  if (negative) exponent = -exponent;
  const size_t dot = mantissa.find('.');
  const absl::string_view integer = mantissa.substr(0, dot);
  const absl::string_view fraction = dot == absl::string_view::npos
                                         ? absl::string_view()
                                         : mantissa.substr(dot + 1);
  const std::string digits = absl::StrCat(integer, fraction);
  // Where the decimal point goes in `digits` once the exponent is applied.
  const long point = static_cast<long>(integer.size()) + exponent;  // NOLINT
  // Bounds the zeros added below; the result's length is checked at the end.
  if (point > 2 * static_cast<long>(kMaxDecimalLength) ||   // NOLINT
      -point > 2 * static_cast<long>(kMaxDecimalLength)) {  // NOLINT
    return absl::nullopt;
  }
  std::string plain;
  if (point <= 0) {
    plain = absl::StrCat("0.", std::string(-point, '0'), digits);
  } else if (point >= static_cast<long>(digits.size())) {  // NOLINT
    plain = absl::StrCat(digits, std::string(point - digits.size(), '0'));
  } else {
    plain = absl::StrCat(digits.substr(0, point), ".", digits.substr(point));
  }
  size_t leading = 0;  // Superfluous leading zeros ("05" -> "5").
  while (leading + 1 < plain.size() && plain[leading] == '0' &&
         plain[leading + 1] != '.') {
    ++leading;
  }
  plain.erase(0, leading);
  if (!IsValidDecimal(plain)) return absl::nullopt;
  if (CompareDecimals(plain, "0") == 0) sign.clear();  // "-0E0" is 0.
  return absl::StrCat(sign, plain);
}

bool IsPositiveDecimal(absl::string_view text) {
  return CompareDecimals(text, "0") > 0;
}

int SignificantFractionDigits(absl::string_view text) {
  const size_t dot = text.find('.');
  if (dot == absl::string_view::npos) return 0;
  absl::string_view fraction = text.substr(dot + 1);
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  return static_cast<int>(fraction.size());
}

}  // namespace clink_gateway::clink
