#!/usr/bin/env bash
# The benchmark command: installs what is missing, builds optimized, and prints throughput per
# core, the gateway's added latency over a direct pooled HTTPS call, and upstream connection reuse.
#   tools/bench.sh                                  # 32 callers, 5 s per phase (about 30 s)
#   tools/bench.sh --duration=10s --concurrency=64  # any gateway_benchmark flag
# Idempotency-key cost (separate, not run here): bazel run -c opt //tests/benchmark:idempotency_benchmark
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/install_deps.sh
bazel build -c opt //tests/benchmark:gateway_benchmark //server:clink_gateway
exec bazel-bin/tests/benchmark/gateway_benchmark \
  --gateway_binary=bazel-bin/server/clink_gateway "$@"
