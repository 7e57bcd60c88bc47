#!/usr/bin/env bash
# Installs every Debian package (and the npm tooling) that building, testing and running
# clink-gateway needs. Idempotent: does nothing when everything is already present.
# Usage: tools/install_deps.sh        (needs root, or sudo)
set -euo pipefail

# What building the gateway binary needs (all the image's build stage installs).
APT_PACKAGES=(
  # Build system: Debian's Bazel 4.2 and the Java rules it needs in WORKSPACE mode.
  bazel-bootstrap bazel-rules-java
  # Toolchain and pkg-config (the repository rule asks pkg-config for each system library).
  g++ pkg-config git ca-certificates
  # Fixed dependencies of the gateway.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libcurl4-openssl-dev rapidjson-dev prometheus-cpp-dev libcivetweb-dev
  libgtest-dev libgmock-dev
  # ISO 4217 currencies and their minor units (amounts are checked against them).
  libicu-dev
  # The gateway's allocator: ~20% less CPU per RPC than glibc malloc (tools/bench.sh).
  libjemalloc-dev
  # TLS (request signing, the emulator's TLS and the test CA).
  libssl-dev openssl
  # Idempotency keys shared by a fleet of replicas: the hiredis client.
  libhiredis-dev
  # The default idempotency store: durable on local disk (--state_dir), survives a crash.
  libsqlite3-dev
)
# The image's build stage sets CLINK_GATEWAY_IN_IMAGE_BUILD: it builds the binary only, so it
# skips everything below (test and operations tools, npm, kubectl): a smaller, faster layer.
IN_IMAGE_BUILD="${CLINK_GATEWAY_IN_IMAGE_BUILD:-}"
if [ -z "$IN_IMAGE_BUILD" ]; then
  APT_PACKAGES+=(
    # The Redis server the tests start themselves (on a unix socket in the test's temp dir).
    redis-server
    # Fuzzing (tools/fuzz.sh, --config=fuzz): clang with libFuzzer and the sanitizer runtimes
    # (libclang-rt-14-dev is only a recommendation of clang-14, which this script skips).
    clang-14 libclang-rt-14-dev libfuzzer-14-dev
    # Operations checks: promtool (metrics format, alert rules and their unit tests) and a real
    # Prometheus server that scrapes a running gateway in a test.
    prometheus
    # The container image: tools/build_image.sh builds it with buildah from a debootstrapped
    # Debian base (no Docker daemon, no registry), //k8s:image_test runs it with podman and runc
    # and reads its metrics with curl.
    buildah podman runc debootstrap curl
    # The example Python client (clients/python, //clients:python_client_test): gRPC for Python,
    # its stubs generated with protoc's grpc_python_plugin (protobuf-compiler-grpc, above).
    python3-grpcio
  )
  # `kubectl kustomize` renders k8s/ in the tests; any kubectl will do (Debian's, or one a cloud
  # SDK already installed, which Debian's package would conflict with).
  command -v kubectl >/dev/null 2>&1 || APT_PACKAGES+=(kubernetes-client)
  # buf (the proto linter) ships on npm; use the machine's Node.js when it has one.
  command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# tools/run_local.sh and tools/test.sh both start here and may run together (two terminals), as
# may those of another checkout on the machine: one install at a time (two apt-get, npm or
# dpkg-deb runs over the same files fail with "Could not get lock" or leave a half-written
# tools/node_modules). The other waits here, then finds everything present. The lock file is
# world-writable so that every user can take it; without it, no lock.
deps_lock=/tmp/clink-gateway-install-deps.lock
[ -e "$deps_lock" ] || (umask 000 && : >>"$deps_lock") 2>/dev/null || true
if exec {deps_lock_fd}<"$deps_lock"; then flock "$deps_lock_fd"; fi 2>/dev/null

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  # Waits for a dpkg lock held by anything else (unattended-upgrades, another apt-get).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

# The image's build stage stops here: the rest is test tooling.
[ -z "$IN_IMAGE_BUILD" ] || exit 0

