// Build facts stamped in at link time (server/BUILD.bazel, :build_stamp_cc).
#ifndef CLINK_GATEWAY_SERVER_BUILD_STAMP_H_
#define CLINK_GATEWAY_SERVER_BUILD_STAMP_H_

#include "absl/strings/string_view.h"

namespace clink_gateway::server {

// The git commit (hex) the binary was built from, or "unknown" when the build
// ran outside a git checkout.
absl::string_view GitCommit();

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_BUILD_STAMP_H_
