#!/usr/bin/env bash
# Sets up a fresh machine and runs paddockd in the foreground on the embedded
# defaults: state (SQLite, templates, sandboxes) under /var/lib/paddock, the
# API on /run/paddock/paddock.sock, the `host` template. Ctrl-C stops the
# daemon; sandboxes keep running and the next paddockd adopts them.
#   sudo ./scripts/run.sh [paddockd flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh >/dev/null
exec ./build/bin/paddockd "$@"
