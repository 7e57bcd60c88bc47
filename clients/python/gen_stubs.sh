#!/usr/bin/env bash
# Generates the Python modules the client imports, from the repository's own .proto files, with
# Debian's protoc and grpc_python_plugin (packages protobuf-compiler, protobuf-compiler-grpc):
#   clink/gateway/v1/*_pb2.py, *_pb2_grpc.py   the gateway's contract (stubs and messages)
#   google/rpc/status_pb2.py, error_details_pb2.py   the google.rpc error details the gateway
#                                                    sends in grpc-status-details-bin
# Nothing generated is committed: run this before the client, then put OUT_DIR on PYTHONPATH.
#   clients/python/gen_stubs.sh OUT_DIR
set -euo pipefail
out="${1:?usage: gen_stubs.sh OUT_DIR}"
proto_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../proto" && pwd)"
plugin="$(command -v grpc_python_plugin || echo /usr/bin/grpc_python_plugin)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# google/protobuf/*.proto (descriptor, timestamp, any, duration) come with protoc in /usr/include;
# their Python modules come with python3-protobuf.
(cd "$proto_root" && protoc -I. -I/usr/include \
  --python_out="$out" --grpc_python_out="$out" --plugin=protoc-gen-grpc_python="$plugin" \
  clink/gateway/v1/*.proto google/rpc/*.proto)
