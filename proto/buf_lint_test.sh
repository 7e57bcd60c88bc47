#!/usr/bin/env bash
# Runs `buf lint` (DEFAULT rules, see buf.yaml) over the proto contract. buf comes from npm
# (tools/install_deps.sh puts it in tools/node_modules); this test runs unsandboxed so it can
# find the real checkout through the buf.yaml symlink.
set -euo pipefail
workspace="$(dirname "$(readlink -f buf.yaml)")"
buf="$workspace/tools/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  echo "buf is not installed: run tools/install_deps.sh" >&2
  exit 1
fi
cd "$workspace"
# Keep buf's cache out of the checkout.
export BUF_CACHE_DIR="${TEST_TMPDIR:-$(mktemp -d)}/buf-cache"
"$buf" lint --error-format=text
echo "buf lint: clean"
