#!/usr/bin/env bash
# Makes a throwaway certificate authority and, signed by it, a server and a client certificate for
# mutual TLS on a local gateway (tools/run_local.sh, the client tests). Never for deployments:
# the CA key sits beside the certificates, unprotected; they expire in 2 days.
#   tools/dev_certs.sh OUT_DIR [CLIENT_SPIFFE_ID]
# writes to OUT_DIR:
#   ca.pem                        the CA (the gateway's --grpc_client_ca_file, the clients' trust root)
#   server.pem, server.key        the gateway's --grpc_tls_cert_file/--grpc_tls_key_file, for
#                                 localhost and 127.0.0.1 (SAN DNS:localhost, IP:127.0.0.1, IP:::1)
#   client.pem, client.key        a client certificate whose URI SAN is CLIENT_SPIFFE_ID
#                                 (default spiffe://cluster.local/ns/shop/sa/checkout-web)
# ECDSA P-256 keys; the keys are mode 0600.
set -euo pipefail
out="${1:?usage: dev_certs.sh OUT_DIR [CLIENT_SPIFFE_ID]}"
spiffe_id="${2:-spiffe://cluster.local/ns/shop/sa/checkout-web}"
mkdir -p "$out"
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$out/ca.key" -out "$out/ca.pem" -days 2 \
  -subj "/CN=clink-gateway throwaway CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
# $1 name, $2 subject CN, $3 extensions.
issue() {
  openssl req "${ec[@]}" -keyout "$out/$1.key" -out "$out/$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$3" >"$out/$1.ext"
  openssl x509 -req -in "$out/$1.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
    -days 2 -sha256 -extfile "$out/$1.ext" -out "$out/$1.pem" 2>/dev/null
  rm -f "$out/$1.csr" "$out/$1.ext"
}
issue server localhost "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
issue client "${spiffe_id##*/}" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=URI:$spiffe_id"
rm -f "$out/ca.srl"
chmod 0644 "$out/ca.pem" "$out/server.pem" "$out/client.pem"
