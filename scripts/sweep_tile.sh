#!/usr/bin/env bash
# Measure what the --tile size costs: CPU time per output megapixel and peak
# RSS of a restore, for each tile size, on one generated image (docs/TUNING.md).
# CPU time at one thread is used rather than wall time, so that other jobs on
# the machine disturb the comparison less.
#
#   scripts/sweep_tile.sh WEIGHTS MODE [SIZE] [STEPS] [TILES...]
#
# MODE is colorize or superres (superres runs x2, so SIZE is the output's
# side). Defaults: SIZE 768, STEPS 2, tiles 128 192 256 320 384 512.
set -euo pipefail
cd "$(dirname "$0")/.."
w="${1:?usage: scripts/sweep_tile.sh WEIGHTS MODE [SIZE] [STEPS] [TILES...]}"
mode="${2:?mode}"
size="${3:-768}"
steps="${4:-2}"
shift 4 2>/dev/null || shift $#
tiles=("$@")
[ ${#tiles[@]} -gt 0 ] || tiles=(128 192 256 320 384 512)
bin=build/diffrestore
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $mode in
superres) in_side=$((size / 2)) ch=3 args=(--scale 2) ;;
colorize) in_side=$size ch=1 args=() ;;
*) echo "mode must be colorize or superres" >&2; exit 2 ;;
esac
build/tests/make_tiny_weights --image "$tmp/in.png" "$in_side" "$in_side" "$ch" 8 7
printf '%-6s %10s %12s %10s\n' tile cpu_s cpu_s_per_MP peak_MB
for t in "${tiles[@]}"; do
  rm -f "$tmp/out.png"
  /usr/bin/time -f '%U %S %M' -o "$tmp/time" "$bin" "$mode" -q -w "$w" --steps "$steps" --threads 1 \
    --tile "$t" "${args[@]}" "$tmp/in.png" -o "$tmp/out.png"
  read -r u s m <"$tmp/time"
  awk -v t="$t" -v u="$u" -v s="$s" -v m="$m" -v side="$size" \
    'BEGIN { c = u + s; printf "%-6s %10.2f %12.2f %10.0f\n", t, c, c / (side * side / 1e6), m / 1024 }'
done
