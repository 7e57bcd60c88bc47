#include "tests/emulator/list_query.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace clink_gateway::emulator {

namespace {

int PercentDecodeDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string UrlDecode(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%' && i + 2 < text.size() &&
               PercentDecodeDigit(text[i + 1]) >= 0 &&
               PercentDecodeDigit(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(PercentDecodeDigit(text[i + 1]) * 16 +
                                      PercentDecodeDigit(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(absl::string_view query) {
  std::map<std::string, std::string> params;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    params.emplace(UrlDecode(kv.first), UrlDecode(kv.second));
  }
  return params;
}

std::string QueryValue(const std::map<std::string, std::string>& query,
                       const std::string& name) {
  auto it = query.find(name);
  return it == query.end() ? std::string() : it->second;
}

absl::StatusOr<Page> ReadPage(const std::map<std::string, std::string>& query,
                              int64_t default_size, int64_t max_size,
                              bool cap) {
  Page page{1, default_size};
  const std::string number = QueryValue(query, "pageNum");
  const std::string size = QueryValue(query, "pageSize");
  if (!number.empty() &&
      (!absl::SimpleAtoi(number, &page.number) || page.number < 1)) {
    return absl::InvalidArgumentError("pageNum must be an integer >= 1");
  }
  if (!size.empty() && (!absl::SimpleAtoi(size, &page.size) || page.size < 1)) {
    return absl::InvalidArgumentError("pageSize must be an integer >= 1");
  }
  if (page.size > max_size) {
    if (!cap) {
      return absl::InvalidArgumentError(
          absl::StrCat("pageSize must be between 1 and ", max_size));
    }
    page.size = max_size;
  }
  return page;
}

}  // namespace clink_gateway::emulator
