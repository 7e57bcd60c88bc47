#!/usr/bin/env bash
# Renders the kustomize targets under k8s/ and validates them offline (see k8s/validate.js):
#   1. `kubectl kustomize` of base/ and overlays/* with the kubectl on PATH, and with Debian 12's
#      kubectl 1.20 (kustomize v2.0.3) as well when the one on PATH is another version
#      (tools/install_deps.sh unpacks it); both must succeed and produce the same objects.
#      Any other kustomization under k8s/ (e.g. monitoring/) is rendered and schema-checked.
#   2. validate.js: schemas (kubernetes-models), unknown fields, the policy rules, and a self-test
#      that breaks the manifests once per rule and expects the rule to fail.
#   3. Each environment's container args, $(VARS) resolved from its ConfigMap, go through the real
#      gateway's flag parsing: every value must parse. The key directory (--api_key_dir, or every
#      key_dir of a --merchants_config, whose text comes from its ConfigMap) is replaced by a local
#      one holding an empty `api-key`, where the gateway stops; a --state_dir by a directory of
#      this test's own. The listen addresses keep their hosts but get port 0: a test never binds
#      the deployment's fixed ports (50051, 9464), which tools/run_local.sh or another test may
#      hold (nor the webhook port, 8080). To prove it, this test holds those ports itself (where
#      free) while the gateway runs.
# Usage (from Bazel): manifests_test.sh <path to clink_gateway>
set -euo pipefail

gateway="$(readlink -f "$1")"
# Unsandboxed: follow a runfile's symlink back to the real checkout.
workspace="$(dirname "$(dirname "$(readlink -f k8s/validate.js)")")"
work="${TEST_TMPDIR:-$(mktemp -d)}/manifests"
rm -rf "$work" && mkdir -p "$work"

node="$(command -v node || echo /usr/bin/node)"
for module in kubernetes-models @kubernetes-models/prometheus-operator @kubernetes-models/cert-manager js-yaml; do
  if [ ! -f "$workspace/tools/node_modules/$module/package.json" ]; then
    echo "npm package $module is not installed in tools/node_modules: run tools/install_deps.sh" >&2
    exit 1
  fi
done

kubectls=()
if command -v kubectl >/dev/null 2>&1; then kubectls+=("$(command -v kubectl)"); fi
legacy_kubectl="${CLINK_LEGACY_KUBECTL:-/usr/local/lib/clink-gateway/kubernetes-client/usr/bin/kubectl}"
version_of() { "$1" version --client 2>/dev/null | grep -oE 'v1\.[0-9]+\.[0-9]+' | head -n1 || true; }
primary_version=""
if [ "${#kubectls[@]}" -gt 0 ]; then primary_version="$(version_of "${kubectls[0]}")"; fi
case "$primary_version" in
  v1.20.*) ;;  # Debian's own kubectl: kustomize v2.0.3 is the one on PATH.
  *)
    if [ ! -x "$legacy_kubectl" ]; then
      echo "Debian's kubectl 1.20 (kustomize v2.0.3) is missing at $legacy_kubectl: run tools/install_deps.sh" >&2
      exit 1
    fi
    kubectls+=("$legacy_kubectl")
    ;;
esac
if [ "${#kubectls[@]}" -eq 0 ]; then
  echo "no kubectl: run tools/install_deps.sh" >&2
  exit 1
fi

