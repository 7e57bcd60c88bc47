#include "common/testing/json_lines.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "rapidjson/document.h"

namespace clink_gateway::testing {

std::vector<std::map<std::string, std::string>> ReadJsonLines(
    const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  std::vector<std::map<std::string, std::string>> lines;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (line.empty()) continue;
    rapidjson::Document doc;
    doc.Parse(line.data(), line.size());
    std::map<std::string, std::string> fields;
    if (!doc.HasParseError() && doc.IsObject()) {
      for (const auto& m : doc.GetObject()) {
        if (m.value.IsString()) {
          fields[m.name.GetString()] = m.value.GetString();
        }
      }
    }
    fields["__line"] = std::string(line);
    lines.push_back(std::move(fields));
  }
  return lines;
}

}  // namespace clink_gateway::testing
