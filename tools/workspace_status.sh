#!/bin/sh
# Bazel's --workspace_status_command (.bazelrc): facts stamped into the server
# binary (server/BUILD.bazel, :build_stamp_cc). Offline and fast; prints
# nothing when this is not a git checkout (the binary then says "unknown").
commit=$(git rev-parse HEAD 2>/dev/null) && echo "STABLE_GIT_COMMIT ${commit}"
exit 0
