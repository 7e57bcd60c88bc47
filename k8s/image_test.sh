#!/usr/bin/env bash
# The image Kubernetes runs, built and started: tools/build_image.sh builds it from the commit
# (cached layers and bases are reused), then this test
#   1. inspects it: the binary loads with the image's own libraries; no compiler, Bazel, Node.js/
#      npm, source tree, private keys or extra CA certificates; the packages installed on top of
#      the base are exactly the runtime stage's list and its dependencies, and that list is what
#      the binary links (//k8s:dockerfile_test's check, run against the image's binary); the
#      size stays within IMAGE_BUDGET_MB;
#   2. starts it with podman (runc) as the prod Deployment runs it: the container args of the
#      rendered k8s/overlays/prod Deployment ($(VARS) resolved from its ConfigMap), its user
#      (10001:10001), a read-only root filesystem, no capabilities, no privilege escalation, /tmp
#      a tmpfs (its emptyDir), the Secrets as read-only directories at their mount paths (a
#      throwaway API key and Redis password; throwaway mTLS certificates, tools/dev_certs.sh, in
#      place of cert-manager's; an authz policy that lets the test's identity call everything), and
#      a writable directory at any --state_dir.
#      Changed for the test only: the listen ports become 0 (the ports the gateway reports are
#      used; a test never binds 50051/9464), Clink is the emulator on this host (HTTPS, its
#      throwaway CA given with --ca_bundle, --egress_allow_cidrs=127.0.0.0/8 so the gateway may
#      reach loopback), and Redis is a redis-server of this test on a unix socket;
#   3. checks gRPC health as the probes ask it (on the --health_listen port: the overall status and
#      `liveness`), one CreatePayment through the gateway over mutual TLS and its idempotent
#      retry, and the metrics endpoint
#      (clink_gateway_build_info carries the commit);
#   4. sends SIGTERM and checks that the gateway drains and exits 0 within the Deployment's
#      terminationGracePeriodSeconds.
# Where buildah cannot run (tools/build_image.sh exits 77: no root, no namespaces), it says why
# and passes without checking anything (SKIPPED in its log).
# Usage (from Bazel): image_test.sh <clink_emulator_server> <grpc_health_check> <clink_cli>
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

emulator="$(readlink -f "$1")"
health="$(readlink -f "$2")"
cli="$(readlink -f "$3")"
workspace="$(dirname "$(dirname "$(readlink -f k8s/validate.js)")")"
work="${TEST_TMPDIR:-$(mktemp -d)}/image"
rm -rf "$work" && mkdir -p "$work"
# Measured (podman history): the runtime base, a debootstrap minbase trimmed like Docker's slim
# image, 77 MB (untrimmed: 121 MB); the runtime libraries with their dependencies (gRPC,
# protobuf, Abseil, libcurl, OpenSSL, jemalloc, prometheus-cpp, hiredis, ...) 40 MB; ICU
# (libicu72, the currency minor units that amounts are validated against: its data library alone
# is ~31 MB) and SQLite (the durable idempotency store) 39 MB; the binary 3 MB: 159 MB. The budget
# leaves ~7% for library updates and a growing binary; a compiler, Bazel or Node.js (100+ MB each)
# cannot hide in it, and the package check below catches small strays.
budget_mb="${IMAGE_BUDGET_MB:-170}"

fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

container=""
inspect_container=""
pids=()
cleanup() {
  [ -z "$container" ] || podman rm -f "$container" >/dev/null 2>&1 || true
  [ -z "$inspect_container" ] || buildah rm "$inspect_container" >/dev/null 2>&1 || true
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "${redis_dir:-}" ] || rm -rf "$redis_dir"
}
trap cleanup EXIT

# --- 0. The image.
commit="$(git -C "$workspace" rev-parse HEAD)"
started=$SECONDS
set +e
image="$(bash "$workspace/tools/build_image.sh" | tail -n1)"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 77 ]; then
  echo "SKIPPED: the image cannot be built on this machine (tools/build_image.sh says why above); nothing was checked"
  exit 0
elif [ "$rc" -ne 0 ] || [ -z "$image" ]; then
  echo "FAIL: tools/build_image.sh exited $rc" >&2
  exit 1
fi
echo "image $image built or reused in $((SECONDS - started)) s"
revision="$(podman image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' "$image")"
[ "$revision" = "$commit" ] || fail "the image's revision label is '$revision', want the commit $commit"

