#!/usr/bin/env bash
# Train (or resume) the shipped model of one mode, exactly as the weights in
# weights/ were trained; see docs/TRAINING.md. Run it in the background:
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
[ "$mode" = superres ] && extra+=(--scales 2-4)
if [ -f "$ck" ]; then
  extra+=(--resume "$ck")
elif [ -n "${INIT:-}" ]; then
  extra+=(--init "$INIT") # continue from weights, e.g. INIT=weights/superres.safetensors (pass a new --seed)
fi
exec "$bin" train --mode "$mode" --data "$data/train" --val "$data/val" --out "$ck" \
  --prediction v --steps "$steps" --batch 16 --patch 64 --lr 2e-4 --ema 0.999 --seed 1 \
  --checkpoint-every 250 --val-every 500 --val-seed 1 -q "${extra[@]}" "$@"
