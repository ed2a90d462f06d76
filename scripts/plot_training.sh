#!/usr/bin/env bash
# docs/TRAINING.md's plot: val x0 MSE against cumulative training CPU-hours,
# one panel per mode, across all sessions, from docs/training/history.csv
# (milestones, and the validation points of each session's runs); and beside
# it the train/val gap of each milestone against its steps, from
# docs/training/train_val_gap.csv (scripts/train_val_gap.sh): a falling train
# line under a flat val line is a model short of photos, not of steps. And
# the from-scratch colorize arms of docs/training/colorize_arms.csv
# (scripts/arms_csv.sh: U-Net size and photo count) against training steps,
# beside the shipped base-32 lineage's points.
#   scripts/plot_training.sh [OUT.png [GAP.png [ARMS.png]]]
#   (default docs/training/val_x0_mse.png, train_val_gap.png, colorize_arms.png)
# Needs gnuplot (Debian: gnuplot-nox).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/training/val_x0_mse.png}"
gap_out="${2:-docs/training/train_val_gap.png}"
arms_out="${3:-docs/training/colorize_arms.png}"
arms_csv=docs/training/colorize_arms.csv
csv=docs/training/history.csv
gap_csv=docs/training/train_val_gap.csv
command -v gnuplot >/dev/null || { echo "plot_training.sh: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for m in colorize inpaint superres; do
  # milestones (what column starts with "milestone") and run points, as "cpu_hours val_x0_mse"
  awk -F, -v m="$m" '!/^#/ && $1 == m && $7 ~ /^milestone/ {print $4, $6}' "$csv" >"$tmp/$m.ms"
  # held candidates (the note says "held") are end points of branches that did
  # not ship: points, not joined to the runs' line
  awk -F, -v m="$m" '!/^#/ && $1 == m && $7 !~ /^milestone/ && $7 !~ /held/ {print $4, $6, $7}' "$csv" |
    sort -t' ' -k3,3 -k1,1g >"$tmp/$m.run"
  awk -F, -v m="$m" '!/^#/ && $1 == m && $7 !~ /^milestone/ && $7 ~ /held/ {print $4, $6}' "$csv" >"$tmp/$m.held"
  [ -s "$tmp/$m.held" ] || echo "nan nan" >"$tmp/$m.held"
  awk -F, -v m="$m" '!/^#/ && $1 == m {print $3, $4, $5}' "$gap_csv" | sort -g >"$tmp/$m.gap"
done
# the base-32 lineage by steps (runs and milestones, not held branches), and one file per arm
awk -F, '!/^#/ && $1 == "colorize" && $7 !~ /held/ {print $3, $6}' "$csv" | sort -g >"$tmp/lineage"
arms=""
if [ -r "$arms_csv" ]; then
  arms=$(awk -F, 'NR > 1 {print $1}' "$arms_csv" | sort -u | tr '\n' ' ')
  for a in $arms; do awk -F, -v a="$a" 'NR > 1 && $1 == a {print $2, $4}' "$arms_csv" >"$tmp/arm-$a"; done
fi
gnuplot <<GP
set terminal pngcairo size 1500,480 font ",10"
set output "$out"
set multiplot layout 1,3 title "val x0 MSE (val-seed 1) against training CPU-hours, all sessions"
set logscale y
set grid
set xrange [0:*]
set xlabel "cumulative training CPU-hours"
set ylabel "val x0 MSE"
set key top right
do for [m in "colorize inpaint superres"] {
  set title m
  plot "$tmp/".m.".run" using 1:2 with linespoints pt 7 ps 0.5 title "runs (validation points)", \
       "$tmp/".m.".ms" using 1:2 with points pt 5 ps 1.5 lc rgb "black" title "shipped milestones", \
       "$tmp/".m.".held" using 1:2 with points pt 9 ps 1.2 lc rgb "red" title "held candidates"
}
unset multiplot
set output "$gap_out"
set multiplot layout 1,3 title "x0 MSE on the training photos and on the val photos (512 fixed crops each), by milestone"
set xlabel "training steps"
set ylabel "x0 MSE"
do for [m in "colorize inpaint superres"] {
  set title m
  plot "$tmp/".m.".gap" using 1:2 with linespoints pt 7 title "train photos", \
       "$tmp/".m.".gap" using 1:3 with linespoints pt 5 title "val photos"
}
unset multiplot
if ("$arms" ne "") {
  set output "$arms_out"
  set size 1,1
  set title "colorize from scratch: val x0 MSE (val-seed 1, 64 crops) against steps"
  set xlabel "training steps"
  set ylabel "val x0 MSE"
  set logscale y
  set xrange [0:*]
  set yrange [*:0.011]
  plot "$tmp/lineage" using 1:2 with linespoints pt 7 ps 0.5 lc rgb "gray50" title "base 32, 67 photos (the shipped lineage; recipes change)", \
       for [a in "$arms"] "$tmp/arm-".a using 1:2 with linespoints pt 5 ps 0.6 title a
}
GP
if [ -n "$arms" ]; then echo "wrote $out, $gap_out and $arms_out"; else echo "wrote $out and $gap_out"; fi
