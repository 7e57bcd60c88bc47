#!/usr/bin/env bash
# clink_gateway --help lists the gateway's own flags (Abseil's default would show only flags
# defined in a file named after the binary, and print "No flags matched"); --helpfull lists
# every flag, Abseil's included.
set -uo pipefail
bin="$1"
fail() { echo "FAIL: $*"; exit 1; }
help="$("$bin" --help 2>&1)"
helpfull="$("$bin" --helpfull 2>&1)"
[[ "$help" != *"No flags matched"* ]] || fail "--help matched no flags: $help"
for flag in grpc_listen metrics_listen api_key_dir merchants_config clink_base_url log_level; do
  grep -q -- "-$flag " <<<"$help" || fail "--help does not list --$flag"
  grep -q -- "-$flag " <<<"$helpfull" || fail "--helpfull does not list --$flag"
done
# Abseil's own flags are for --helpfull only.
grep -q -- "-flagfile " <<<"$help" && fail "--help lists Abseil's --flagfile"
grep -q -- "-flagfile " <<<"$helpfull" || fail "--helpfull does not list --flagfile"
echo "PASS"
