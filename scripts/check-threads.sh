#!/usr/bin/env bash
# Clang's thread-safety analysis over every source file in src/: the
# GUARDED_BY / REQUIRES / EXCLUDES rules of src/base/mutex.h, broken
# anywhere, fail this. Compiles nothing (-fsyntax-only), with the flags of
# the build folder given (default build/, configured by scripts/build.sh);
# further arguments keep only the files whose path contains one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
python3 - "$build/compile_commands.json" "$@" <<'PY' | xargs -0 -P "$(nproc)" -n 1 sh -c 'out=$(eval "$0" 2>&1) || { printf "%s\n" "$out"; exit 255; }'
import json, os, shlex, sys
for entry in json.load(open(sys.argv[1])):
    src = os.path.relpath(entry["file"])
    if not src.startswith("src/") or (sys.argv[2:] and not any(f in src for f in sys.argv[2:])):
        continue
    args = shlex.split(entry["command"])
    keep, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif a != "-c":
            keep.append(a)
    cmd = ["clang++", "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety"] + keep
    sys.stdout.write("cd " + shlex.quote(entry["directory"]) + " && " + shlex.join(cmd) + "\0")
PY
echo "thread-safety analysis: clean"
