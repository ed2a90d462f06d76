#!/usr/bin/env bash
# Build the libFuzzer targets (clang, -DDR_FUZZ=ON) and run each for a while
# on a temporary copy of its seed corpus (the repository is never written),
# with tests/fuzz/regressions/<target> as extra read-only seeds. Exits 1 if
# any target crashed, leaked, timed out or ran out of memory; the failing
# inputs are kept in BUILD/fuzz-artifacts/<target>/ (copy them to
# tests/fuzz/regressions/<target>/ once the bug is understood).
#
#   tests/fuzz/run.sh [-t SECONDS] [-b BUILD_DIR] [-j JOBS] [TARGET...]
#
# Defaults: 60 s per target, build-fuzz, -j2, every target (png jpeg tiff webp
# safetensors maskbox meta serve). CC (default clang-14) picks the compiler. A summary
# per target (executions, corpus size, result) is printed at the end and
# written to BUILD/fuzz-logs/summary.txt; full logs are in BUILD/fuzz-logs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=60 build=build-fuzz jobs=2
while getopts "t:b:j:" o; do
  case $o in
  t) secs=$OPTARG ;;
  b) build=$OPTARG ;;
  j) jobs=$OPTARG ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(png jpeg tiff webp safetensors maskbox meta serve)

cc=${CC:-clang-14}
cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDR_FUZZ=ON -DDR_SANITIZE=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}")

build=$(cd "$build" && pwd)
logs=$build/fuzz-logs
mkdir -p "$logs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
summary=$logs/summary.txt
printf '%-12s %8s %12s %6s %7s %6s  %s\n' target seconds execs seeds corpus cov result >"$summary"
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/fuzz_$t
  corpus=$work/$t
  arts=$build/fuzz-artifacts/$t
  rm -rf "$arts"
  mkdir -p "$corpus" "$arts"
  cp -R tests/fuzz/corpus/"$t"/. "$corpus"/
  seeds=$(find "$corpus" -type f | wc -l)
  extra=() opts=()
  [ -d tests/fuzz/regressions/"$t" ] && extra+=(tests/fuzz/regressions/"$t")
  [ -f tests/fuzz/"$t".dict ] && opts+=(-dict="$PWD/tests/fuzz/$t.dict")
  echo "== fuzz_$t: ${secs}s, $seeds seeds${extra:+ + regressions}"
  rc=0
  "$exe" -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=1024 -timeout=25 \
    -print_final_stats=1 -artifact_prefix="$arts/" "${opts[@]}" "$corpus" "${extra[@]}" >"$logs/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  cov=$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$logs/$t.log" | tail -1)
  if [ $rc -eq 0 ]; then
    result=ok
  else
    failed=1
    result="FAILED (exit $rc): $(ls "$arts" | tr '\n' ' ')"
    grep -E "^(==[0-9]+==ERROR|SUMMARY|.*invariant failed|.*runtime error)" "$logs/$t.log" | head -5 >&2 || true
    echo "   log: $logs/$t.log" >&2
  fi
  printf '%-12s %8s %12s %6s %7s %6s  %s\n' "$t" "$secs" "${execs:-?}" "$seeds" "$size" "${cov:-?}" "$result" | tee -a "$summary"
done
echo "== summary ($summary)"
cat "$summary"
exit $failed
