#!/usr/bin/env bash
# The ship rule of docs/TRAINING.md, as one command: a candidate model ships
# only if its val x0 MSE is lower than the shipped model's on EVERY set of val
# crops: each crop size of SIZES, each seed of SEEDS. From session 33 the sizes
# are 128 and 256 pixels, near the 256-pixel tiles restore runs the network on:
# the 64-pixel crops of the earlier rule ranked colorize models differently
# (TRAINING.md, session 33).
#
#   scripts/ship_check.sh MODE CANDIDATE [SHIPPED]
#
# CANDIDATE and SHIPPED: a weights file (.safetensors) or a training
# checkpoint (validated on its EMA, as exported). SHIPPED defaults to the
# committed weights/MODE.safetensors of HEAD (not the work tree's, which an
# export may already have replaced).
# Prints one row per crop size and seed (shipped, candidate, change) and a verdict.
# Exit: 0 ship, 3 hold (not lower on every set), 1 a validation failed, 2 usage.
# Environment: DIFFRESTORE (binary, default build/diffrestore), VAL (default
# ../shared/data/val), SIZES (PATCH:BATCHES pairs, crops of PATCH pixels in
# BATCHES batches of 16; default "128:32 256:8": 512 and 128 crops), SEEDS
# (default "1 2"). Both models are measured on the same crops, whatever they
# trained at.
set -euo pipefail
usage() {
  echo "usage: scripts/ship_check.sh MODE CANDIDATE [SHIPPED]" >&2
  exit 2
}
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
mode="$1"
cand="$2"
ship="${3:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${DIFFRESTORE:-$root/build/diffrestore}"
val="${VAL:-$root/../shared/data/val}"
if [ -n "${PATCH:-}${BATCHES:-}" ]; then
  echo "ship_check.sh: PATCH and BATCHES are gone: use SIZES=PATCH:BATCHES (e.g. SIZES=128:32)" >&2
  exit 2
fi
sizes="${SIZES:-128:32 256:8}"
seeds="${SEEDS:-1 2}"
for sz in $sizes; do
  [[ "$sz" =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] || {
    echo "ship_check.sh: SIZES: '$sz' is not PATCH:BATCHES" >&2
    exit 2
  }
done
[ -x "$bin" ] || {
  echo "ship_check.sh: $bin is missing: build first (scripts/build.sh)" >&2
  exit 2
}
[ -f "$cand" ] || {
  echo "ship_check.sh: $cand: no such file" >&2
  exit 2
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -z "$ship" ]; then
  ship="$tmp/shipped.safetensors"
  git -C "$root" show "HEAD:weights/$mode.safetensors" >"$ship" 2>/dev/null || {
    echo "ship_check.sh: no committed weights/$mode.safetensors in HEAD" >&2
    exit 2
  }
fi
[ -f "$ship" ] || {
  echo "ship_check.sh: $ship: no such file" >&2
  exit 2
}
args() { # a checkpoint is validated on its EMA (--resume), a weights file with --init
  case "$1" in
  *.safetensors) echo "--init" ;;
  *) echo "--resume" ;;
  esac
}
# shellcheck source=scripts/lib/val_x0.sh
. "$root/scripts/lib/val_x0.sh"
x0() { # x0 FILE SEED PATCH BATCHES -> val x0 MSE
  val_x0 "$bin" "$val" "$2" "$4" "$(args "$1")" "$1" --patch "$3" 2>"$tmp/err" || {
    echo "ship_check.sh: validating $1 (seed $2, $3 px) failed: $(tail -n 1 "$tmp/err")" >&2
    exit 1
  }
}
printf '%-6s %-6s %-7s %-12s %-12s %s\n' patch seed crops shipped candidate change
lower=0
n=0
for sz in $sizes; do
  patch=${sz%%:*}
  batches=${sz##*:}
  for s in $seeds; do
    a=$(x0 "$ship" "$s" "$patch" "$batches")
    b=$(x0 "$cand" "$s" "$patch" "$batches")
    [ -n "$a" ] && [ -n "$b" ] || {
      echo "ship_check.sh: no val_x0_mse in the output (seed $s, $patch px)" >&2
      exit 1
    }
    printf '%-6s %-6s %-7s %-12s %-12s %s\n' "$patch" "$s" "$((batches * 16))" "$a" "$b" \
      "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%+.1f%%", 100 * (b - a) / a}')"
    n=$((n + 1))
    if awk -v a="$a" -v b="$b" 'BEGIN {exit !(b < a)}'; then lower=$((lower + 1)); fi
  done
done
[ "$n" -gt 0 ] || {
  echo "ship_check.sh: no crop sets to compare (SIZES '$sizes', SEEDS '$seeds')" >&2
  exit 2
}
if [ "$lower" -eq "$n" ]; then
  echo "SHIP: $mode candidate is lower on all $n sets of val crops"
  exit 0
fi
echo "HOLD: $mode candidate is lower on $lower of $n sets of val crops"
exit 3
