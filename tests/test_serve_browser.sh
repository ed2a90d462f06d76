#!/usr/bin/env bash
# The serve page in headless Chromium: tests/browser/test_serve_browser.js.
# Usage: test_serve_browser.sh DIFFRESTORE MAKE_TINY_WEIGHTS OUT
# Exits 77 (ctest: Skipped, never Passed) when Chromium, Node.js or the
# test's npm packages are missing, naming what to install.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
missing=()
[ -n "$chromium" ] || missing+=("Chromium (apt-get install chromium)")
command -v node >/dev/null || missing+=("Node.js (apt-get install nodejs npm)")
[ -d "$here/browser/node_modules/puppeteer-core" ] || missing+=("puppeteer-core (cd tests/browser && npm ci)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIPPED, NOT PASSED: test_serve_browser needs ${missing[*]}; scripts/test.sh installs them" >&2
  exit 77
fi
exec node "$here/browser/test_serve_browser.js" "$1" "$2" "$3" "$chromium"
