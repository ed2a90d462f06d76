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
# The superres milestones end with an annealed rate: pass --anneal 2000 (the last
# 2000 steps before STEPS at lr/2 then lr/4; docs/TRAINING.md, session 53), e.g.
#   scripts/train.sh superres 27000 --anneal 2000
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
# the recipe per mode (docs/TRAINING.md): colorize and inpaint since session 33 on
# 128-pixel crops in batches of 4 (the pixels of 16 crops of 64), nearer the 256-pixel
# tiles restore runs the network on, validated on 32 crops of 256 pixels, the ship rule's
# size; superres since milestone 12 (session 51) a base-48 U-Net on 64-pixel crops in
# batches of 16 (128-pixel crops did not move it: sessions 33-34), validated on 64 crops
# of 64 pixels as in history.csv. bf16 where the CPU has it (same quality at equal steps,
# 1.2-1.3x less CPU). A resume keeps everything but the rate and the dropout, which come
# from here too.
scratch=()
case "$mode" in
  colorize) lr=5e-5 dropout=0.1 recipe=(--seed 6 --patch 128 --batch 4) val=(--val-batches 2 --val-patch 256) ;;
  inpaint) lr=1.25e-4 dropout=0 recipe=(--seed 7 --patch 128 --batch 4) val=(--val-batches 2 --val-patch 256) ;;
  superres)
    lr=1e-4 dropout=0 val=() recipe=(--seed 7 --scales 2-4 --patch 64 --batch 16)
    scratch=(--config "base=48,mult=1,2,2,4,res=2,attn=3,groups=8" --target-scale 5.656854)
    ;;
  *) echo "train.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac
if [ -f "$ck" ]; then
  extra+=(--resume "$ck") # the checkpoint keeps its recipe; only --lr, --dropout and --steps apply
elif [ -n "${INIT:-}" ]; then
  extra+=(--init "$INIT") # continue from weights, e.g. INIT=weights/superres.safetensors (pass a new --seed)
else
  extra+=("${scratch[@]}") # from scratch: the network and target scale of the shipped lineage
fi
start=(--lr "$lr" --dropout "$dropout")
[ -f "$ck" ] || start+=(--mode "$mode" --prediction v --ema 0.999 "${recipe[@]}")
exec "$bin" train --data "$data/train" --val "$data/val" --out "$ck" --steps "$steps" "${start[@]}" \
  --precision auto --checkpoint-every 250 --val-every 500 --val-seed 1 "${val[@]}" -q "${extra[@]}" "$@"
