#!/usr/bin/env bash
# Build and run every test (ctest). With --sanitize, the same suite is built
# with -fsanitize=address,undefined in build-asan/ and run there.
set -euo pipefail
cd "$(dirname "$0")/.."
# exiftool (tests only): test_cli_metadata.sh reads the outputs' metadata with it
scripts/deps.sh libimage-exiftool-perl
if [ "${1:-}" = "--sanitize" ]; then
  scripts/deps.sh
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDR_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$(nproc)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --test-dir build-asan --output-on-failure
else
  scripts/build.sh
  ctest --test-dir build --output-on-failure
fi
