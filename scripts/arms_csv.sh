#!/usr/bin/env bash
# docs/training/colorize_arms.csv from the checkpoint CSVs of from-scratch
# design arms: one row per validation point (the 64 fixed crops of val seed 1,
# as history.csv), tagged with the arm's name.
#   scripts/arms_csv.sh NAME=CKPT.csv [NAME=CKPT.csv ...] > docs/training/colorize_arms.csv
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/arms_csv.sh NAME=CKPT.csv ..." >&2; exit 2; }
echo "arm,step,cpu_hours,val_x0_mse"
for a in "$@"; do
  name="${a%%=*}" f="${a#*=}"
  [ -r "$f" ] || { echo "arms_csv.sh: cannot read $f" >&2; exit 1; }
  # columns: step ... val_x0_mse (9), cpu_seconds (10); the header repeats on resume
  awk -F, -v n="$name" '$1 != "step" && $9 != "" {printf "%s,%s,%.3f,%s\n", n, $1, $10 / 3600, $9}' "$f"
done