# --- 1. What is in it.
inspect_container="$(buildah from --pull=never "$image")"
root="$(buildah mount "$inspect_container")"
binary=/usr/local/bin/clink_gateway
[ -x "$root$binary" ] || fail "no $binary in the image"

# The binary loads with the image's own libraries (its loader, in the image's root).
if ! chroot "$root" /lib64/ld-linux-x86-64.so.2 --list "$binary" >"$work/libs.txt" 2>&1 ||
  grep -q 'not found' "$work/libs.txt"; then
  fail "the gateway does not load in the image:"
  cat "$work/libs.txt" >&2
fi

# Nothing of the build: compilers, Bazel, Node.js, the source tree, Bazel's caches.
for path in usr/bin/gcc usr/bin/g++ usr/bin/cc usr/bin/c++ usr/bin/cpp usr/bin/clang usr/bin/as \
  usr/bin/ld usr/bin/bazel usr/bin/node usr/bin/npm usr/bin/nodejs usr/bin/git src out \
  root/.cache usr/lib/gcc usr/include/grpcpp usr/local/lib/node_modules; do
  if [ -e "$root/$path" ] || [ -L "$root/$path" ]; then fail "the image has /$path"; fi
done
find "$root" -xdev \( -name WORKSPACE -o -name BUILD.bazel -o -name '*.cc' -o -name '*.proto' \
  -o -name 'bazel-*' -o -name node_modules \) -printf '/%P\n' >"$work/source.txt"
[ ! -s "$work/source.txt" ] || fail "source or build files in the image: $(head -n5 "$work/source.txt" | tr '\n' ' ')"

# No keys: no private key anywhere, no api-key files (the Secret is mounted at run time).
grep -rlI --exclude-dir=proc -e '-----BEGIN [A-Z ]*PRIVATE KEY-----' "$root" 2>/dev/null |
  sed "s#^$root##" >"$work/keys.txt" || true
[ ! -s "$work/keys.txt" ] || fail "private keys in the image: $(head -n5 "$work/keys.txt" | tr '\n' ' ')"
find "$root" -xdev \( -name 'api-key*' -o -name '*.key' -o -path '*/secrets/*' \) -printf '/%P\n' >"$work/keyfiles.txt"
[ ! -s "$work/keyfiles.txt" ] || fail "key files in the image: $(head -n5 "$work/keyfiles.txt" | tr '\n' ' ')"

# No extra CA certificates: the trust store is exactly Debian's (the certificates enabled in
# /etc/ca-certificates.conf), nothing local.
if [ -n "$(ls -A "$root/usr/local/share/ca-certificates" 2>/dev/null)" ]; then
  fail "extra CA certificates in /usr/local/share/ca-certificates: $(ls "$root/usr/local/share/ca-certificates")"
fi
bundle="$root/etc/ssl/certs/ca-certificates.crt"
if [ ! -s "$bundle" ]; then
  fail "no CA bundle /etc/ssl/certs/ca-certificates.crt (Clink's certificate is verified against it)"
else
  in_bundle="$(grep -c 'BEGIN CERTIFICATE' "$bundle")"
  enabled="$(grep -cvE '^(#|!|$)' "$root/etc/ca-certificates.conf")"
  [ "$in_bundle" -eq "$enabled" ] ||
    fail "the CA bundle has $in_bundle certificates, Debian's ca-certificates enables $enabled: extra CAs"
  for extra in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$extra" ] || continue
    line="$(sed -n '2p' "$extra")"
    if [ -n "$line" ] && grep -qF -- "$line" "$bundle"; then fail "the host's extra CA $(basename "$extra") is in the image"; fi
  done
fi

# Packages: what the runtime stage added to its base is exactly the packages it names (all of
# them marked manually installed) and their dependencies, and those names are ca-certificates
# plus one package per library the binary links (NEEDED), as read from the image itself.
admindir="$root/var/lib/dpkg"
base="$(podman image inspect --format '{{index .Labels "io.clink-gateway.base"}}' "$image")"
[ -n "$base" ] || fail "the image is not built on tools/build_image.sh's base (no io.clink-gateway.base label)"
base_container="$(buildah from --pull=never localhost/debian:bookworm-slim)"
base_root="$(buildah mount "$base_container")"
dpkg-query --admindir="$base_root/var/lib/dpkg" -W -f='${Package}\n' | sort >"$work/base.pkgs"
buildah rm "$base_container" >/dev/null
dpkg-query --admindir="$admindir" -W -f='${Package}\n' | sort >"$work/image.pkgs"
comm -13 "$work/base.pkgs" "$work/image.pkgs" >"$work/added.pkgs"
awk '/^Package:/ {p = $2} /^Auto-Installed: 1/ {print p}' "$root/var/lib/apt/extended_states" 2>/dev/null |
  sort -u >"$work/auto.pkgs"
