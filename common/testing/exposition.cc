#include "common/testing/exposition.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace clink_gateway::testing {
namespace {

// Parses `{a="x",b="y"}` starting at text[0] == '{'; returns the length
// consumed, or 0 when malformed.
size_t ParseLabels(absl::string_view text,
                   std::map<std::string, std::string>* labels) {
  size_t i = 1;
  while (i < text.size()) {
    if (text[i] == '}') return i + 1;
    if (text[i] == ',') {
      ++i;
      continue;
    }
    const size_t eq = text.find('=', i);
    if (eq == absl::string_view::npos || eq + 1 >= text.size() ||
        text[eq + 1] != '"') {
      return 0;
    }
    const std::string name(absl::StripAsciiWhitespace(text.substr(i, eq - i)));
    std::string value;
    size_t j = eq + 2;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size()) {
        ++j;
        value.push_back(text[j] == 'n' ? '\n' : text[j]);
      } else {
        value.push_back(text[j]);
      }
    }
    if (j >= text.size()) return 0;
    (*labels)[name] = value;
    i = j + 1;
  }
  return 0;
}

}  // namespace

std::vector<Sample> ParseExposition(absl::string_view text) {
  std::vector<Sample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == absl::string_view::npos) {
      samples.push_back(Sample{});
      continue;
    }
    sample.name = std::string(line.substr(0, name_end));
    absl::string_view rest = line.substr(name_end);
    if (rest[0] == '{') {
      const size_t used = ParseLabels(rest, &sample.labels);
      if (used == 0) {
        samples.push_back(Sample{});
        continue;
      }
      rest = rest.substr(used);
    }
    rest = absl::StripAsciiWhitespace(rest);
    // The value, then an optional timestamp.
    const std::string value(rest.substr(0, rest.find(' ')));
    char* end = nullptr;
    sample.value = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size()) {
      samples.push_back(Sample{});
      continue;
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::vector<Sample> Select(const std::vector<Sample>& samples,
                           absl::string_view name,
                           const std::map<std::string, std::string>& labels) {
  std::vector<Sample> out;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [key, value] : labels) {
      const auto it = s.labels.find(key);
      if (it == s.labels.end() || it->second != value) {
        match = false;
        break;
      }
    }
    if (match) out.push_back(s);
  }
  return out;
}

double Sum(const std::vector<Sample>& samples, absl::string_view name,
           const std::map<std::string, std::string>& labels) {
  double sum = 0;
  for (const Sample& s : Select(samples, name, labels)) sum += s.value;
  return sum;
}

}  // namespace clink_gateway::testing