# npm tooling, pinned, installed into the repo-local tools/node_modules (ignored by git):
# buf (the proto linter) and, for //k8s:manifests_test, the Kubernetes, prometheus-operator and
# cert-manager JSON schemas (kubernetes-models 4.x: runs on Debian 12's Node.js 18; 5.x needs
# Node 22) and a YAML parser.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NPM_PACKAGES=(
  @bufbuild/buf@1.47.2
  kubernetes-models@4.5.1
  @kubernetes-models/prometheus-operator@4.4.4
  @kubernetes-models/cert-manager@4.4.4
  js-yaml@4.1.0
)
npm_missing=()
for spec in "${NPM_PACKAGES[@]}"; do
  name="${spec%@*}"
  want="${spec##*@}"
  manifest="$here/node_modules/$name/package.json"
  have="$(node -p "require(process.argv[1]).version" "$manifest" 2>/dev/null || true)"
  [ "$have" = "$want" ] || npm_missing+=("$spec")
done
if [ ! -x "$here/node_modules/.bin/buf" ] && [ "${#npm_missing[@]}" -eq 0 ]; then
  npm_missing+=(@bufbuild/buf@1.47.2)
fi
if [ "${#npm_missing[@]}" -gt 0 ]; then
  echo "install_deps: installing ${npm_missing[*]} from npm" >&2
  # All of them in one call, so that package.json lists every package and none is pruned.
  (cd "$here" && npm install --no-audit --no-fund --silent --save-exact --prefix "$here" "${NPM_PACKAGES[@]}" >/dev/null)
fi

# The example Node client's packages (@grpc/grpc-js, @grpc/proto-loader, protobufjs), exactly as
# clients/node/package-lock.json pins them, into clients/node/node_modules (ignored by git): npm
# runs only when one is missing or at another version, so an installed checkout needs no network.
# Not in the image's build stage, which has only this script at this point and builds no client.
client_dir="$here/../clients/node"
client_stale=""
if [ -z "${CLINK_GATEWAY_IN_IMAGE_BUILD:-}" ] && [ -f "$client_dir/package-lock.json" ]; then
  client_stale="$(cd "$client_dir" && node -e '
  const lock = require("./package-lock.json").packages;
  for (const name of Object.keys(require("./package.json").dependencies)) {
    let have = "";
    try { have = require("./node_modules/" + name + "/package.json").version; } catch (e) {}
    if (have !== lock["node_modules/" + name].version) { console.log(name); break; }
  }' 2>/dev/null || echo unreadable)"
fi
if [ -n "$client_stale" ]; then
  echo "install_deps: installing clients/node's npm packages (npm ci)" >&2
  (cd "$client_dir" && npm ci --no-audit --no-fund --silent >/dev/null)
fi

# Debian 12's kubectl (1.20, with kustomize v2.0.3) is what renders k8s/ on a machine that got
# kubectl from Debian. Where another kubectl is on PATH (a cloud SDK's, which Debian's package
# would conflict with), //k8s:manifests_test also renders with Debian's, unpacked (not installed)
# here, so the manifests keep working with both kustomize versions.
LEGACY_KUBECTL_DIR=/usr/local/lib/clink-gateway/kubernetes-client
kubectl_version="$(kubectl version --client 2>/dev/null || true)"
if [[ "$kubectl_version" != *'"v1.20.'* ]] && [ ! -x "$LEGACY_KUBECTL_DIR/usr/bin/kubectl" ]; then
  echo "install_deps: unpacking Debian's kubernetes-client (kubectl 1.20) into $LEGACY_KUBECTL_DIR" >&2
  download="$(mktemp -d)"
  chmod 0755 "$download"
  if ! (cd "$download" && $SUDO apt-get download -qq kubernetes-client >/dev/null 2>&1); then
    $SUDO apt-get update -qq
    (cd "$download" && $SUDO apt-get download -qq kubernetes-client >/dev/null)
  fi
  $SUDO mkdir -p "$LEGACY_KUBECTL_DIR"
  $SUDO dpkg-deb -x "$download"/kubernetes-client_*.deb "$LEGACY_KUBECTL_DIR"
  $SUDO rm -rf "$download"
fi
