#!/usr/bin/env bash
# The C sources follow .clang-format: exit 1 naming each file that does not
# (clang-format --dry-run --Werror). Fix with: clang-format -i FILE.
#
#   scripts/check_format.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
command -v clang-format >/dev/null || { echo "check_format: clang-format is not installed (scripts/deps.sh clang-format)" >&2; exit 1; }
mapfile -t files < <(git ls-files 'src/*.[ch]' 'include/*.h' 'tests/*.[ch]' 'examples/*.c' 'scripts/*.c' 2>/dev/null ||
  find src include tests examples scripts -name '*.[ch]')
bad=0
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || { echo "check_format: $f does not follow .clang-format"; bad=1; }
done
[ $bad = 0 ] && echo "check_format: ${#files[@]} files follow .clang-format"
exit $bad
