#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, buf), then runs every test,
# runs each fuzzer for a bounded time (tools/fuzz.sh: FUZZ_SECONDS each, 30 by default; 0 skips
# them), builds and runs the container image (//k8s:image_test), and runs the key-rotation
# tests once more under ThreadSanitizer.
#   tools/test.sh                 # all tests (unit, integration, proto lint)
#   tools/test.sh --config=unit   # extra bazel flags, e.g. unit tests only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/install_deps.sh
# //k8s:image_test (tagged manual, so named here): builds the container image with buildah and
# runs it as the prod Deployment does; `exclusive`, so it runs alone after the other tests.
# --config=unit filters it out (its -manual tag filter).
status=0
started="$(mktemp)"
bazel test //... //k8s:image_test "$@" || status=$?
# The image's figures, when it ran now (a passing test's log is not shown).
image_log=bazel-testlogs/k8s/image_test/test.log
if [ "$image_log" -nt "$started" ]; then
  sed -n 's/^\(image size: .*\|image .* built or reused in .*\|SKIPPED: .*\)$/image_test: \1/p' "$image_log"
fi
rm -f "$started"
[ "$status" -eq 0 ] || exit "$status"
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then tools/fuzz.sh; fi
# Key rotation (1000 rapid Secret swaps under concurrent signing) and the logger, again under
# ThreadSanitizer. That code locks with std::mutex: Debian's Abseil is not built for TSan, so
# absl::Mutex users get false reports.
exec bazel test --config=tsan //adapters/credentials:all //common:logging_test "$@"
