#!/usr/bin/env bash
# examples/restore_min.c is built and restores a file for every mode (tiny
# random weights), and fails cleanly (exit 1, message naming the file) on a
# missing input. Usage: test_example.sh restore_min make_tiny_weights diffrestore
set -u
EX="$1" MK="$2" BIN="$3"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
"$MK" --image "$T/in.png" 20 16 3 8 1 >/dev/null
"$MK" --mask "$T/mask.png" 20 16 4 4 8 6 >/dev/null
for mode in colorize inpaint superres; do
  "$MK" "$mode" "$T/$mode.safetensors" >/dev/null
  extra=""
  [ "$mode" = inpaint ] && extra="$T/mask.png"
  "$EX" "$T/$mode.safetensors" "$T/in.png" "$T/out_$mode.png" $extra 2>"$T/err"
  check "$mode exit 0 ($(cat "$T/err"))" '[ $? -eq 0 ]'
  check "$mode wrote a PNG" '"$BIN" info "$T/out_$mode.png" >"$T/info" 2>&1 && grep -q PNG "$T/info"'
done
check "superres doubled the size" 'grep -q "40x32" "$T/info"'
"$EX" "$T/superres.safetensors" "$T/missing.png" "$T/o.png" 2>"$T/err"
rc=$?
check "missing input exits 1" '[ $rc -eq 1 ]'
check "missing input named" 'grep -q missing.png "$T/err"'
check "no output on failure" '[ ! -e "$T/o.png" ]'
echo "test_example: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
