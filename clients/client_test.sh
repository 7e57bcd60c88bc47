#!/usr/bin/env bash
# Runs one example client (clients/python or clients/node) against a real gateway in front of the
# Clink emulator, each started here on port 0, the gateway's gRPC port with mutual TLS (throwaway
# CA, server and client certificates from tools/dev_certs.sh; the client's identity
# spiffe://cluster.local/ns/shop/sa/checkout-web), and checks what the README promises of it:
#   1. CreatePayment with an idempotency key succeeds; the amount comes back digit for digit;
#   2. the same key again gets the same order (the gateway replays it, Clink is not called twice);
#   3. a bad request (3 decimals in USD) is INVALID_ARGUMENT with a BadRequest naming `amount`;
#   4. a request Clink rejects (unknown customer) carries ErrorInfo with outcome `rejected`;
#   5. a client certificate from another CA is refused (UNAVAILABLE: the handshake fails).
# Usage (from Bazel): client_test.sh python|node GATEWAY EMULATOR DEV_CERTS [PAYMENT_PB2_PY]
set -euo pipefail
lang="$1"
gateway="$(readlink -f "$2")"
emulator="$(readlink -f "$3")"
dev_certs="$(readlink -f "$4")"
work="${TEST_TMPDIR:-$(mktemp -d)}/client_test_$lang"
rm -rf "$work" && mkdir -p "$work/keys"
python=/usr/bin/python3  # Debian's, with python3-grpcio (not a pyenv or venv one on PATH).

case "$lang" in
  python)
    # $5 is clink/gateway/v1/payment_pb2.py under the generated modules' root.
    stubs="$(cd "$(dirname "$5")/../../.." && pwd)"
    client() { PYTHONPATH="$stubs" "$python" clients/python/clink_client.py "$@"; }
    ;;
  node)
    # Unsandboxed: the real checkout's clients/node, where tools/install_deps.sh ran `npm ci`.
    node_dir="$(dirname "$(readlink -f clients/node/client.js)")"
    if [ ! -f "$node_dir/node_modules/@grpc/grpc-js/package.json" ]; then
      echo "clients/node/node_modules is missing: run tools/install_deps.sh" >&2
      exit 1
    fi
    client() { node "$node_dir/client.js" "$@"; }
    ;;
  *) echo "unknown client language $lang" >&2; exit 2 ;;
esac

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Starts "$@" with its output (stdout and stderr) read here until a line matches $pattern (or the
# process exits, or 60 s pass), then copied to $log in the background. Sets $started_line.
start_and_wait_for() {
  local pattern="$1" log="$2"
  shift 2
  local fd
  exec {fd}< <(exec "$@" 2>&1)
  pids+=($!)
  started_line=""
  local line
  while IFS= read -r -t 60 line <&"$fd"; do
    printf '%s\n' "$line" >>"$log"
    if [[ "$line" =~ $pattern ]]; then started_line="$line"; break; fi
  done
  if [ -z "$started_line" ]; then
    echo "$1 did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  cat <&"$fd" >>"$log" &
  pids+=($!)
}

printf '%s\n' sk_test_client_test_key >"$work/keys/api-key"
"$dev_certs" "$work/mtls"
"$dev_certs" "$work/other-ca"  # the same names, signed by a CA the gateway does not trust
start_and_wait_for 'listening on https://127\.0\.0\.1:([0-9]+)/' "$work/emulator.log" \
  "$emulator" --listen=127.0.0.1:0 --tls_dir="$work" --api_key_file="$work/keys/api-key"
emulator_port="${BASH_REMATCH[1]}"

start_and_wait_for '"event":"started".*"grpc_port":"([0-9]+)"' "$work/gateway.log" \
  "$gateway" --grpc_listen=127.0.0.1:0 --metrics_listen= \
  --clink_base_url="https://127.0.0.1:$emulator_port/api" --ca_bundle="$work/ca.pem" \
  --egress_allow_cidrs=127.0.0.0/8 --api_key_dir="$work/keys" --idempotency_store=memory \
  --grpc_tls_cert_file="$work/mtls/server.pem" --grpc_tls_key_file="$work/mtls/server.key" \
  --grpc_client_ca_file="$work/mtls/ca.pem"
grpc_port="${BASH_REMATCH[1]}"
connect=(--target="127.0.0.1:$grpc_port" --tls_ca="$work/mtls/ca.pem"
  --tls_cert="$work/mtls/client.pem" --tls_key="$work/mtls/client.key")

# expect DESCRIPTION JSON PYTHON_EXPRESSION: the expression (over the client's output `r`) holds.
expect() {
  if ! "$python" -c 'import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if eval(sys.argv[2]) else 1)' "$2" "$3"; then
    echo "FAIL ($lang): $1: expected $3, got: $2" >&2
    exit 1
  fi
  echo "ok ($lang): $1"
}

payment='{"customer_id":"cus_emu_test","payment_instrument_id":"pi_emu_card_visa",
  "payment_method_type":"PAYMENT_METHOD_TYPE_CARD","amount":"19.99","currency":"USD",
  "return_url":"https://shop.example/return","merchant_reference_id":"client-test-1"}'
key="client-test-$lang-$$"

status=0
first="$(client "${connect[@]}" --idempotency_key="$key" "$payment")" || status=$?
expect "CreatePayment with an idempotency key succeeds" "$first" \
  "r['ok'] and r['response']['order_id'].startswith('ord_') and r['response']['amount'] == '19.99' and r['response']['status'] == 'PAYMENT_RESULT_STATUS_SUCCESS'"
[ "$status" -eq 0 ] || { echo "FAIL ($lang): exit status $status on success" >&2; exit 1; }
order="$("$python" -c 'import json, sys; print(json.loads(sys.argv[1])["response"]["order_id"])' "$first")"

again="$(client "${connect[@]}" --idempotency_key="$key" "$payment")"
expect "the same key again gets the same order, not a second payment" "$again" \
  "r['ok'] and r['response']['order_id'] == '$order'"

status=0
bad="$(client "${connect[@]}" --idempotency_key="$key-bad" "${payment/19.99/19.999}")" || status=$?
expect "a bad amount is INVALID_ARGUMENT with a BadRequest naming the field" "$bad" \
  "not r['ok'] and r['code'] == 'INVALID_ARGUMENT' and [v['field'] for v in r['bad_request']] == ['amount'] and 'decimal places' in r['bad_request'][0]['description']"
[ "$status" -eq 1 ] || { echo "FAIL ($lang): exit status $status on an error" >&2; exit 1; }

rejected="$(client "${connect[@]}" --idempotency_key="$key-rejected" "${payment/cus_emu_test/cus_unknown}")" || true
expect "a request Clink rejects carries ErrorInfo with its outcome" "$rejected" \
  "not r['ok'] and r['code'] == 'INVALID_ARGUMENT' and r['error_info']['domain'] == 'clinkbill.com' and r['error_info']['metadata']['outcome'] == 'rejected' and 'CUSTOMER_NOT_FOUND' in r['message']"

status=0
stranger="$(client --target="127.0.0.1:$grpc_port" --tls_ca="$work/mtls/ca.pem" \
  --tls_cert="$work/other-ca/client.pem" --tls_key="$work/other-ca/client.key" --timeout=10 \
  --idempotency_key="$key-stranger" "$payment")" || status=$?
expect "a client certificate from another CA is refused" "$stranger" \
  "not r['ok'] and r['code'] == 'UNAVAILABLE'"
