// Query strings and paged lists of the emulated merchant API (clink-api.md
// §3.2-3.3): pageNum/pageSize and Clink's list envelope.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_LIST_QUERY_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_LIST_QUERY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tests/emulator/clink_json.h"

namespace clink_gateway::emulator {

// Percent-decodes `text` ('+' is a space).
std::string UrlDecode(absl::string_view text);

// Decoded query parameters; the first occurrence of a name wins.
std::map<std::string, std::string> ParseQuery(absl::string_view query);

// The value of `name` in `query`, or "".
std::string QueryValue(const std::map<std::string, std::string>& query,
                       const std::string& name);

// A 1-based page of a list.
struct Page {
  int64_t number = 1;
  int64_t size = 0;
};

// Reads pageNum/pageSize. Sizes above `max_size` are capped when `cap` is set,
// else rejected.
absl::StatusOr<Page> ReadPage(const std::map<std::string, std::string>& query,
                              int64_t default_size, int64_t max_size,
                              bool cap);

// Applies `page` to `items` (already in list order) and writes the list
// envelope.
template <typename T, typename WriteRow>
std::string PagedList(const std::vector<const T*>& items, const Page& page,
                      WriteRow write_row) {
  return ListEnvelope(
      static_cast<int64_t>(items.size()), [&](JsonWriter& writer) {
        const int64_t begin = (page.number - 1) * page.size;
        for (int64_t i = begin;
             i < static_cast<int64_t>(items.size()) && i < begin + page.size;
             ++i) {
          writer.StartObject();
          write_row(writer, *items[i]);
          writer.EndObject();
        }
      });
}

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_LIST_QUERY_H_