comm -23 "$work/added.pkgs" "$work/auto.pkgs" >"$work/manual.pkgs"
# The packages owning the NEEDED libraries, as the image's loader resolves them.
: >"$work/needed.pkgs"
while read -r soname; do
  path="$(awk -v s="$soname" '$1 == s && $2 == "=>" {print $3}' "$work/libs.txt")"
  pkg="$(dpkg-query --admindir="$admindir" -S "$path" "/usr$path" "${path#/usr}" 2>/dev/null | head -n1 | cut -d: -f1)" ||
    true
  if [ -z "$pkg" ]; then fail "no package of the image owns $soname ($path)"; fi
  echo "$pkg" >>"$work/needed.pkgs"
done < <(readelf -d "$root$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
{ echo ca-certificates; cat "$work/needed.pkgs"; } | sort -u | comm -23 - "$work/base.pkgs" >"$work/want.pkgs"
if ! diff -u "$work/want.pkgs" "$work/manual.pkgs" >"$work/manual.diff"; then
  fail "the packages the runtime stage installs (+) differ from ca-certificates and the binary's NEEDED libraries' packages (-):"
  grep '^[-+][a-z]' "$work/manual.diff" >&2 || true
fi
# Everything else added must be a dependency of those (apt's Depends closure in the image).
dpkg-query --admindir="$admindir" -W -f='${Package}\t${Depends}, ${Pre-Depends}\n' >"$work/depends.tsv"
awk -F'\t' -f "$workspace/k8s/depends_closure.awk" "$work/depends.tsv" "$work/manual.pkgs" \
  | sort >"$work/closure.pkgs"
comm -23 "$work/added.pkgs" "$work/closure.pkgs" >"$work/stray.pkgs"
[ ! -s "$work/stray.pkgs" ] || fail "packages in the image that the runtime does not need: $(tr '\n' ' ' <"$work/stray.pkgs")"
echo "runtime packages: $(wc -l <"$work/manual.pkgs") named + $(($(wc -l <"$work/added.pkgs") - $(wc -l <"$work/manual.pkgs"))) dependencies on a base of $(wc -l <"$work/base.pkgs")"

# //k8s:dockerfile_test's checks of the Dockerfile, against the binary that is in the image.
cp "$root$binary" "$work/clink_gateway.from-image"
if ! bash k8s/dockerfile_test.sh "$work/clink_gateway.from-image" >"$work/dockerfile_test.log" 2>&1; then
  fail "k8s/dockerfile_test.sh against the image's binary:"
  cat "$work/dockerfile_test.log" >&2
fi
buildah umount "$inspect_container" >/dev/null
buildah rm "$inspect_container" >/dev/null
inspect_container=""

size="$(podman image inspect --format '{{.Size}}' "$image")"
size_mb=$(((size + 999999) / 1000000))
echo "image size: $size_mb MB ($size bytes; budget $budget_mb MB)"
[ "$size_mb" -le "$budget_mb" ] || fail "the image is $size_mb MB, over the budget of $budget_mb MB"

# --- 2. Run it as the prod Deployment does.
node="$(command -v node || echo /usr/bin/node)"
kubectl kustomize "$workspace/k8s/overlays/prod" >"$work/prod.yaml"
# podman with runc (its default crun refuses on these hosts' hybrid cgroups), and the rlimits
# given: the container may not raise its own.
podman_run=(podman --runtime runc run --pull=never --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)
# The image's own flags, for validate.js to resolve the args and listen defaults with.
"${podman_run[@]}" --rm --network none --entrypoint "$binary" "$image" --helpfull \
  >"$work/helpfull.txt" 2>&1 || true
mapfile -t flags < <("$node" "$workspace/k8s/validate.js" "--flags=$work/helpfull.txt" \
  --print-args=prod "prod=$work/prod.yaml")
mapfile -t listen < <("$node" "$workspace/k8s/validate.js" "--flags=$work/helpfull.txt" \
  --print-listen=prod "prod=$work/prod.yaml")
if [ "${#flags[@]}" -lt 3 ] || [ "${#listen[@]}" -lt 2 ]; then
  echo "FAIL: no container args for the prod Deployment" >&2
  exit 1
fi
grace="$(sed -n 's/^ *terminationGracePeriodSeconds: *\([0-9]*\).*/\1/p' "$work/prod.yaml" | head -n1)"
grace="${grace:-30}"
user="$(sed -n 's/^ *runAsUser: *\([0-9]*\).*/\1/p' "$work/prod.yaml" | head -n1)"
group="$(sed -n 's/^ *runAsGroup: *\([0-9]*\).*/\1/p' "$work/prod.yaml" | head -n1)"

# The host side: Secrets, the emulator as Clink, Redis.
mkdir -p "$work/keys" "$work/redis-auth" "$work/tls" "$work/state"
# Redis's socket: a unix socket path must be short (108 bytes), TEST_TMPDIR's is not.
redis_dir="$(mktemp -d /tmp/clink-image-test-redis.XXXXXX)"
key="sk_test_image_test_key"
printf '%s\n' "$key" >"$work/keys/api-key"
printf '%s\n' "image-test-$$-$RANDOM" >"$work/redis-auth/password"
chmod 0755 "$work/keys" "$work/redis-auth" "$work/tls" "$redis_dir"
chmod 0444 "$work/keys/api-key" "$work/redis-auth/password"
chown "$user:$group" "$work/state"

# Every Clink call takes 2 s, so that SIGTERM below arrives while one is in flight.
"$emulator" --listen=127.0.0.1:0 --tls_dir="$work/tls" --api_key_file="$work/keys/api-key" \
  --port_file="$work/emulator.port" --latency=2s >"$work/emulator.log" 2>&1 &
pids+=($!)
redis-server --port 0 --unixsocket "$redis_dir/redis.sock" --unixsocketperm 777 \
  --requirepass "$(cat "$work/redis-auth/password")" --save '' --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  [ -s "$work/emulator.port" ] && [ -S "$redis_dir/redis.sock" ] && break
  sleep 0.1
done
[ -s "$work/emulator.port" ] || { echo "FAIL: the emulator did not start:" >&2; cat "$work/emulator.log" >&2; exit 1; }
[ -S "$redis_dir/redis.sock" ] || { echo "FAIL: redis-server did not start:" >&2; cat "$work/redis.log" >&2; exit 1; }
chmod 0444 "$work/tls/ca.pem"

# The gRPC port's mutual TLS: throwaway certificates (tools/dev_certs.sh) in place of
# cert-manager's Secret, under the Secret's file names; the test's calls present client.pem.
"$workspace/tools/dev_certs.sh" "$work/mtls"
mkdir -p "$work/server-tls" "$work/authz"
cp "$work/mtls/server.pem" "$work/server-tls/tls.crt"
cp "$work/mtls/server.key" "$work/server-tls/tls.key"
cp "$work/mtls/ca.pem" "$work/server-tls/ca.crt"
chmod 0755 "$work/server-tls" "$work/authz" && chmod 0444 "$work/server-tls"/*
tls=(--tls_ca="$work/mtls/ca.pem" --tls_cert="$work/mtls/client.pem" --tls_key="$work/mtls/client.key")
# The authorization policy: the test's identity (checkout-web) may call every RPC of the gateway.
cat >"$work/authz/policy.json" <<'POLICY'
{"name": "image-test", "allow_rules": [{"name": "checkout-web-everything",
  "source": {"principals": ["spiffe://cluster.local/ns/shop/sa/checkout-web"]},
  "request": {"paths": ["/clink.gateway.v1.*"]}}]}
POLICY
chmod 0444 "$work/authz/policy.json"

mounts=(--tmpfs /tmp:rw,nosuid,nodev,mode=1777 -v "$work/tls:/etc/clink-image-test/tls:ro"
  -v "$redis_dir:/run/clink-image-test/redis")
for i in "${!flags[@]}"; do
  case "${flags[$i]}" in --grpc_listen=* | --metrics_listen=* | --health_listen=* | --webhook_listen=*) unset 'flags[i]' ;; esac
done
flags=("${flags[@]}")
for flag in "${listen[@]}"; do
  case "$flag" in
    *=) flags+=("$flag") ;;
    *) flags+=("${flag%:*}:0") ;;
  esac
done
for i in "${!flags[@]}"; do
  case "${flags[$i]}" in
    --api_key_dir=*) mounts+=(-v "$work/keys:${flags[$i]#*=}:ro") ;;
    --idempotency_redis_password_file=*) mounts+=(-v "$work/redis-auth:$(dirname "${flags[$i]#*=}"):ro") ;;
    --idempotency_redis=?*) flags[$i]="--idempotency_redis=unix:/run/clink-image-test/redis/redis.sock" ;;
    --clink_base_url=*) flags[$i]="--clink_base_url=https://127.0.0.1:$(cat "$work/emulator.port")/api" ;;
    --state_dir=?*) mounts+=(-v "$work/state:${flags[$i]#*=}") ;;
    --ca_bundle=* | --egress_allow_cidrs=*) unset 'flags[i]' ;;
    --grpc_tls_cert_file=*) flags[$i]="--grpc_tls_cert_file=/etc/clink-image-test/server-tls/tls.crt" ;;
    --grpc_tls_key_file=*) flags[$i]="--grpc_tls_key_file=/etc/clink-image-test/server-tls/tls.key" ;;
    --grpc_client_ca_file=*) flags[$i]="--grpc_client_ca_file=/etc/clink-image-test/server-tls/ca.crt" ;;
    --authz_policy_file=*) flags[$i]="--authz_policy_file=/etc/clink-image-test/authz/policy.json" ;;
  esac
done
# A --state_dir the args leave at the binary's default (a durable store the Deployment backs
# with an emptyDir) is writable too: the root filesystem is not.
has_state_dir=""
for flag in "${flags[@]}"; do [[ "$flag" != --state_dir=* ]] || has_state_dir=1; done
if [ -z "$has_state_dir" ]; then
  default_state="$(perl -0ne 'print $1 if /--state_dir \(.*?\); default: "([^"]*)";/s' "$work/helpfull.txt")"
  [ -z "$default_state" ] || mounts+=(-v "$work/state:$default_state")
fi
flags+=(--ca_bundle=/etc/clink-image-test/tls/ca.pem --egress_allow_cidrs=127.0.0.0/8)
mounts+=(-v "$work/server-tls:/etc/clink-image-test/server-tls:ro" -v "$work/authz:/etc/clink-image-test/authz:ro")
printf '%s\n' "${flags[@]}" >"$work/flags.txt"
echo "gateway args: ${flags[*]}"

container="clink-gateway-image-test-$$"
"${podman_run[@]}" -d --name "$container" --network host --log-driver k8s-file \
  --user "$user:$group" --read-only --read-only-tmpfs=false --cap-drop ALL \
  --security-opt no-new-privileges "${mounts[@]}" "$image" "${flags[@]}" >/dev/null
run_started=$SECONDS

# The container's log so far, in a file (a pipe that its reader closes early would fail under
# pipefail).
logs() {
  podman logs "$container" >"$work/gateway.log" 2>&1 || true
  cat "$work/gateway.log"
}
grpc_port="" metrics_port=""
for _ in $(seq 300); do
  logs >/dev/null
  grpc_port="$(sed -n 's/^clink_gateway: serving gRPC on port \([0-9]*\)$/\1/p' "$work/gateway.log" | head -n1)"
  [ -n "$grpc_port" ] && break
  [ "$(podman inspect --format '{{.State.Running}}' "$container")" = true ] || break
  sleep 0.1
done
if [ -z "$grpc_port" ]; then
  echo "FAIL: the gateway did not start in the image:" >&2
  logs >&2
  exit 1
fi
metrics_port="$(sed -n 's/^clink_gateway: serving metrics on port \([0-9]*\)$/\1/p' "$work/gateway.log" | head -n1)"
# The probes' plaintext port (--health_listen); the gRPC port itself requires a client certificate.
health_port="$(sed -n 's/^clink_gateway: serving health on port \([0-9]*\)$/\1/p' "$work/gateway.log" | head -n1)"
[ -n "$health_port" ] || fail "the prod args have no --health_listen port for the probes"
echo "gateway up in $((SECONDS - run_started)) s: gRPC port $grpc_port, metrics port ${metrics_port:-none}"

# --- 3. Probes, a real call, metrics.
for service in "" liveness; do
  status="$("$health" --target="127.0.0.1:${health_port:-0}" --service="$service" 2>&1)" ||
    fail "health of '${service}' is $status, want SERVING"
  echo "health '${service}': $status"
done
payment='{"customer_id":"cus_emu_test","payment_instrument_id":"pi_emu_card_visa",
  "payment_method_type":"PAYMENT_METHOD_TYPE_CARD","amount":"19.99","currency":"USD",
  "return_url":"https://shop.example/return","merchant_reference_id":"image-test"}'
idem="image-test-$$-$RANDOM"
if first="$("$cli" --target="127.0.0.1:$grpc_port" "${tls[@]}" --timeout=20s --metadata="idempotency-key=$idem" \
  PaymentService.CreatePayment "$payment" 2>&1)" && [[ "$first" == *'"order_id"'* ]]; then
  echo "CreatePayment through the image: $(echo "$first" | tr -d ' \n' | cut -c1-160)"
  second="$("$cli" --target="127.0.0.1:$grpc_port" "${tls[@]}" --timeout=20s --metadata="idempotency-key=$idem" \
    PaymentService.CreatePayment "$payment" 2>&1)" || true
  [ "$second" = "$first" ] || fail "the retry with the same idempotency key got another answer: $second"
else
  fail "CreatePayment through the image failed: $first"
fi
if [ -z "$metrics_port" ]; then
  fail "the prod args serve no metrics"
else
  curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics.txt" || fail "GET /metrics failed"
  grep -E "^clink_gateway_build_info\{.*git_commit=\"$commit\".*\} 1" "$work/metrics.txt" ||
    fail "clink_gateway_build_info does not carry the commit $commit: $(grep build_info "$work/metrics.txt")"
fi

# --- 4. SIGTERM while a payment is in flight: it completes, the gateway exits 0 within the
# grace period.
"$cli" --target="127.0.0.1:$grpc_port" "${tls[@]}" --timeout=30s --metadata="idempotency-key=$idem-drain" \
  PaymentService.CreatePayment "$payment" >"$work/drain-call.txt" 2>&1 &
drain_call=$!
pids+=("$drain_call")
in_flight=""
for _ in $(seq 100); do
  scrape="$(curl -fsS "http://127.0.0.1:${metrics_port:-0}/metrics" 2>/dev/null || true)"
  if grep -qE '^clink_gateway_upstream_in_flight_requests(\{[^}]*\})? [1-9]' <<<"$scrape"; then
    in_flight=1
    break
  fi
  sleep 0.05
done
[ -n "$in_flight" ] || fail "the drain check's payment never showed in clink_gateway_upstream_in_flight_requests"
podman kill --signal TERM "$container" >/dev/null
term_sent=$SECONDS
exit_code="$(timeout "$((grace + 5))" podman wait "$container" 2>/dev/null || echo timeout)"
took=$((SECONDS - term_sent))
if [ "$exit_code" = timeout ]; then
  fail "the gateway did not exit within the grace period ($grace s) after SIGTERM"
elif [ "$exit_code" != 0 ]; then
  fail "the gateway exited $exit_code after SIGTERM, want 0"
elif [ "$took" -gt "$grace" ]; then
  fail "the gateway took $took s to exit after SIGTERM, over the grace period ($grace s)"
fi
logs >/dev/null
grep -q '"signal":"SIGTERM"' "$work/gateway.log" || fail "the gateway did not log the SIGTERM"
grep -q '"event":"draining"' "$work/gateway.log" || fail "the gateway did not drain on SIGTERM"
grep -q '"event":"stopped"' "$work/gateway.log" || fail "the gateway did not log its clean stop"
if wait "$drain_call" && grep -q '"order_id"' "$work/drain-call.txt"; then
  echo "the payment in flight at SIGTERM completed"
else
  fail "the payment in flight at SIGTERM did not complete: $(cat "$work/drain-call.txt")"
fi
echo "SIGTERM: exit $exit_code after $took s (grace period $grace s)"

if [ "$fails" -gt 0 ]; then
  echo "--- gateway log" >&2
  logs | tail -n 40 >&2
  exit 1
fi
echo "image test: ok ($image, $size_mb MB)"
