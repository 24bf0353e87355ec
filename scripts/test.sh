#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs every test (as root: the
# integration tests start real sandboxes), then the unit tests again under
# AddressSanitizer and UndefinedBehaviorSanitizer, the unit, sandbox and
# daemon tests under ThreadSanitizer, then each libFuzzer harness for
# FUZZ_SECONDS (30 unless set) over its seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stage's start, in seconds since the run began (for CI's time budget).
stage() { echo "== test.sh: $1 at ${SECONDS} s"; }
stage deps
./scripts/install-deps.sh
stage build
./scripts/build.sh
# Node.js and npm run the E2B SDK compatibility tests (tests/e2b); the SDK
# comes from the npm registry at the version package-lock.json pins.
if ! command -v npm >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
(cd tests/e2b && npm ci --no-audit --no-fund --loglevel=error)
stage tests
ctest --test-dir build --output-on-failure --timeout 300
stage asan
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPADDOCK_SANITIZE=ON >/dev/null
ninja -C build-asan unit_tests paddock-init
ctest --test-dir build-asan --output-on-failure --timeout 300 -L unit
# ThreadSanitizer over the unit tests, the sandbox tests (the manager
# driven from many threads in-process) and the daemon tests (paddockd built
# with it too, driven by concurrent clients); any report fails the run.
# die_after_fork=0: sandboxes are set up by children of a threaded process.
stage tsan
cmake -S . -B build-tsan -G Ninja -DPADDOCK_TSAN=ON >/dev/null
ninja -C build-tsan unit_tests sandbox_tests daemon_tests paddockd paddock paddock-init
export TSAN_OPTIONS="die_after_fork=0 halt_on_error=1"
build-tsan/bin/unit_tests --gtest_brief=1
build-tsan/bin/sandbox_tests --gtest_brief=1
# The daemon tests whose requests, restarts and background work (reaper,
# teardowns, archiving, concurrent pulls and builds) cross threads, but
# those that move gigabytes (minutes under TSan, and their memory bounds do
# not hold with its shadow memory). The suites left out (images, devices,
# disks, volumes, templates) drive one request at a time through threads
# these already run, and each daemon start costs ~3 s under TSan. A
# daemon's report goes to its own file, checked after.
reports="$(mktemp -d)"
daemon_status=0
TSAN_OPTIONS="$TSAN_OPTIONS log_path=$reports/report" build-tsan/bin/daemon_tests --gtest_brief=1 \
  --gtest_filter='DaemonTest.*:ProxyTest.*:ArchiveTest.*:ImageTest.TwentyConcurrent*:TemplateTest.KillNine*-*ThreeGigabytes*:*UploadsDownloadsAndArchiveBombs*:*EnvdUploadsStream*:*LargeBodiesStream*:*FiveThousandDeep*' ||
  daemon_status=$?
if [ -n "$(ls -A "$reports")" ]; then
  cat "$reports"/*
  echo "tsan: a data race was reported (above)" >&2
  daemon_status=1
fi
rm -rf "$reports"
[ "$daemon_status" -eq 0 ] || exit 1
unset TSAN_OPTIONS
stage fuzz
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" ./scripts/fuzz.sh
stage done
