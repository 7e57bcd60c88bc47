#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, buf), then runs every test, then
# the C++ tests again under sanitizers:
#   1. bazel test //...                   unit, integration, proto lint, manifests, monitoring
#   2. --config=asan (ASan + UBSan)       every C++ unit and integration test
#   3. --config=tsan (ThreadSanitizer)    the concurrent code: HTTP transport, Clink client,
#                                         idempotency stores (Redis included), server,
#                                         credentials, common
# Any sanitizer report fails the run. Each sanitizer build has its own output directory, so a
# re-run only rebuilds what changed.
#   tools/test.sh                 # all of it
#   tools/test.sh --config=unit   # extra bazel flags, e.g. unit tests only (applied to each step)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/install_deps.sh
bazel test //... "$@"
# C++ tests only (--test_lang_filters=cc): the shell tests check YAML, protos and the Dockerfile.
# Tests tagged no_asan are excluded (see their BUILD comment for why).
bazel test --config=asan --build_tests_only --test_lang_filters=cc "$@" -- //...
# TSan: the code that runs on several threads. It locks with std::mutex (common/sync.h): Debian's
# Abseil is not built for TSan, so absl::Mutex users would get false reports. Tests tagged
# no_tsan are excluded.
exec bazel test --config=tsan --build_tests_only "$@" -- \
  //adapters/http/... //adapters/idempotency/... //adapters/credentials/... //server/... \
  //common/... //adapters/clink:clink_client_test //adapters/clink:clock_skew_monitor_test \
  //adapters/clink:retry_policy_test //adapters/clink:token_bucket_test
