#!/usr/bin/env bash
# Sets up a fresh machine and runs a command in a fresh sandbox of the
# built-in `host` template (state under /var/lib/paddock):
#   sudo ./scripts/run.sh [-- CMD ARGS...]     default: python3 -c 'print(6*7)'
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh >/dev/null
[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then set -- python3 -c 'print(6*7)'; fi
exec ./build/bin/paddock-run -- "$@"
