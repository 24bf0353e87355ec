#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, ASan + UBSan) into
# build-fuzz/ and runs each for FUZZ_SECONDS (default 30) over a scratch
# corpus seeded from fuzz/corpus/<harness>. A crash, leak or timeout fails
# the run; its input is kept as fuzz-artifacts/<harness>-crash-* for a
# regression test. Pass harness names to run only those.
set -euo pipefail
cd "$(dirname "$0")/.."
harnesses=(http_request_fuzz connect_envelope_fuzz agent_frames_fuzz tar_upload_fuzz manifest_fuzz
  multipart_fuzz)
[ $# -gt 0 ] && harnesses=("$@")
seconds="${FUZZ_SECONDS:-30}"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPADDOCK_FUZZ=ON >/dev/null
ninja -C build-fuzz "${harnesses[@]}"
mkdir -p fuzz-artifacts
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# One harness per core at a time; each writes its own log.
fuzz_one() {
  local h="$1"
  mkdir -p "$work/$h" "$work/$h.tmp"
  # -max_len covers the seeds (an HTTP request with a body, a small tar);
  # -timeout flags an input that takes over 10 s (a hang); -rss_limit_mb a
  # harness that grows without bound.
  TMPDIR="$work/$h.tmp" "build-fuzz/fuzz/$h" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="fuzz-artifacts/$h-" \
    "$work/$h" "fuzz/corpus/$h" >"$work/$h.log" 2>&1
}
jobs_at_once="$(nproc)"
pids=()
for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_at_once" ]; do wait -n || true; done
  fuzz_one "$h" &
  pids+=("$!")
done
failed=0
for i in "${!harnesses[@]}"; do
  h="${harnesses[$i]}"
  echo "== $h: ${seconds} s"
  if ! wait "${pids[$i]}"; then
    tail -60 "$work/$h.log"
    echo "fuzz: $h failed; inputs in fuzz-artifacts/" >&2
    failed=1
    continue
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$work/$h.log" \
    | sed "s/^/  /"
done
exit "$failed"
