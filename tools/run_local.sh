#!/usr/bin/env bash
# Runs the gateway against the built-in Clink emulator (HTTPS, throwaway CA), with mutual TLS on
# its gRPC port (another throwaway CA, tools/dev_certs.sh: a server certificate, and a client
# certificate for spiffe://cluster.local/ns/shop/sa/checkout-web) and an authorization policy,
# shows one real gRPC call going through it with that client certificate, shows the payment's
# order.succeeded webhook (the emulator POSTs it to the gateway's --webhook_listen, signed with
# the key dir's webhook-secret) arriving on an EventService stream, and keeps both running until
# Ctrl-C.
#   tools/run_local.sh             # gRPC on localhost:50051, webhooks on a free port
#   GRPC_PORT=6000 WEBHOOK_PORT=8080 tools/run_local.sh
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
# The webhook listener: a port the kernel picks as free (so that this runs beside the tests).
webhook_port="${WEBHOOK_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
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
# The webhook signing secret, beside the API key (`webhook-secret`; `webhook-secret-previous`
# while rotating): the emulator signs with it, the gateway verifies with it.
printf 'whsec_%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" > "$keys/webhook-secret"
# Mutual TLS on the gRPC port: throwaway CA, server and client certificates (tools/dev_certs.sh).
# Every caller presents the client certificate; its SPIFFE ID is the caller's identity.
mtls="$work/mtls"
tools/dev_certs.sh "$mtls"
# Who may call what (gRFC A43, --authz_policy_file; k8s/base/authz-policy.json is the deployed
# example): here the demo identity may call every RPC. The gateway re-reads the file: edit it
# while the gateway runs and the next call is judged by the new policy.
cat >"$work/authz-policy.json" <<'POLICY'
{
  "name": "clink-gateway-local",
  "allow_rules": [
    {
      "name": "checkout-web-everything",
      "source": {"principals": ["spiffe://cluster.local/ns/shop/sa/checkout-web"]},
      "request": {"paths": ["/clink.gateway.v1.*"]}
    }
  ]
}
POLICY
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$bin"/tests/emulator/clink_emulator_server --listen=127.0.0.1:0 --tls_dir="$work" \
  --api_key_file="$keys/api-key" --port_file="$work/emulator.port" \
  --webhook_urls="http://127.0.0.1:$webhook_port/webhooks/clink" \
  --webhook_secret_files="$keys/webhook-secret" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/emulator.port" ] && break; sleep 0.1; done
emulator_port="$(cat "$work/emulator.port")"

"$bin"/server/clink_gateway --grpc_listen="127.0.0.1:$grpc_port" \
  --clink_base_url="https://127.0.0.1:$emulator_port/api" --ca_bundle="$work/ca.pem" \
  --egress_allow_cidrs=127.0.0.0/8 \
  --api_key_dir="$keys" --metrics_listen="127.0.0.1:$metrics_port" \
  --state_dir="$work/state" --webhook_listen="127.0.0.1:$webhook_port" \
  --grpc_tls_cert_file="$mtls/server.pem" --grpc_tls_key_file="$mtls/server.key" \
  --grpc_client_ca_file="$mtls/ca.pem" --authz_policy_file="$work/authz-policy.json" &
pids+=($!)

cli="$bin/tools/clink_cli"
tls=(--tls_ca="$mtls/ca.pem" --tls_cert="$mtls/client.pem" --tls_key="$mtls/client.key")
for _ in $(seq 100); do
  "$cli" --target="localhost:$grpc_port" "${tls[@]}" --timeout=1s BillingService.ListProducts \
    '{"page_num":1,"page_size":1}' >/dev/null 2>&1 && break
  sleep 0.1
done

echo
echo "== A real call through the gateway: PaymentService.CreatePayment, with an idempotency key,"
echo "   over mutual TLS with the client certificate of spiffe://cluster.local/ns/shop/sa/checkout-web"
payment='{"customer_id":"cus_emu_test","payment_instrument_id":"pi_emu_card_visa",
  "payment_method_type":"PAYMENT_METHOD_TYPE_CARD","amount":"19.99","currency":"USD",
  "return_url":"https://shop.example/return","merchant_reference_id":"demo-1"}'
key="demo-$(date +%s)-$$"
# A consumer of the subscription "run-local" (created by its first stream, from now on): it prints
# the first order.succeeded event and exits (or gives up after 30 s). The payment is made once its
# stream is open (the gateway's subscriber gauge says so).
"$cli" --target="localhost:$grpc_port" "${tls[@]}" --consume=run-local \
  --event_types=order.succeeded --max_events=1 >"$work/event.json" 2>"$work/consume.err" &
consumer=$!
pids+=("$consumer")
for _ in $(seq 100); do
  curl -s "http://127.0.0.1:$metrics_port/metrics" |
    grep -q '^clink_gateway_event_stream_subscribers{.*subscription="run-local".*} 1' && break
  sleep 0.1
done
(set -x; "$cli" --target="localhost:$grpc_port" "${tls[@]}" --metadata="idempotency-key=$key" \
  PaymentService.CreatePayment "$payment")
echo
echo "== The same call retried with the same key: the first result again, Clink is not called twice"
(set -x; "$cli" --target="localhost:$grpc_port" "${tls[@]}" --metadata="idempotency-key=$key" \
  PaymentService.CreatePayment "$payment")
echo
echo "== The payment's order.succeeded webhook (emulator -> gateway :$webhook_port, signed), on a"
echo "   stream: $cli --consume=run-local --event_types=order.succeeded --max_events=1"
for _ in $(seq 300); do kill -0 "$consumer" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$consumer" 2>/dev/null; then
  kill "$consumer"
  echo "run_local: no order.succeeded event within 30 s" >&2
else
  cat "$work/event.json" "$work/consume.err"
fi
echo
echo "Gateway: localhost:$grpc_port (gRPC, mutual TLS)   Emulator: https://127.0.0.1:$emulator_port/api"
echo "Webhooks: http://127.0.0.1:$webhook_port/webhooks/clink (secret: $keys/webhook-secret)"
echo "Metrics: http://127.0.0.1:$metrics_port/metrics"
echo "Certificates (CA, server, client): $mtls   Policy: $work/authz-policy.json"
echo "Try:  $cli --target=localhost:$grpc_port ${tls[*]} BillingService.ListProducts '{\"page_num\":1}'"
echo "      (the README's \"From Node.js\" and \"From Python\" run the example clients with the same flags)"
echo "Ctrl-C stops both."
wait
