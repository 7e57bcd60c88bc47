#!/usr/bin/env node
// Example Node.js client of clink-gateway: PaymentService.CreatePayment over mutual TLS.
//
// Uses @grpc/grpc-js and @grpc/proto-loader (clients/node/package.json; `npm ci` in this
// directory, which tools/install_deps.sh does) and loads the repository's own .proto files at
// run time (nothing generated is committed). It shows the three things every caller needs:
//
//   * mTLS: the gateway requires a client certificate; its SPIFFE ID (URI SAN) is the caller's
//     identity, which the authorization policy checks and which scopes idempotency keys.
//   * An idempotency key (metadata `idempotency-key`), the same on every retry of one payment:
//     the gateway never sends a keyed payment to Clink twice. On UNKNOWN (outcome "unknown": it
//     may have gone through) retry only with the SAME key, or reconcile (ListOrders) first.
//   * google.rpc error details from the `grpc-status-details-bin` trailer: ErrorInfo (reason,
//     domain, metadata.outcome = not_sent / unknown / rejected / committed,
//     metadata.http_status), BadRequest (one violation per offending field), RetryInfo.
//
// Usage:
//   node client.js --target=HOST:PORT --tls_ca=CA.pem --tls_cert=CLIENT.pem --tls_key=CLIENT.key \
//       [--idempotency_key=KEY] [--timeout=SECONDS] 'REQUEST_JSON'
//   node client.js --target=HOST:PORT --insecure ...   (a gateway run with --grpc_insecure)
//
// REQUEST_JSON is a clink.gateway.v1.CreatePaymentRequest with the .proto's field names (money
// as a decimal string in major units, e.g. "amount": "19.99"; enums by name). Prints one JSON
// object on stdout: {"ok": true, "idempotency_key": ..., "response": {...}} and exits 0, or
// {"ok": false, "code": "INVALID_ARGUMENT", "message": ..., "error_info": {...},
// "bad_request": [{"field": ..., "description": ...}], "retry_delay_seconds": ...} and exits 1.
// Bad usage (unreadable files, malformed JSON) exits 2.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_ROOT = process.env.CLINK_PROTO_ROOT || path.join(__dirname, '..', '..', 'proto');
const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
// Messages as plain objects: the .proto's field names, enums by name, 64-bit integers as strings
// (never a lossy JS number), unset fields left out.
const OBJECT_OPTIONS = { keepCase: true, enums: String, longs: String, defaults: false, oneofs: true };

function loadPaymentService() {
  const definition = protoLoader.loadSync('clink/gateway/v1/payment.proto', {
    ...OBJECT_OPTIONS,
    includeDirs: [PROTO_ROOT],
  });
  return grpc.loadPackageDefinition(definition).clink.gateway.v1.PaymentService;
}

// google.rpc.Status and the detail messages, decoded with protobufjs from the repo's copies.
function loadRpcTypes() {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) =>
    target.startsWith('google/rpc/') ? path.join(PROTO_ROOT, target) : protobuf.util.path.resolve(origin, target);
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return root;
}

// The gRPC code, message and google.rpc details of a failed call, as a JSON-ready object.
function decodeError(error, rpcTypes) {
  const out = { ok: false, code: grpc.status[error.code] || String(error.code), message: error.details };
  const raw = error.metadata ? error.metadata.get(STATUS_DETAILS_KEY) : [];
  if (raw.length === 0) return out;
  const Status = rpcTypes.lookupType('google.rpc.Status');
  const status = Status.decode(raw[0]);
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    if (typeName === 'google.rpc.ErrorInfo') {
      const info = rpcTypes.lookupType(typeName).decode(any.value);
      out.error_info = { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } };
    } else if (typeName === 'google.rpc.BadRequest') {
      const bad = rpcTypes.lookupType(typeName).decode(any.value);
      out.bad_request = bad.field_violations.map((v) => ({ field: v.field, description: v.description }));
    } else if (typeName === 'google.rpc.RetryInfo') {
      const retry = rpcTypes.lookupType(typeName).decode(any.value);
      const delay = retry.retry_delay || {};
      out.retry_delay_seconds = Number(delay.seconds || 0) + (delay.nanos || 0) / 1e9;
    }
  }
  return out;
}

function parseArgs(argv) {
  const flags = { timeout: '10', insecure: false };
  const positional = [];
  for (const arg of argv) {
    const m = /^--([a-z_]+)(?:=(.*))?$/s.exec(arg);
    if (!m) {
      positional.push(arg);
    } else if (m[1] === 'insecure' && m[2] === undefined) {
      flags.insecure = true;
    } else if (['target', 'tls_ca', 'tls_cert', 'tls_key', 'idempotency_key', 'timeout'].includes(m[1]) && m[2] !== undefined) {
      flags[m[1]] = m[2];
    } else {
      throw new Error(`unknown flag ${arg}`);
    }
  }
  if (!flags.target) throw new Error('--target is required');
  if (positional.length !== 1) throw new Error('expected one argument: the request JSON');
  const timeout = Number(flags.timeout);
  if (!(timeout > 0)) throw new Error(`--timeout must be a positive number of seconds, not ${flags.timeout}`);
  return { ...flags, timeout, request: JSON.parse(positional[0]) };
}

function credentials(flags) {
  if (flags.insecure) return grpc.credentials.createInsecure();
  if (!flags.tls_ca || !flags.tls_cert || !flags.tls_key) {
    throw new Error('--tls_ca, --tls_cert and --tls_key are required (or --insecure)');
  }
  return grpc.credentials.createSsl(
    fs.readFileSync(flags.tls_ca), fs.readFileSync(flags.tls_key), fs.readFileSync(flags.tls_cert));
}

// Calls CreatePayment with the key; resolves to the response, rejects with the grpc-js error.
function createPayment(client, request, idempotencyKey, timeoutSeconds) {
  const metadata = new grpc.Metadata();
  metadata.set('idempotency-key', idempotencyKey);
  // Always a deadline: it bounds the upstream call too.
  const deadline = new Date(Date.now() + timeoutSeconds * 1000);
  return new Promise((resolve, reject) => {
    client.CreatePayment(request, metadata, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function main(argv) {
  let flags;
  let creds;
  try {
    flags = parseArgs(argv);
    creds = credentials(flags);
  } catch (e) {
    process.stderr.write(`clink_client: ${e.message}\n`);
    return 2;
  }
  const PaymentService = loadPaymentService();
  const rpcTypes = loadRpcTypes();
  const key = flags.idempotency_key || crypto.randomUUID();
  const client = new PaymentService(flags.target, creds);
  try {
    const response = await createPayment(client, flags.request, key, flags.timeout);
    process.stdout.write(`${JSON.stringify({ ok: true, idempotency_key: key, response })}\n`);
    return 0;
  } catch (error) {
    if (error.code === undefined) throw error;
    process.stdout.write(`${JSON.stringify({ ...decodeError(error, rpcTypes), idempotency_key: key })}\n`);
    return 1;
  } finally {
    client.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

module.exports = { createPayment, decodeError, loadPaymentService, loadRpcTypes };
