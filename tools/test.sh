#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, buf), then runs every test,
# runs each fuzzer for a bounded time (tools/fuzz.sh: FUZZ_SECONDS each, 30 by default; 0 skips
# them), and runs the key-rotation tests once more under ThreadSanitizer.
#   tools/test.sh                 # all tests (unit, integration, proto lint)
#   tools/test.sh --config=unit   # extra bazel flags, e.g. unit tests only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/install_deps.sh
bazel test //... "$@"
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then tools/fuzz.sh; fi
# Key rotation (1000 rapid Secret swaps under concurrent signing) and the logger, again under
# ThreadSanitizer. That code locks with std::mutex: Debian's Abseil is not built for TSan, so
# absl::Mutex users get false reports.
exec bazel test --config=tsan //adapters/credentials:all //common:logging_test "$@"
