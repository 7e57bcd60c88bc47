#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, buf), then runs every test.
#   tools/test.sh                 # all tests (unit, integration, proto lint)
#   tools/test.sh --config=unit   # extra bazel flags, e.g. unit tests only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/install_deps.sh
exec bazel test //... "$@"
