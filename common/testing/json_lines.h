// Reading JSON-lines files (the audit trail, the process log) in tests.
#ifndef CLINK_GATEWAY_COMMON_TESTING_JSON_LINES_H_
#define CLINK_GATEWAY_COMMON_TESTING_JSON_LINES_H_

#include <map>
#include <string>
#include <vector>

namespace clink_gateway::testing {

// One map per non-empty line of the file at `path`: the line's string-valued
// members by name (none when the line is not a JSON object), plus "__line",
// the line itself. Empty when the file cannot be read.
std::vector<std::map<std::string, std::string>> ReadJsonLines(
    const std::string& path);

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_COMMON_TESTING_JSON_LINES_H_
