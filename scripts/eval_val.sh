#!/usr/bin/env bash
# The README's quality table: `diffrestore eval` of the shipped weights on the
# validation photos (never trained on), every mode, default sampler, seed 0,
# scored on the centred CROP x CROP of each photo (default 256) to keep the run
# short on a CPU. Writes the restorations and contact sheets under OUT
# (default ../runs/eval) and prints each mode's mean row with its time.
# Inpaint's baseline, OpenCV's Telea (python3-opencv), runs here: eval
# --inputs-only writes the degraded inputs and masks, scripts/telea_baseline.py
# fills them, and eval --baseline-dir scores the results beside the model's.
#
#   scripts/eval_val.sh [CROP] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
crop="${1:-256}"
out="${2:-../runs/eval}"
data="${DATA:-../shared/data/val}"
run() { # run NAME eval-options...
  local name="$1" t0
  shift
  t0=$(date +%s)
  build/diffrestore eval -q --data "$data" --crop "$crop" --seed 0 -o "$out/$name" "$@" >"$out/$name.txt"
  echo "== $name ($(($(date +%s) - t0)) s): $*"
  sed -n '1,3p;/^mean/p' "$out/$name.txt"
}
mkdir -p "$out"
run superres_x4 --mode superres --scale 4 -w weights/superres.safetensors
run superres_x3 --mode superres --scale 3 -w weights/superres.safetensors
run superres_x2 --mode superres --scale 2 -w weights/superres.safetensors
run colorize --mode colorize -w weights/colorize.safetensors
inpaint=(--mode inpaint --holes 0.10-0.30)
build/diffrestore eval -q --data "$data" --crop "$crop" --seed 0 -o "$out/inpaint" "${inpaint[@]}" --inputs-only
if /usr/bin/python3 -c "import cv2" 2>/dev/null; then
  /usr/bin/python3 scripts/telea_baseline.py "$out/inpaint" || echo "eval_val: telea_baseline.py failed: images without a result have no baseline" >&2
  inpaint+=(--baseline-dir "$out/inpaint")
else
  echo "eval_val: python3-opencv missing: no Telea baseline (apt-get install python3-opencv)" >&2
fi
run inpaint "${inpaint[@]}" -w weights/inpaint.safetensors
