#include "tests/emulator/decimal.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace clink_gateway::emulator {
namespace {

// Pads `digits` (a coefficient with `scale` fraction digits) with zeros to
// `target_scale`. The result has no leading zeros (zero stays "0").
std::string Align(const std::string& digits, int scale, int target_scale) {
  if (digits == "0") return digits;
  return digits + std::string(target_scale - scale, '0');
}

// Compares two magnitudes without leading zeros.
int CompareMagnitude(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  const int c = a.compare(b);
  return c == 0 ? 0 : (c < 0 ? -1 : 1);
}

std::string AddMagnitude(const std::string& a, const std::string& b) {
  std::string out;
  int carry = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) || carry != 0; ++i) {
    int sum = carry;
    if (i < a.size()) sum += a[a.size() - 1 - i] - '0';
    if (i < b.size()) sum += b[b.size() - 1 - i] - '0';
    out.push_back(static_cast<char>('0' + sum % 10));
    carry = sum / 10;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// Requires a >= b.
std::string SubtractMagnitude(const std::string& a, const std::string& b) {
  std::string out;
  int borrow = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int diff = (a[a.size() - 1 - i] - '0') - borrow;
    if (i < b.size()) diff -= b[b.size() - 1 - i] - '0';
    borrow = diff < 0 ? 1 : 0;
    out.push_back(static_cast<char>('0' + (diff + 10) % 10));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// Consumes a run of ASCII digits starting at *pos; returns how many there were.
size_t ConsumeDigits(absl::string_view text, size_t* pos) {
  const size_t start = *pos;
  while (*pos < text.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(text[*pos]))) {
    ++*pos;
  }
  return *pos - start;
}

}  // namespace

Decimal::Decimal(bool negative, std::string digits, int scale)
    : negative_(negative), digits_(std::move(digits)), scale_(scale) {
  const size_t first = digits_.find_first_not_of('0');
  digits_ = first == std::string::npos ? "0" : digits_.substr(first);
  while (scale_ > 0 && digits_.size() > 1 && digits_.back() == '0') {
    digits_.pop_back();
    --scale_;
  }
  if (digits_ == "0") {
    negative_ = false;
    scale_ = 0;
  }
}

absl::StatusOr<Decimal> Decimal::Parse(absl::string_view text) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("not a decimal number: \"", text, "\""));
  };
  size_t pos = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) ++pos;
  const size_t int_start = pos;
  if (pos < text.size() && text[pos] == '0') {
    ++pos;
  } else if (ConsumeDigits(text, &pos) == 0) {
    return invalid();
  }
  std::string coefficient(text.substr(int_start, pos - int_start));
  int64_t fraction_digits = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const size_t fraction_start = pos;
    fraction_digits = static_cast<int64_t>(ConsumeDigits(text, &pos));
    if (fraction_digits == 0) return invalid();
    absl::StrAppend(&coefficient, text.substr(fraction_start, fraction_digits));
  }
  int64_t exponent = 0;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    bool exponent_negative = false;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      exponent_negative = text[pos] == '-';
      ++pos;
    }
    const size_t exponent_start = pos;
    if (ConsumeDigits(text, &pos) == 0) return invalid();
    for (size_t i = exponent_start; i < pos; ++i) {
      // Saturate: anything this large is out of range unless the coefficient is
      // zero.
      exponent = std::min<int64_t>(exponent * 10 + (text[i] - '0'), 1000000);
    }
    if (exponent_negative) exponent = -exponent;
  }
  if (pos != text.size()) return invalid();

  if (coefficient.find_first_not_of('0') == std::string::npos) return Decimal();
  coefficient = coefficient.substr(coefficient.find_first_not_of('0'));
  int64_t scale = fraction_digits - exponent;
  if (scale < 0) {
    if (static_cast<int64_t>(coefficient.size()) - scale > kMaxDigits) {
      return absl::OutOfRangeError(
          absl::StrCat("number has too many digits: ", text));
    }
    coefficient.append(static_cast<size_t>(-scale), '0');
    scale = 0;
  }
  while (scale > 0 && coefficient.back() == '0') {
    coefficient.pop_back();
    --scale;
  }
  if (scale > kMaxDigits ||
      static_cast<int64_t>(coefficient.size()) > kMaxDigits) {
    return absl::OutOfRangeError(
        absl::StrCat("number has too many digits: ", text));
  }
  return Decimal(negative, std::move(coefficient), static_cast<int>(scale));
}

std::string Decimal::ToString() const {
  std::string out = negative_ ? "-" : "";
  if (scale_ == 0) return out + digits_;
  std::string padded = digits_;
  if (static_cast<int>(padded.size()) <= scale_) {
    padded.insert(0, static_cast<size_t>(scale_ + 1) - padded.size(), '0');
  }
  absl::StrAppend(
      &out, absl::string_view(padded).substr(0, padded.size() - scale_), ".",
      absl::string_view(padded).substr(padded.size() - scale_));
  return out;
}

Decimal operator+(const Decimal& a, const Decimal& b) {
  const int scale = std::max(a.scale_, b.scale_);
  const std::string x = Align(a.digits_, a.scale_, scale);
  const std::string y = Align(b.digits_, b.scale_, scale);
  if (a.negative_ == b.negative_)
    return Decimal(a.negative_, AddMagnitude(x, y), scale);
  if (CompareMagnitude(x, y) >= 0)
    return Decimal(a.negative_, SubtractMagnitude(x, y), scale);
  return Decimal(b.negative_, SubtractMagnitude(y, x), scale);
}

Decimal operator-(const Decimal& a, const Decimal& b) {
  return a + Decimal(!b.negative_, b.digits_, b.scale_);
}

int Compare(const Decimal& a, const Decimal& b) {
  const Decimal difference = a - b;
  if (difference.IsZero()) return 0;
  return difference.IsNegative() ? -1 : 1;
}

}  // namespace clink_gateway::emulator
