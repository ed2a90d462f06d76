#!/usr/bin/env bash
# Build and run every test (ctest). With --sanitize, the same suite is built
# with -fsanitize=address,undefined in build-asan/ and run there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests only: exiftool (test_cli_metadata.sh reads the outputs' metadata with
# it), Python 3 (test_serve_api.py) and numpy (test_average_weights, test_grow_unet), Chromium
# (test_serve_browser), clang-format (test_format: the sources follow .clang-format).
scripts/deps.sh libimage-exiftool-perl python3 python3-numpy chromium clang-format
# Node.js and npm for the browser test: any Node >= 18 will do (Debian's, or
# one already installed), then the test's pinned npm packages (package-lock.json).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then scripts/deps.sh nodejs npm; fi
if [ ! -d tests/browser/node_modules/puppeteer-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
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
