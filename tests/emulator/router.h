// A minimal method + path-pattern router for the Clink emulator.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_ROUTER_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_ROUTER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::emulator {

// Splits "/a/b/" into {"a", "b"}; empty segments are dropped.
inline std::vector<absl::string_view> SplitPath(absl::string_view path) {
  return absl::StrSplit(path, '/', absl::SkipEmpty());
}

// Maps (method, path) to a Handler. Patterns are '/'-separated; a segment
// written "{name}" matches any one segment and captures it. When several routes
// match, the one with the most literal segments wins, so
// "/order/payment-session/{id}" beats "/order/{id}/{x}" regardless of
// registration order.
//
// Not thread-safe for Add(); Find() is const and may run concurrently once
// setup is done.
template <typename Handler>
class Router {
 public:
  struct Match {
    const Handler* handler = nullptr;  // Null when no route matched.
    std::vector<std::string> params;   // Captured "{…}" segments, in order.
    bool path_known =
        false;  // True when some route has this path (for 405 vs 404).
  };

  void Add(absl::string_view method, absl::string_view pattern,
           Handler handler) {
    Route route{std::string(method), {}, std::move(handler)};
    for (absl::string_view segment : SplitPath(pattern))
      route.segments.emplace_back(segment);
    routes_.push_back(std::move(route));
  }

  Match Find(absl::string_view method, absl::string_view path) const {
    const std::vector<absl::string_view> segments = SplitPath(path);
    Match best;
    int best_literals = -1;
    for (const Route& route : routes_) {
      std::vector<std::string> params;
      int literals = 0;
      if (!Matches(route, segments, &params, &literals)) continue;
      best.path_known = true;
      if (route.method != method || literals <= best_literals) continue;
      best_literals = literals;
      best.handler = &route.handler;
      best.params = std::move(params);
    }
    return best;
  }

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
  };

  static bool Matches(const Route& route,
                      const std::vector<absl::string_view>& segments,
                      std::vector<std::string>* params, int* literals) {
    if (route.segments.size() != segments.size()) return false;
    for (size_t i = 0; i < segments.size(); ++i) {
      const std::string& pattern = route.segments[i];
      if (pattern.size() > 2 && pattern.front() == '{' &&
          pattern.back() == '}') {
        params->emplace_back(segments[i]);
      } else if (pattern == segments[i]) {
        ++*literals;
      } else {
        return false;
      }
    }
    return true;
  }

  std::vector<Route> routes_;
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_ROUTER_H_
