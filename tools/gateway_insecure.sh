#!/usr/bin/env bash
# The gateway binary with --grpc_insecure (plaintext, unauthenticated gRPC port), for harnesses that
# start it with a fixed set of flags and call it without a client certificate, such as the shared
# comparison benchmark: GW_BIN="$PWD/tools/gateway_insecure.sh" ../shared/bench/compare.sh
# `exec` keeps the process id, so per-process CPU readings still see the gateway itself.
set -euo pipefail
exec "${GATEWAY_BINARY:-$(dirname "${BASH_SOURCE[0]}")/../bazel-bin/server/clink_gateway}" \
  --grpc_insecure "$@"
