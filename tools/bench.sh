#!/usr/bin/env bash
# The benchmark command: installs what is missing, builds optimized, and prints throughput per
# core, the gateway's added latency over a direct pooled HTTPS call, and upstream connection reuse.
#   tools/bench.sh                                  # 32 callers, 5 s per phase (about 30 s)
#   tools/bench.sh --duration=10s --concurrency=64  # any gateway_benchmark flag
#   tools/bench.sh --compare                        # the gateway beside a Node proxy and direct
#                                                   # HTTPS (../shared/bench/compare.sh, ~2 min;
#                                                   # its env: DUR, TARGETS, ...), pinned to CPU 0
# Figures and the per-call CPU model for larger pods: README.md, "Performance".
# Idempotency-key cost (separate, not run here): bazel run -c opt //tests/benchmark:idempotency_benchmark
# Webhook ingestion and receipt-to-stream latency (separate, not run here):
#   bazel run -c opt //tests/benchmark:webhook_benchmark -- [--concurrency=8] [--redis]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ${1:-} == --compare ]]; then
  [[ -x ../shared/bench/compare.sh ]] || { echo "bench.sh: no ../shared/bench/compare.sh" >&2; exit 1; }
  bazel build //server:clink_gateway
  GW_BIN="$PWD/tools/gateway_insecure.sh" exec ../shared/bench/compare.sh
fi
tools/install_deps.sh
bazel build -c opt //tests/benchmark:gateway_benchmark //server:clink_gateway
exec bazel-bin/tests/benchmark/gateway_benchmark \
  --gateway_binary=bazel-bin/server/clink_gateway "$@"