# Targets: base and every overlay get the policy; any other kustomization is schema-checked only.
declare -a policy_targets=() other_targets=()
declare -A target_dir=()
target_dir[base]="$workspace/k8s/base"
policy_targets+=(base)
for dir in "$workspace"/k8s/overlays/*/; do
  name="$(basename "$dir")"
  target_dir[$name]="${dir%/}"
  policy_targets+=("$name")
done
while IFS= read -r file; do
  dir="$(dirname "$file")"
  case "$dir" in
    "$workspace/k8s/base" | "$workspace/k8s/overlays/"*) continue ;;
  esac
  name="$(realpath --relative-to="$workspace/k8s" "$dir" | tr '/' '-')"
  target_dir[$name]="$dir"
  other_targets+=("$name")
done < <(find "$workspace/k8s" -name kustomization.yaml -o -name kustomization.yml -o -name Kustomization | sort)

args=()
for name in "${policy_targets[@]}" "${other_targets[@]}"; do
  for i in "${!kubectls[@]}"; do
    k="${kubectls[$i]}"
    out="$work/$name.$i.yaml"
    if ! "$k" kustomize "${target_dir[$name]}" >"$out" 2>"$work/$name.$i.err"; then
      echo "FAIL: $k ($(version_of "$k")) kustomize ${target_dir[$name]}:" >&2
      cat "$work/$name.$i.err" >&2
      exit 1
    fi
    echo "rendered $name with kubectl $(version_of "$k") ($(grep -c '^kind:' "$out") objects)"
    if [ "$i" -eq 0 ]; then
      args+=("$name=$out")
    else
      args+=("--legacy=$name=$out")
    fi
  done
done
for name in "${policy_targets[@]}"; do args+=("--policy=$name"); done

# The flags the binary really has.
"$gateway" --helpfull >"$work/helpfull.txt" 2>&1 || true
args+=("--flags=$work/helpfull.txt")

"$node" "$workspace/k8s/validate.js" "${args[@]}" --self-test

# Every environment's flag values through the gateway's own parser, with a key directory whose
# `api-key` is empty (and no `api-key-previous`) in place of the Secret volume.
keys="$work/keys"
mkdir -p "$keys" && : >"$keys/api-key"
# and throwaway certificates in place of the TLS Secret.
"$workspace/tools/dev_certs.sh" "$work/certs"

# Each environment's args, as the gateway is run with them below. The listen addresses the pod
# would use (its args, or the binary's defaults) keep their hosts but get port 0: the deployed
# ports (50051, 9464) are never bound by a test, which would fail whenever tools/run_local.sh (or
# anything else) holds them.
declare -A fixed_ports=()
for name in "${policy_targets[@]}"; do
  mapfile -t flags < <("$node" "$workspace/k8s/validate.js" "--flags=$work/helpfull.txt" \
    "--print-args=$name" "$name=$work/$name.0.yaml")
  if [ "${#flags[@]}" -lt 3 ]; then
    echo "FAIL: no container args for $name" >&2
    exit 1
  fi
  mapfile -t listen < <("$node" "$workspace/k8s/validate.js" "--flags=$work/helpfull.txt" \
    "--print-listen=$name" "$name=$work/$name.0.yaml")
  for i in "${!flags[@]}"; do
    case "${flags[$i]}" in --grpc_listen=* | --metrics_listen=* | --health_listen=* | --webhook_listen=*) unset 'flags[i]' ;; esac
  done
  flags=("${flags[@]}")
  for flag in "${listen[@]}"; do
    port="${flag##*:}"
    if [[ "$flag" == *:* && "$port" =~ ^[1-9][0-9]*$ ]]; then fixed_ports[$port]=1; fi
    case "$flag" in
      *=) flags+=("$flag") ;;  # empty: off (validate.js has already failed it)
      *) flags+=("${flag%:*}:0") ;;
    esac
  done
  for i in "${!flags[@]}"; do
    case "${flags[$i]}" in
      --api_key_dir=*) flags[$i]="--api_key_dir=$keys" ;;
      # A directory the gateway may create and lock (the durable idempotency store): this
      # test's own, never the deployment's fixed path, which another run could hold.
      --state_dir=*) flags[$i]="--state_dir=$work/state" ;;
      # The Secret cert-manager writes (tls.crt, tls.key, ca.crt): throwaway ones of this test.
      --grpc_tls_cert_file=*) flags[$i]="--grpc_tls_cert_file=$work/certs/server.pem" ;;
      --grpc_tls_key_file=*) flags[$i]="--grpc_tls_key_file=$work/certs/server.key" ;;
      --grpc_client_ca_file=*) flags[$i]="--grpc_client_ca_file=$work/certs/ca.pem" ;;
      # The policy the ConfigMap is generated from: the gateway's own parser reads it.
      --authz_policy_file=*) flags[$i]="--authz_policy_file=$workspace/k8s/base/authz-policy.json" ;;
      --merchants_config=*)
        # The ConfigMap's text, every key_dir pointed at $keys: the gateway's own text-format
        # parser reads it, then stops at the first merchant's empty key.
        "$node" "$workspace/k8s/validate.js" "--flags=$work/helpfull.txt" \
          "--print-merchants-config=$name" "$name=$work/$name.0.yaml" |
          sed -E "s#(key_dir[[:space:]]*:[[:space:]]*)(\"[^\"]*\"|'[^']*')#\\1\"$keys\"#g" \
            >"$work/$name.merchants.txtpb"
        flags[$i]="--merchants_config=$work/$name.merchants.txtpb"
        ;;
    esac
  done
  printf '%s\n' "${flags[@]}" >"$work/$name.flags"
done
if [ "${#fixed_ports[@]}" -lt 2 ]; then
  echo "FAIL: no gRPC and metrics ports found in the manifests (validate.js --print-listen)" >&2
  exit 1
fi

# Proof that no run binds them: while the gateways run (a fraction of a second), hold the
# deployed ports on 127.0.0.1, so that a run which binds one fails here even on a quiet CI
# machine. A port that is already taken (by tools/run_local.sh, or this test in another
# checkout) is left to its holder: it is just as unavailable. Holding never fails the test.
holder_pid=""
stop_holder() {
  if [ -n "$holder_pid" ]; then kill "$holder_pid" 2>/dev/null || true; fi
  holder_pid=""
}
trap stop_holder EXIT
exec {holder}< <(exec "$node" -e '
  const net = require("net");
  const ports = process.argv.slice(1).map(Number);
  const held = [];
  const busy = [];
  let pending = ports.length;
  const settle = () => {
    if (--pending === 0) console.log(`held ${held.join(" ") || "-"}; already taken ${busy.join(" ") || "-"}`);
  };
  for (const port of ports) {
    const server = net.createServer((socket) => socket.destroy());
    server.once("error", () => { busy.push(port); settle(); });
    server.listen({ port, host: "127.0.0.1" }, () => { held.push(port); settle(); });
  }' "${!fixed_ports[@]}")
holder_pid=$!
IFS= read -r -u "$holder" held_line || held_line="(the port holder did not start)"

# Every environment's flag values through the gateway's own parser.
for name in "${policy_targets[@]}"; do
  mapfile -t flags <"$work/$name.flags"
  set +e
  timeout 10 "$gateway" "${flags[@]}" >"$work/$name.out" 2>"$work/$name.flags.err"
  rc=$?
  set -e
  # e.g. "merchant default: no usable key in DIR: DIR/api-key is empty"
  if [ "$rc" -ne 2 ] ||
    ! grep -qE "merchant [a-z0-9_-]+: no usable key in $keys: $keys/api-key is empty" "$work/$name.flags.err"; then
    echo "FAIL: clink_gateway rejected $name's flags (exit $rc; deployed ports: $held_line):" >&2
    cat "$work/$name.flags.err" >&2
    printf '  %s\n' "${flags[@]}" >&2
    exit 1
  fi
  echo "flags of $name: ${#flags[@]} accepted by clink_gateway's parser"
done
stop_holder
exec {holder}<&-
echo "deployment ports while the gateway ran: $held_line"
echo "manifests: ok"
