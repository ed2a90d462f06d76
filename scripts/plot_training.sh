#!/usr/bin/env bash
# docs/TRAINING.md's plot: val x0 MSE against cumulative training CPU-hours,
# one panel per mode, across all sessions, from docs/training/history.csv
# (milestones, and the validation points of each session's runs); and beside
# it the train/val gap of each milestone against its steps, from
# docs/training/train_val_gap.csv (scripts/train_val_gap.sh): a falling train
# line under a flat val line is a model short of photos, not of steps. And
# the from-scratch colorize arms of docs/training/colorize_arms.csv
# (scripts/arms_csv.sh: U-Net size and photo count) against training steps,
# beside the shipped base-32 lineage's points. And the same gap in samples,
# from docs/training/sample_gap.csv (scripts/sample_gap.sh: the model's mean
# estimate over the baseline on the training and the val photos, by steps,
# one line per lineage; a NAME-STEP name's lineage is the part before the
# last "-").
#   scripts/plot_training.sh [OUT.png [GAP.png [ARMS.png [SGAP.png]]]]
#   (default docs/training/val_x0_mse.png, train_val_gap.png, colorize_arms.png,
#   sample_gap.png)
# Needs gnuplot (Debian: gnuplot-nox).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/training/val_x0_mse.png}"
gap_out="${2:-docs/training/train_val_gap.png}"
arms_out="${3:-docs/training/colorize_arms.png}"
sgap_out="${4:-docs/training/sample_gap.png}"
arms_csv=docs/training/colorize_arms.csv
sgap_csv=docs/training/sample_gap.csv
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
# sample gap: per lineage and photo set, "steps dB" (val: the mean over its seeds)
sg_colorize="" sg_superres="" sg_modes=""
if [ -r "$sgap_csv" ]; then
  awk -F, -v d="$tmp" '!/^#/ && $1 != "mode" {
      l = $2; sub(/-[^-]*$/, "", l); gsub(/[^A-Za-z0-9]+/, "_", l)
      k = $1 "|" l "|" $4 "|" $3; s[k] += $10; n[k]++; f[k] = d "/sg-" $1 "-" l "-" $4
    }
    END { for (k in s) { split(k, a, "|"); print a[4], s[k] / n[k] > f[k] } }' "$sgap_csv"
  for f in "$tmp"/sg-*; do
    [ -e "$f" ] || continue
    sort -g -o "$f" "$f"
    case "${f##*/}" in
      sg-colorize-*) sg_colorize="$sg_colorize ${f##*/}" ;;
      sg-superres-*) sg_superres="$sg_superres ${f##*/}" ;;
    esac
  done
fi
[ -z "$sg_colorize" ] || sg_modes="colorize"
[ -z "$sg_superres" ] || sg_modes="$sg_modes superres"
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
if ("$sg_modes" ne "") {
  set output "$sgap_out"
  set terminal pngcairo size 1000,480 font ",10" noenhanced
  set multiplot layout 1,words("$sg_modes") title "the model's mean estimate (1 DDIM step from t = 999, unguided) over the baseline, centred 256 crops: training photos against val photos"
  unset logscale y
  set autoscale y
  set offsets 0, 0, 0.3, 0.3
  set xrange [0:*]
  set xlabel "training steps"
  set key bottom right
  do for [m in "$sg_modes"] {
    set title m
    set ylabel (m eq "colorize" ? "chroma PSNR over the gray input, dB" : "x4 PSNR over bicubic, dB")
    target = (m eq "colorize" ? 1.0 : 0.5)
    files = (m eq "colorize" ? "$sg_colorize" : "$sg_superres")
    # one colour per lineage (its -train and -val files sort next to each other), train dashed
    plot for [i=1:words(files)] "$tmp/".word(files, i) using 1:2 \
           with linespoints lc (i + 1) / 2 pt (strstrt(word(files, i), "-train") ? 7 : 5) \
           dt 1 + (strstrt(word(files, i), "-train") > 0) title word(files, i)[5+strlen(m):], \
         target with lines lc rgb "red" dt 3 title "issue 15's target (val)"
  }
  unset multiplot
}
GP
if [ -n "$arms" ]; then echo "wrote $out, $gap_out and $arms_out"; else echo "wrote $out and $gap_out"; fi
[ -z "$sg_modes" ] || echo "wrote $sgap_out"
