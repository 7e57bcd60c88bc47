#!/usr/bin/env bash
# Runs the gateway against the built-in Clink emulator (HTTPS, throwaway CA), shows one real
# gRPC call going through it, and keeps both running until Ctrl-C.
#   tools/run_local.sh             # gRPC on localhost:50051
#   GRPC_PORT=6000 tools/run_local.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/install_deps.sh
# The binaries are run from the paths this build reports (its build events), not through the
# bazel-bin symlink: a tools/test.sh running meanwhile re-points bazel-bin (its ThreadSanitizer
# pass builds another configuration), where they would be missing, or stale. (One Bazel server
# per checkout: while tools/test.sh is in a Bazel command, this build waits for it.)
events="$(mktemp)"
bazel build --build_event_json_file="$events" \
  //server:clink_gateway //tests/emulator:clink_emulator_server //tools:clink_cli
bin="$(grep -o '"uri":"file://[^"]*/server/clink_gateway"' "$events" | head -n1 |
  sed -e 's#^"uri":"file://##' -e 's#/server/clink_gateway"$##')"
rm -f "$events"
if [ ! -x "$bin/server/clink_gateway" ]; then
  echo "run_local: the build reported no server/clink_gateway" >&2
  exit 1
fi

grpc_port="${GRPC_PORT:-50051}"
metrics_port="${METRICS_PORT:-9464}"
work="$(mktemp -d)"
# The gateway's --api_key_dir, laid out like the Secret volume in k8s/: the key as `api-key` (and,
# during a key roll, the older one as `api-key-previous`). A directory of its own, so that nothing
# else lands in it (the emulator writes its TLS files to $work). The gateway re-reads it when it
# changes: no restart after editing the key.
keys="$work/keys"
mkdir "$keys"
# The idempotency keys (SQLite) live in $work/state (--state_dir; the default, /var/lib/clink-gateway,
# is for deployments): they survive a crash or restart of the gateway until this script exits.
key="sk_test_local_emulator_key"
printf '%s\n' "$key" > "$keys/api-key"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$bin"/tests/emulator/clink_emulator_server --listen=127.0.0.1:0 --tls_dir="$work" \
  --api_key_file="$keys/api-key" --port_file="$work/emulator.port" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/emulator.port" ] && break; sleep 0.1; done
emulator_port="$(cat "$work/emulator.port")"

# Plaintext gRPC on loopback (--grpc_insecure): a local demo, no client certificates.
"$bin"/server/clink_gateway --grpc_listen="127.0.0.1:$grpc_port" --grpc_insecure \
  --clink_base_url="https://127.0.0.1:$emulator_port/api" --ca_bundle="$work/ca.pem" \
  --egress_allow_cidrs=127.0.0.0/8 \
  --api_key_dir="$keys" --metrics_listen="127.0.0.1:$metrics_port" \
  --state_dir="$work/state" &
pids+=($!)

cli="$bin/tools/clink_cli"
for _ in $(seq 100); do
  "$cli" --target="localhost:$grpc_port" --timeout=1s BillingService.ListProducts \
    '{"page_num":1,"page_size":1}' >/dev/null 2>&1 && break
  sleep 0.1
done

echo
echo "== A real call through the gateway: PaymentService.CreatePayment, with an idempotency key"
payment='{"customer_id":"cus_emu_test","payment_instrument_id":"pi_emu_card_visa",
  "payment_method_type":"PAYMENT_METHOD_TYPE_CARD","amount":"19.99","currency":"USD",
  "return_url":"https://shop.example/return","merchant_reference_id":"demo-1"}'
key="demo-$(date +%s)-$$"
(set -x; "$cli" --target="localhost:$grpc_port" --metadata="idempotency-key=$key" \
  PaymentService.CreatePayment "$payment")
echo
echo "== The same call retried with the same key: the first result again, Clink is not called twice"
(set -x; "$cli" --target="localhost:$grpc_port" --metadata="idempotency-key=$key" \
  PaymentService.CreatePayment "$payment")
echo
echo "Gateway: localhost:$grpc_port (gRPC, plaintext)   Emulator: https://127.0.0.1:$emulator_port/api"
echo "Metrics: http://127.0.0.1:$metrics_port/metrics"
echo "Try:  $cli --target=localhost:$grpc_port --list"
echo "Ctrl-C stops both."
wait
