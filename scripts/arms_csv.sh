#!/usr/bin/env bash
# docs/training/colorize_arms.csv from the checkpoint CSVs (CKPT.csv, written by
# `diffrestore train`) of from-scratch design arms: one row per validation
# point, tagged with the arm's name. The columns are found by their names in
# the CSV's header (step, cpu_seconds, val_x0_mse), which repeats on resume.
#   scripts/arms_csv.sh NAME=CKPT.csv [NAME=CKPT.csv ...] > docs/training/colorize_arms.csv
# Exit: 0, 1 a file unreadable or without those columns, 2 usage.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/arms_csv.sh NAME=CKPT.csv ..." >&2; exit 2; }
echo "arm,step,cpu_hours,val_x0_mse"
for a in "$@"; do
  case "$a" in *=*) ;; *) echo "arms_csv.sh: '$a' is not NAME=CKPT.csv" >&2; exit 2 ;; esac
  name="${a%%=*}" f="${a#*=}"
  [ -r "$f" ] || { echo "arms_csv.sh: cannot read $f" >&2; exit 1; }
  awk -F, -v n="$name" -v f="$f" '
    $1 == "step" { for (i = 1; i <= NF; i++) col[$i] = i; next }
    !("val_x0_mse" in col) || !("cpu_seconds" in col) {
      printf "arms_csv.sh: %s has no step, cpu_seconds and val_x0_mse header\n", f > "/dev/stderr"; bad = 1; exit 1 }
    $col["val_x0_mse"] != "" { printf "%s,%s,%.3f,%s\n", n, $1, $col["cpu_seconds"] / 3600, $col["val_x0_mse"] }
    END { if (bad) exit 1 }' "$f"
done
