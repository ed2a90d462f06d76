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
#
# The eval gate (session 35): the x0 MSE averages over every noise level, and
# a sampler visits only a few, so a model can be lower in x0 and sample worse
# (colorize did, TRAINING.md session 34). When the x0 rule passes, both models
# also restore VAL with `diffrestore eval` at the default preset, one thread,
# on each crop size of EVAL_CROPS (the centred N x N crops; 0: the whole
# photos) and each seed of EVAL_SEEDS, and neither of the mode's two target
# metrics may fall in any of these runs (colorize: chroma PSNR and
# colourfulness ratio; inpaint: hole PSNR and hole HF ratio; superres x4: PSNR
# and HF ratio; denoise: PSNR and SSIM). Defaults: EVAL_SEEDS "0 1 2" for
# colorize and, from session 50, superres (its base-48 U-Net was lower in x0
# and sampled under milestone 9's PSNR-against-HF curve, TRAINING.md session
# 49; it runs at --scale 4, the x4 target's), "" (no gate) for inpaint
# and denoise; EVAL_CROPS "256 0" for
# colorize (the README's crops, and whole photos as restore colours them:
# they disagreed in session 35) and "256" for the others. Colorize runs
# at the shipped weights' render_size for both models. A checkpoint is
# exported (EMA, F16) to a temporary file first.
set -euo pipefail
usage() {
  echo "usage: scripts/ship_check.sh MODE CANDIDATE [SHIPPED]" >&2
  exit 2
}
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && {
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
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
# the gate's metrics, one entry per mode: accuracy, then realism
gate_metrics() {
  case "$1" in
  colorize) echo "chroma_psnr colorfulness_ratio" ;;
  inpaint) echo "hole_psnr hole_hf_ratio" ;;
  superres) echo "psnr hf_ratio" ;;
  denoise) echo "psnr ssim" ;;
  esac
}
case "$mode" in
colorize | superres) eval_seeds="${EVAL_SEEDS-0 1 2}" ;;
*) eval_seeds="${EVAL_SEEDS-}" ;;
esac
if [ -n "${EVAL_CROP:-}" ]; then
  echo "ship_check.sh: EVAL_CROP is now EVAL_CROPS (a list; 0 = whole photos)" >&2
  exit 2
fi
if [ "$mode" = colorize ]; then
  eval_crops="${EVAL_CROPS:-256 0}"
else
  eval_crops="${EVAL_CROPS:-256}"
fi
for s in $eval_seeds; do
  [[ "$s" =~ ^(0|[1-9][0-9]*)$ ]] || {
    echo "ship_check.sh: EVAL_SEEDS: '$s' is not a seed" >&2
    exit 2
  }
done
for c in $eval_crops; do
  [[ "$c" =~ ^(0|[1-9][0-9]*)$ ]] || {
    echo "ship_check.sh: EVAL_CROPS: '$c' is not a crop size (0: whole photos)" >&2
    exit 2
  }
done
[ -n "${eval_crops// /}" ] || {
  echo "ship_check.sh: EVAL_CROPS is empty (EVAL_SEEDS=\"\" turns the gate off)" >&2
  exit 2
}
metrics="$(gate_metrics "$mode")"
if [ -n "${eval_seeds// /}" ] && [ -z "$metrics" ]; then
  echo "ship_check.sh: no eval metrics for mode '$mode': set EVAL_SEEDS=\"\"" >&2
  exit 2
fi
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
if [ "$lower" -ne "$n" ]; then
  echo "HOLD: $mode candidate is lower on $lower of $n sets of val crops"
  exit 3
fi
if [ -z "${eval_seeds// /}" ]; then
  echo "SHIP: $mode candidate is lower on all $n sets of val crops"
  exit 0
fi

# --- the eval gate
weights() { # weights FILE NAME -> a weights file for eval (a checkpoint is exported)
  case "$1" in
  *.safetensors) echo "$1" ;;
  *)
    "$bin" train -q --resume "$1" --export "$tmp/$2.safetensors" 2>"$tmp/err" || {
      echo "ship_check.sh: exporting $1 failed: $(tail -n 1 "$tmp/err")" >&2
      exit 1
    }
    echo "$tmp/$2.safetensors"
    ;;
  esac
}
ship_w=$(weights "$ship" shipped)
cand_w=$(weights "$cand" candidate)
opts=() # the mode's own eval options: colorize's render size, superres's x4
case "$mode" in
colorize)
  r=$("$bin" info "$ship_w" 2>/dev/null | awk '$1 == "render_size" && $2 == "=" {print $3}')
  [ -n "$r" ] && opts=(--render-size "$r")
  ;;
superres) opts=(--scale 4) ;;
esac
ev() { # ev WEIGHTS SEED CROP -> the "model" object of eval's mean line
  "$bin" eval -q --json --mode "$mode" --data "$val" --crop "$3" --seed "$2" -t 1 "${opts[@]}" \
    -w "$1" >"$tmp/ev" 2>"$tmp/err" || {
    echo "ship_check.sh: eval of $1 (seed $2, crop $3) failed: $(tail -n 1 "$tmp/err")" >&2
    exit 1
  }
  sed -n 's/^{"mean":true.*"model":{\([^}]*\)}.*/\1/p' "$tmp/ev"
}
metric() { # metric OBJECT KEY -> its number
  tr ',' '\n' <<<"$1" | awk -F: -v k="\"$2\"" '$1 == k {print $2}'
}
echo
printf '%-6s %-6s %-20s %-10s %-10s %s\n' crop seed metric shipped candidate change
fell=0
m=0
for c in $eval_crops; do
  for s in $eval_seeds; do
    a=$(ev "$ship_w" "$s" "$c")
    b=$(ev "$cand_w" "$s" "$c")
    for k in $metrics; do
      x=$(metric "$a" "$k")
      y=$(metric "$b" "$k")
      [[ "$x" =~ ^-?[0-9.]+(e[-+]?[0-9]+)?$ ]] && [[ "$y" =~ ^-?[0-9.]+(e[-+]?[0-9]+)?$ ]] || {
        echo "ship_check.sh: no $k in eval's mean line (seed $s, crop $c)" >&2
        exit 1
      }
      printf '%-6s %-6s %-20s %-10s %-10s %s\n' "$c" "$s" "$k" "$x" "$y" \
        "$(awk -v a="$x" -v b="$y" 'BEGIN {printf "%+.3f", b - a}')"
      m=$((m + 1))
      if awk -v a="$x" -v b="$y" 'BEGIN {exit !(b < a)}'; then fell=$((fell + 1)); fi
    done
  done
done
if [ "$fell" -eq 0 ]; then
  echo "SHIP: $mode candidate is lower on all $n sets of val crops, and none of $m eval metrics falls"
  exit 0
fi
echo "HOLD: $mode candidate is lower on all $n sets of val crops, but $fell of $m eval metrics fall"
exit 3
