#!/usr/bin/env bash
# docs/TRAINING.md's plot: val x0 MSE against cumulative training CPU-hours,
# one panel per mode, across all sessions, from docs/training/history.csv
# (milestones, and the validation points of each session's runs).
#   scripts/plot_training.sh [OUT.png]   (default docs/training/val_x0_mse.png)
# Needs gnuplot (Debian: gnuplot-nox).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/training/val_x0_mse.png}"
csv=docs/training/history.csv
command -v gnuplot >/dev/null || { echo "plot_training.sh: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for m in colorize inpaint superres; do
  # milestones (what column starts with "milestone") and run points, as "cpu_hours val_x0_mse"
  awk -F, -v m="$m" '!/^#/ && $1 == m && $7 ~ /^milestone/ {print $4, $6}' "$csv" >"$tmp/$m.ms"
  awk -F, -v m="$m" '!/^#/ && $1 == m && $7 !~ /^milestone/ {print $4, $6, $7}' "$csv" | sort -t' ' -k3,3 -k1,1g >"$tmp/$m.run"
done
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
       "$tmp/".m.".ms" using 1:2 with points pt 5 ps 1.5 lc rgb "black" title "shipped milestones"
}
unset multiplot
GP
echo "wrote $out"
