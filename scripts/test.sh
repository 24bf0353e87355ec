#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs every test (as root: the
# integration tests start real sandboxes), then the unit tests again under
# AddressSanitizer and UndefinedBehaviorSanitizer, the unit and sandbox
# tests under ThreadSanitizer, then each libFuzzer harness for
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
# ThreadSanitizer over the unit tests and the sandbox tests (the manager
# driven from many threads in-process); any report fails the run.
# die_after_fork=0: sandboxes are set up by children of a threaded process.
stage tsan
cmake -S . -B build-tsan -G Ninja -DPADDOCK_TSAN=ON >/dev/null
ninja -C build-tsan unit_tests sandbox_tests
TSAN_OPTIONS="die_after_fork=0 halt_on_error=1" build-tsan/bin/unit_tests --gtest_brief=1
TSAN_OPTIONS="die_after_fork=0 halt_on_error=1" build-tsan/bin/sandbox_tests --gtest_brief=1
stage fuzz
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" ./scripts/fuzz.sh
stage done
