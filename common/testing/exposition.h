// Reads Prometheus's text exposition format back into samples, for tests that
// check what the gateway's /metrics says.
#ifndef CLINK_GATEWAY_COMMON_TESTING_EXPOSITION_H_
#define CLINK_GATEWAY_COMMON_TESTING_EXPOSITION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace clink_gateway::testing {

struct Sample {
  std::string name;  // e.g. "grpc_server_handled_total"
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Every sample line (comments and blank lines skipped). Label values are
// unescaped (\\, \", \n). A line that does not parse is returned with an
// empty name, so callers can assert there are none.
std::vector<Sample> ParseExposition(absl::string_view text);

// The samples named `name` whose labels include every pair of `labels`.
std::vector<Sample> Select(const std::vector<Sample>& samples,
                           absl::string_view name,
                           const std::map<std::string, std::string>& labels =
                               {});

// The sum of Select(...)'s values (0 when none match).
double Sum(const std::vector<Sample>& samples, absl::string_view name,
           const std::map<std::string, std::string>& labels = {});

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_COMMON_TESTING_EXPOSITION_H_
