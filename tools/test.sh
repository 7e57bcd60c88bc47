#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, buf), then:
#   1. bazel test //...                   unit, integration, proto lint, manifests, monitoring,
#                                         the Node and Python example clients over mutual TLS,
#                                         fuzz corpus replays, and //k8s:image_test (the container
#                                         image built with buildah and run as the prod Deployment)
#   2. tools/fuzz.sh                      each libFuzzer target for FUZZ_SECONDS (20; 0 skips them)
#   3. --config=asan (ASan + UBSan)       every C++ unit and integration test
#   4. --config=tsan (ThreadSanitizer)    the concurrent code: HTTP transport, Clink client,
#                                         idempotency stores (Redis included), server,
#                                         credentials, common
# Any failure, fuzzer crash or sanitizer report fails the run. Each sanitizer build has its own
# output directory, so a re-run only rebuilds what changed.
#   tools/test.sh                 # all of it
#   tools/test.sh --config=unit   # extra bazel flags, e.g. unit tests only (applied to each step)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/install_deps.sh
# //k8s:image_test is tagged manual, so named here; `exclusive`, so it runs alone after the other
# tests. --config=unit filters it out (its -manual tag filter).
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
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then tools/fuzz.sh; fi
# C++ tests only (--test_lang_filters=cc): the shell tests check YAML, protos and the Dockerfile.
# Tests tagged no_asan are excluded (see their BUILD comment for why).
bazel test --config=asan --build_tests_only --test_lang_filters=cc "$@" -- //...
# TSan: the code that runs on several threads. It locks with std::mutex (common/sync.h): Debian's
# Abseil is not built for TSan, so absl::Mutex users would get false reports. Tests tagged
# no_tsan are excluded.
exec bazel test --config=tsan --build_tests_only "$@" -- \
  //adapters/http/... //adapters/idempotency/... //adapters/credentials/... //server/... \
  //adapters/events/... //adapters/webhooks/... //tests/emulator:webhook_test \
  //common/... //adapters/clink:clink_client_test //adapters/clink:clock_skew_monitor_test \
  //adapters/clink:retry_policy_test //adapters/clink:token_bucket_test
