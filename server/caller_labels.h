// The `caller` label of the gateway's metrics, and where its values come from.
//
// A label value must come from a bounded set, but callers are whoever connects.
// The set is fixed at startup: the principals the gRPC authorization policy
// (--authz_policy_file, gRFC A43) names, plus "anonymous" (no identity) and
// "other" (an identity the policy does not name, or any identity when there is
// no policy). A principal added to the policy while the gateway runs is
// counted as "other" until the next restart; a reload never adds series.
#ifndef CLINK_GATEWAY_SERVER_CALLER_LABELS_H_
#define CLINK_GATEWAY_SERVER_CALLER_LABELS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::server {

inline constexpr absl::string_view kAnonymousCallerLabel = "anonymous";
inline constexpr absl::string_view kOtherCallerLabel = "other";

// At most this many principals become label values (the first ones in sorted
// order); the rest are counted as "other" and PrincipalsFromAuthzPolicy warns.
inline constexpr size_t kMaxCallerLabels = 50;

// Maps a caller (clink::CallOptions::caller: the authenticated identity or
// the `x-clink-caller` claim) to its label value. Immutable; thread-safe.
class CallerLabels {
 public:
  // `principals`: the names that are their own label value (duplicates and
  // empty names ignored; beyond kMaxCallerLabels, the rest are "other").
  explicit CallerLabels(const std::vector<std::string>& principals = {});

  // "anonymous" for an empty caller, the caller itself when it is one of the
  // principals, else "other".
  absl::string_view Label(absl::string_view caller) const;
  // Label's position in values().
  size_t Index(absl::string_view caller) const;
  // Every value Label can return: "anonymous", "other", then the principals
  // in sorted order.
  const std::vector<std::string>& values() const { return values_; }

 private:
  std::vector<std::string> values_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// The exact principal names in a gRFC A43 authorization policy (JSON):
// every string of `allow_rules[].source.principals[]` and
// `deny_rules[].source.principals[]`, sorted and without duplicates. Patterns
// ("*", "spiffe://cluster.local/ns/shop/*", "*.example.com") name no single
// caller and are left out. INVALID_ARGUMENT when `json` is not a JSON object
// or a present member has the wrong type (gRPC itself would refuse such a
// policy).
absl::StatusOr<std::vector<std::string>> PrincipalsFromAuthzPolicy(
    absl::string_view json);

// As above, for the policy file at `path` (INVALID_ARGUMENT naming the path
// when it cannot be read).
absl::StatusOr<std::vector<std::string>> PrincipalsFromAuthzPolicyFile(
    const std::string& path);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_CALLER_LABELS_H_
