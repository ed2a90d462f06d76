#!/usr/bin/env bash
# Equal-CPU-time A/B of training recipes (docs/TRAINING.md): every arm starts
# from the same weights (or from scratch), trains for the same CPU time
# (train --budget-cpu-minutes: the steps' own CPU time, whatever else runs),
# validates on the same fixed crops (--val-seed 1), is exported and scored by
# `diffrestore eval` on val at a fixed seed, and lands in one table.
#
#   scripts/ab_train.sh MODE MINUTES OUT 'NAME=train options' ...
#
#   MODE     colorize, inpaint or superres
#   MINUTES  CPU minutes per arm
#   OUT      folder for checkpoints, logs, weights, eval (outside the work tree)
#   ARM      NAME=OPTIONS, e.g. 'base=' 'minsnr=--loss-weight min-snr' 'lr5=--lr 5e-4'
#
# Environment: INIT=WEIGHTS (default weights/MODE.safetensors; INIT=none trains
# from scratch with --mode), SEEDS="3 4" (each arm once per training seed: the
# spread), JOBS=2 (arms at once, 1 thread each, at nice 19), CROP=128 and
# EVAL_STEPS=20 (eval on the centred CROP of each val photo), DIFFRESTORE
# (binary; default build/diffrestore), DATA (default ../shared/data),
# TABLE_ONLY=1 (run nothing: the table of the arms already in OUT, e.g. arms
# run by several invocations).
# An arm whose checkpoint exists resumes to the budget; finished arms are only
# re-scored. The table is printed and written to OUT/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:?usage: scripts/ab_train.sh MODE MINUTES OUT NAME=OPTIONS ...}"
minutes="${2:?minutes per arm}"
out="${3:?output folder}"
shift 3
[ $# -ge 1 ] || { echo "ab_train.sh: give at least one arm NAME=OPTIONS" >&2; exit 2; }
bin="${DIFFRESTORE:-build/diffrestore}"
data="${DATA:-../shared/data}"
init="${INIT:-weights/$mode.safetensors}"
seeds="${SEEDS:-3}"
jobs="${JOBS:-2}"
crop="${CROP:-128}"
esteps="${EVAL_STEPS:-20}"
mkdir -p "$out"
[ -x "$bin" ] || { echo "ab_train.sh: $bin is not built (scripts/build.sh)" >&2; exit 2; }

extra=()
[ "$mode" = superres ] && extra+=(--scales 2-4)
eval_opts=()
case "$mode" in
  superres) eval_opts+=(--scale 4) ;;
  inpaint) eval_opts+=(--holes 0.10-0.30) ;;
  colorize) ;;
  *) echo "ab_train.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac

# one arm: train to the budget, export, evaluate
run_arm() { # NAME SEED OPTIONS...
  local name="$1" seed="$2"
  shift 2
  local tag="${name}_s$seed" ck="$out/${name}_s$seed.ckpt"
  local start=()
  if [ -f "$ck" ]; then start=(--resume "$ck")
  elif [ "$init" = none ]; then start=(--mode "$mode")
  else start=(--init "$init"); fi
  # shellcheck disable=SC2068
  nice -n 19 "$bin" train "${start[@]}" --data "$data/train" --val "$data/val" --out "$ck" \
    --steps 1000000 --batch 16 --patch 64 --seed "$seed" --val-seed 1 --val-every 250 \
    --checkpoint-every 250 --budget-cpu-minutes "$minutes" --threads 1 -q "${extra[@]}" $@ \
    >"$out/$tag.log" 2>&1 || { echo "arm $tag failed: see $out/$tag.log" >&2; return 1; }
  "$bin" train -q --resume "$ck" --export "$out/$tag.safetensors" >>"$out/$tag.log" 2>&1
  nice -n 19 "$bin" eval -q --mode "$mode" --data "$data/val" --crop "$crop" --seed 0 --steps "$esteps" \
    --threads 1 -w "$out/$tag.safetensors" "${eval_opts[@]}" >"$out/$tag.eval.txt" 2>>"$out/$tag.log"
}

pids=()
for seed in $seeds; do
  for arm in "$@"; do
    name="${arm%%=*}" opts="${arm#*=}"
    [ "$name" != "$arm" ] && [ -n "$name" ] || { echo "ab_train.sh: arm '$arm' is not NAME=OPTIONS" >&2; exit 2; }
    [ "${TABLE_ONLY:-0}" = 1 ] && continue
    echo "$opts" >"$out/${name}_s$seed.opts"
    # shellcheck disable=SC2086
    run_arm "$name" "$seed" $opts &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  done
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done

# the table: the last validation row of each arm's log, and eval's mean row
{
  echo "$mode, $minutes CPU minutes per arm, from $init; val: --val-seed 1; eval: crop $crop, seed 0, $esteps steps"
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
  echo
  hdr=""
  for seed in $seeds; do for arm in "$@"; do
    f="$out/${arm%%=*}_s$seed.eval.txt"
    [ -s "$f" ] && { hdr="$(sed -n 2p "$f" | cut -d'|' -f2- | sed 's/  */ /g')"; break 2; }
  done; done
  echo "| arm | seed | options | steps | CPU min | val loss | val x0 MSE |$hdr"
  echo "|---|---|---|---|---|---|---|$(echo "$hdr" | sed 's/[^|]*|/---|/g')"
  for seed in $seeds; do
    for arm in "$@"; do
      name="${arm%%=*}" tag="${arm%%=*}_s$seed"
      row="$(awk -F, 'NR > 1 && $9 != "" {s = $1; vl = $8; vx = $9; c = $10} END {printf "%s | %.1f | %s | %s", s, c / 60, vl, vx}' "$out/$tag.ckpt.csv" 2>/dev/null || echo "- | - | - | -")"
      ev="$(grep '^mean' "$out/$tag.eval.txt" 2>/dev/null | cut -d'|' -f2- | sed 's/  */ /g' || true)"
      echo "| $name | $seed | ${arm#*=} | $row |${ev:- (no eval)}"
    done
  done
} | tee "$out/table.md"
exit $fail
