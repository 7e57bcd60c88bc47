#!/usr/bin/env bash
# Installs every Debian package (and the npm tooling) that building, testing and running
# clink-gateway needs. Idempotent: does nothing when everything is already present.
# Usage: tools/install_deps.sh        (needs root, or sudo)
set -euo pipefail

APT_PACKAGES=(
  # Build system: Debian's Bazel 4.2 and the Java rules it needs in WORKSPACE mode.
  bazel-bootstrap bazel-rules-java
  # Toolchain and pkg-config (the repository rule asks pkg-config for each system library).
  g++ pkg-config git ca-certificates
  # Fixed dependencies of the gateway.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libcurl4-openssl-dev rapidjson-dev prometheus-cpp-dev libcivetweb-dev
  libgtest-dev libgmock-dev
  # The gateway's allocator: ~20% less CPU per RPC than glibc malloc (tools/bench.sh).
  libjemalloc-dev
  # The emulator's TLS and the test CA.
  libssl-dev openssl
  # Idempotency keys shared by a fleet of replicas: the hiredis client, and the Redis server
  # the tests start themselves (on a unix socket in the test's temp dir).
  libhiredis-dev redis-server
  # Operations checks: promtool (metrics format, alert rules and their unit tests) and a real
  # Prometheus server that scrapes a running gateway in a test.
  prometheus
)
# `kubectl kustomize` renders k8s/ in the tests; any kubectl will do (Debian's, or one a cloud
# SDK already installed, which Debian's package would conflict with).
command -v kubectl >/dev/null 2>&1 || APT_PACKAGES+=(kubernetes-client)
# buf (the proto linter) ships on npm; use the machine's Node.js when it has one.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# buf, pinned, installed into the repo-local tools/node_modules (ignored by git).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x "$here/node_modules/.bin/buf" ]; then
  echo "install_deps: installing @bufbuild/buf from npm" >&2
  (cd "$here" && npm install --no-audit --no-fund --silent --prefix "$here" @bufbuild/buf@1.47.2 >/dev/null)
fi
