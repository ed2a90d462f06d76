#!/usr/bin/env bash
# Train (or resume) the shipped model of one mode with the recipe the weights in
# weights/ are trained with now (docs/TRAINING.md; a resume takes --lr from here,
# everything else from its checkpoint). Run it in the background:
#   nohup scripts/train.sh superres > train-superres.log 2>&1 &
# The checkpoint lives in $RUNS (default ../runs, outside the work tree) and
# is resumed automatically; Ctrl-C / SIGTERM write it before stopping.
# Options after STEPS go to `diffrestore train` (e.g. --threads 1);
# DIFFRESTORE names another binary (a copy, so rebuilds do not disturb it).
# Without a checkpoint, INIT=WEIGHTS starts from those weights (train --init).
# Validation always uses --val-seed 1, so val numbers compare across sessions
# and seeds (docs/training/history.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:?usage: scripts/train.sh colorize|inpaint|superres [STEPS] [extra train options]}"
steps="${2:-12000}"
shift; [ $# -gt 0 ] && shift
bin="${DIFFRESTORE:-build/diffrestore}"
runs="${RUNS:-../runs}"
data="${DATA:-../shared/data}"
mkdir -p "$runs/$mode"
ck="$runs/$mode/$mode.ckpt"
extra=()
# the recipe per mode, as chosen by the equal-time A/Bs (docs/TRAINING.md, rounds 2-4);
# bf16 where the CPU has it (same quality at equal steps, 1.2-1.3x less CPU)
case "$mode" in
  colorize) recipe=(--batch 8 --lr 1e-4) ;;
  inpaint) recipe=(--batch 16 --lr 5e-4) ;;
  superres) recipe=(--batch 16 --lr 2e-4 --scales 2-4) ;;
  *) echo "train.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac
if [ -f "$ck" ]; then
  extra+=(--resume "$ck") # the checkpoint keeps its recipe; only --lr and --steps apply
elif [ -n "${INIT:-}" ]; then
  extra+=(--init "$INIT") # continue from weights, e.g. INIT=weights/superres.safetensors (pass a new --seed)
fi
start=(--mode "$mode" --prediction v --patch 64 --ema 0.999 --seed 1 "${recipe[@]}")
[ -f "$ck" ] && start=("${recipe[@]:2:2}") # --lr alone: the rest is the checkpoint's
exec "$bin" train --data "$data/train" --val "$data/val" --out "$ck" --steps "$steps" "${start[@]}" \
  --precision auto --checkpoint-every 250 --val-every 500 --val-seed 1 -q "${extra[@]}" "$@"
