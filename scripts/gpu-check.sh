#!/usr/bin/env bash
# The GPU issue's end-to-end check, for a host with an NVIDIA GPU where
# nothing can be installed (the device machine): Paddock's binaries travel
# with every shared library they link, and run through the bundled loader.
#
#   scripts/gpu-check.sh bundle [TGZ]   here, after scripts/build.sh: stripped
#                                       paddockd, paddock, paddock-init and
#                                       their libraries, in one tarball
#                                       (default build/gpu-bundle.tar.gz, ~30 MB;
#                                       the device tool carries `build/gpu-bundle.tar.gz`)
#   scripts/gpu-check.sh run [TGZ]      on the GPU host, as root: the bundle
#                                       unpacked and a paddockd on a scratch
#                                       folder, then the checks, each printed
#                                       with its output; all removed at the end
#
# The checks: `paddock gpus` lists the GPU; `nvidia-smi -L` in a `host`
# sandbox created with --gpus all; a sandbox without --gpus has no
# /dev/nvidia*; `python3 -c 'import torch; print(torch.cuda.is_available())'`
# in the GPU sandbox (the host template's /usr is the host's, read-only, so
# a Python environment under /usr is what it sees). Exit status: the number
# of checks that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
tgz=${2:-build/gpu-bundle.tar.gz}

bundle() {
  local dir
  dir=$(mktemp -d /tmp/paddock-bundle.XXXXXX)
  mkdir -p "$dir/bin" "$dir/lib"
  for b in paddockd paddock paddock-init; do
    strip -o "$dir/bin/$b" "build/bin/$b"
  done
  for b in paddockd paddock; do
    ldd "build/bin/$b" | awk '/=> \// {print $3} /^\t\/.*ld-linux/ {print $1}' |
      while read -r lib; do cp -L "$lib" "$dir/lib/"; done
  done
  tar czf "$tgz" -C "$dir" bin lib
  rm -rf "$dir"
  du -sh "$tgz"
}

run() {
  local state dir lib
  state=$(mktemp -d /tmp/paddock-gpu.XXXXXX)
  chmod 711 "$state"  # sandboxes run as unprivileged host ids: they must reach their folders
  dir="$state/bundle"
  lib="$dir/lib"
  mkdir -p "$dir" && tar xzf "$tgz" -C "$dir" || return 1
  local loader
  loader=$(ls "$lib"/ld-linux-*.so.* | head -1)
  local sock="$state/paddock.sock"
  "$loader" --library-path "$lib" "$dir/bin/paddockd" --state-dir "$state/state" --socket "$sock" \
    --init "$dir/bin/paddock-init" >"$state/paddockd.log" 2>&1 &
  local daemon=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  if ! [ -S "$sock" ]; then
    echo "### FAILED: paddockd did not start"
    cat "$state/paddockd.log"
    kill -KILL "$daemon" 2>/dev/null
    rm -rf "$state"
    return 1
  fi
  cli() { PADDOCK_SOCKET="$sock" "$loader" --library-path "$lib" "$dir/bin/paddock" "$@"; }
  local failed=0
  check() {  # check NAME EXPECTED-REGEX COMMAND...
    local name=$1 want=$2 out
    shift 2
    out=$("$@" 2>&1)
    echo "### $name: $*"
    echo "$out"
    if grep -Eq "$want" <<<"$out"; then echo "### ok"; else echo "### FAILED (wanted /$want/)"; failed=$((failed + 1)); fi
  }
  check "the host's GPUs" 'nvidia.com/gpu=0' cli gpus
  local gpu plain
  gpu=$(cli create --gpus all)
  plain=$(cli create)
  check "no GPU in a sandbox without --gpus" '^none$' cli exec "$plain" -- sh -c 'ls /dev/nvidia* 2>/dev/null || echo none'
  if [ -n "$gpu" ]; then
    check "nvidia-smi in a sandbox with --gpus all" '^GPU 0:' cli exec "$gpu" -- nvidia-smi -L
    check "torch sees CUDA in the GPU sandbox" '^True$' \
      cli exec "$gpu" -- python3 -c 'import torch; print(torch.cuda.is_available())'
    check "what the GPU sandbox holds" 'nvidia.com/gpu=0' cli inspect "$gpu"
    cli rm "$gpu" >/dev/null
  else
    echo "### FAILED: no sandbox with --gpus all (see above)"
    failed=$((failed + 3))
  fi
  cli rm "$plain" >/dev/null
  kill -TERM "$daemon"
  wait "$daemon"
  echo "### paddockd's log"
  tail -20 "$state/paddockd.log"
  rm -rf "$state"
  return "$failed"
}

case "$mode" in
  bundle) bundle ;;
  run) run ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
