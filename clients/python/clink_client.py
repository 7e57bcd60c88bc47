#!/usr/bin/env python3
"""Example Python client of clink-gateway: PaymentService.CreatePayment over mutual TLS.

Uses Debian's python3-grpcio and stubs generated from the repository's .proto files
(clients/python/gen_stubs.sh OUT_DIR; put OUT_DIR on PYTHONPATH). It shows the three things
every caller of the gateway needs:

  * mTLS: the gateway requires a client certificate; its SPIFFE ID (URI SAN) is the caller's
    identity, which the authorization policy checks and which scopes idempotency keys.
  * An idempotency key (metadata `idempotency-key`), the same on every retry of one payment: the
    gateway never sends a keyed payment to Clink twice. On UNKNOWN (outcome "unknown": it may
    have gone through) retry only with the SAME key, or reconcile (ListOrders) first.
  * google.rpc error details from the `grpc-status-details-bin` trailer: ErrorInfo (reason,
    domain, metadata.outcome = not_sent / unknown / rejected / committed, metadata.http_status),
    BadRequest (one violation per offending request field), RetryInfo.

Usage:
  clink_client.py --target=HOST:PORT --tls_ca=CA.pem --tls_cert=CLIENT.pem --tls_key=CLIENT.key \
      [--idempotency_key=KEY] [--timeout=SECONDS] 'REQUEST_JSON'
  clink_client.py --target=HOST:PORT --insecure ...     (a gateway run with --grpc_insecure)

REQUEST_JSON is a clink.gateway.v1.CreatePaymentRequest in proto JSON (field names as in the
.proto; money as a decimal string in major units, e.g. "amount": "19.99"). Prints one JSON object
on stdout: {"ok": true, "idempotency_key": ..., "response": {...}} and exits 0, or
{"ok": false, "code": "INVALID_ARGUMENT", "message": ..., "error_info": {...},
"bad_request": [{"field": ..., "description": ...}], "retry_delay_seconds": ...} and exits 1.
Bad usage (unreadable files, malformed JSON) exits 2.
"""

import argparse
import json
import sys
import uuid

import grpc
from google.protobuf import json_format

from clink.gateway.v1 import payment_pb2
from clink.gateway.v1 import payment_pb2_grpc
from google.rpc import error_details_pb2
from google.rpc import status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def channel_credentials(ca_file, cert_file, key_file):
    """TLS credentials that verify the gateway against ca_file and present a client certificate."""
    with open(ca_file, "rb") as f:
        root = f.read()
    with open(cert_file, "rb") as f:
        chain = f.read()
    with open(key_file, "rb") as f:
        key = f.read()
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain)


def decode_error(error):
    """The gRPC code, message and google.rpc details of a failed call, as a JSON-ready dict."""
    out = {"ok": False, "code": error.code().name, "message": error.details()}
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                out["error_info"] = {
                    "reason": info.reason,
                    "domain": info.domain,
                    "metadata": dict(info.metadata),
                }
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                out["bad_request"] = [
                    {"field": v.field, "description": v.description}
                    for v in bad.field_violations
                ]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                out["retry_delay_seconds"] = retry.retry_delay.ToTimedelta().total_seconds()
    return out


def create_payment(stub, request, idempotency_key, timeout_seconds):
    """Calls CreatePayment with the key; returns the response or raises grpc.RpcError."""
    return stub.CreatePayment(
        request,
        timeout=timeout_seconds,  # Always a deadline: it bounds the upstream call too.
        metadata=(("idempotency-key", idempotency_key),))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="gateway host:port")
    parser.add_argument("--tls_ca", help="CA bundle (PEM) that signed the gateway's certificate")
    parser.add_argument("--tls_cert", help="client certificate chain (PEM)")
    parser.add_argument("--tls_key", help="client private key (PEM)")
    parser.add_argument("--insecure", action="store_true",
                        help="plaintext, for a gateway run with --grpc_insecure")
    parser.add_argument("--idempotency_key", default=None,
                        help="the same on every retry of one payment (default: a new UUID)")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
    parser.add_argument("request", help="CreatePaymentRequest as proto JSON")
    args = parser.parse_args(argv)

    try:
        request = json_format.Parse(args.request, payment_pb2.CreatePaymentRequest())
    except json_format.ParseError as e:
        print(f"clink_client: bad request JSON: {e}", file=sys.stderr)
        return 2
    key = args.idempotency_key or str(uuid.uuid4())

    if args.insecure:
        channel = grpc.insecure_channel(args.target)
    else:
        if not (args.tls_ca and args.tls_cert and args.tls_key):
            print("clink_client: --tls_ca, --tls_cert and --tls_key are required "
                  "(or --insecure)", file=sys.stderr)
            return 2
        try:
            creds = channel_credentials(args.tls_ca, args.tls_cert, args.tls_key)
        except OSError as e:
            print(f"clink_client: {e}", file=sys.stderr)
            return 2
        channel = grpc.secure_channel(args.target, creds)

    with channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        try:
            response = create_payment(stub, request, key, args.timeout)
        except grpc.RpcError as error:
            out = decode_error(error)
            out["idempotency_key"] = key
            print(json.dumps(out, sort_keys=True))
            return 1
    print(json.dumps({
        "ok": True,
        "idempotency_key": key,
        "response": json_format.MessageToDict(response, preserving_proto_field_name=True),
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
