#include "adapters/clink/currency.h"

#include <unicode/ucurr.h>
#include <unicode/uenum.h>
#include <unicode/utypes.h>

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace clink_gateway::clink {
namespace {

struct CurrencyTable {
  absl::flat_hash_map<std::string, int> digits;  // "USD" -> 2
  int max_digits = 0;
};

// Every current, common ISO 4217 currency in ICU's data (no withdrawn codes,
// and no funds, precious metals or test codes, which ICU marks uncommon).
CurrencyTable* BuildTable() {
  auto* table = new CurrencyTable();
  UErrorCode status = U_ZERO_ERROR;
  UEnumeration* codes =
      ucurr_openISOCurrencies(UCURR_COMMON | UCURR_NON_DEPRECATED, &status);
  if (U_FAILURE(status)) return table;  // No ICU data: every code is refused.
  int32_t length = 0;
  while (const char* code = uenum_next(codes, &length, &status)) {
    if (U_FAILURE(status) || length != 3) break;
    const UChar wide[4] = {static_cast<UChar>(code[0]),
                           static_cast<UChar>(code[1]),
                           static_cast<UChar>(code[2]), 0};
    UErrorCode digits_status = U_ZERO_ERROR;
    const int32_t digits = ucurr_getDefaultFractionDigits(wide, &digits_status);
    if (U_FAILURE(digits_status) || digits < 0) continue;
    table->digits.emplace(std::string(code, 3), digits);
    table->max_digits = std::max(table->max_digits, static_cast<int>(digits));
  }
  uenum_close(codes);
  return table;
}

const CurrencyTable& Table() {
  static const CurrencyTable* const table = BuildTable();
  return *table;
}

}  // namespace

absl::optional<int> MinorUnitDigits(absl::string_view code) {
  if (code.size() != 3) return absl::nullopt;
  for (const char c : code) {
    if (c < 'A' || c > 'Z') return absl::nullopt;
  }
  const auto& digits = Table().digits;
  const auto it = digits.find(code);
  if (it == digits.end()) return absl::nullopt;
  return it->second;
}

int MaxMinorUnitDigits() { return Table().max_digits; }

}  // namespace clink_gateway::clink
