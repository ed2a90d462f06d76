#!/usr/bin/env bash
# The train/val gap in samples, beside scripts/train_val_gap.sh's gap in x0 MSE.
# For each model, its mean estimate: one DDIM step from t = 999, unguided,
# which returns the network's estimate of the conditional mean E[x0 | y]
# (colorize: the chroma; superres: the HR image), the output that is right on
# average, with no sampler in the way (against colorize's default sampler it
# is within 0.15 dB either way: docs/TRAINING.md, session 47). Scored on the
# centred 256 crops of the training photos (seed 0) and of the val photos
# (seeds 0, 1 and 2); the crops cover the photos' middles at restore's own
# scale. A mean estimate that rises on the training photos while it stays
# flat on val is a model that has learned its photos and nothing more of the
# task: more photos, not more steps, move it. Scores are means over the
# images, leaving out any image that the baseline already restores exactly
# (99 dB, the cap: a gray photo among colorize's training photos), which would
# outweigh all the others.
#
#   scripts/sample_gap.sh MODE NAME=WEIGHTS [NAME=WEIGHTS...]   (CSV on stdout)
#
# MODE is colorize (chroma PSNR over the gray input; colourfulness ratio) or
# superres (x4 PSNR over bicubic; HF ratio). Environment: DIFFRESTORE (the
# binary, default build/diffrestore), TRAIN and VAL (the photo folders),
# CROP (default 256), VAL_SEEDS (default "0 1 2"), THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/sample_gap.sh colorize|superres NAME=WEIGHTS [NAME=WEIGHTS...]"
mode="${1:?$usage}"
shift
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
bin="${DIFFRESTORE:-build/diffrestore}"
train="${TRAIN:-../shared/data/train}"
val="${VAL:-../shared/data/val}"
crop="${CROP:-256}"
threads="${THREADS:-1}"
read -r -a val_seeds <<<"${VAL_SEEDS:-0 1 2}"
# colorize at one render size for every model (older weights carry none), so
# that the rows compare
case "$mode" in
  colorize) acc=chroma_psnr real=colorfulness_ratio extra=(--render-size 384) ;;
  superres) acc=psnr real=hf_ratio extra=(--scale 4) ;;
  *) echo "sample_gap.sh: mode '$mode' is not colorize or superres" >&2; exit 2 ;;
esac
[ -x "$bin" ] || { echo "sample_gap.sh: $bin is missing: build first (scripts/build.sh)" >&2; exit 2; }
for d in "$train" "$val"; do
  [ -e "$d" ] || { echo "sample_gap.sh: $d is missing" >&2; exit 2; }
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
row() { # row NAME WEIGHTS SET DIR SEED
  if ! "$bin" eval -q --json --mode "$mode" --data "$4" --crop "$crop" --seed "$5" -t "$threads" \
    --sampler ddim --eta 0 --steps 1 --guidance 1 "${extra[@]}" -w "$2" >"$tmp/out" 2>"$tmp/err"; then
    echo "sample_gap.sh: eval of $1 ($2) on $4 failed: $(tail -n 1 "$tmp/err")" >&2
    exit 1
  fi
  local steps
  steps=$("$bin" info "$2" 2>/dev/null | awk '$1 == "train_steps" && $2 == "=" {print $3}')
  # per image, not eval's mean: an image the baseline already restores
  # exactly (the 99 dB cap: a gray photo for colorize) has nothing to restore,
  # and its 99 dB would outweigh every other image of the mean
  awk -v n="$1" -v s="${steps:-?}" -v set="$3" -v seed="$5" -v mo="$mode" -v acc="$acc" -v real="$real" '
    function get(sec, key,   t) {
      if (!match($0, "\"" sec "\":\\{[^}]*\"" key "\":[-0-9.e+]+")) return "";
      t = substr($0, RSTART, RLENGTH); sub(/.*:/, "", t); return t
    }
    /"file":/ && /"model":/ {
      a = get("model", acc); b = get("baseline", acc)
      if (b != "" && b + 0 >= 99) { skipped++; next }
      r = get("model", real)
      if (a == "" || b == "" || r == "") { print "sample_gap.sh: an image of " n " has no " acc " or " real > "/dev/stderr"; exit 1 }
      k++; sa += a; sb += b; sr += r
    }
    END {
      if (k == 0) { print "sample_gap.sh: no scored image in the eval of " n > "/dev/stderr"; exit 1 }
      printf "%s,%s,%s,%s,%s,%d,%d,%.2f,%.2f,%.2f,%.3f\n", mo, n, s, set, seed, k, skipped, sa / k, sb / k,
        (sa - sb) / k, sr / k
    }' "$tmp/out" || exit 1
}
for nw in "$@"; do
  if [ "${nw%%=*}" = "$nw" ] || [ ! -r "${nw#*=}" ]; then
    echo "sample_gap.sh: '$nw' is not NAME=WEIGHTS with a readable file" >&2
    exit 2
  fi
done
echo "mode,name,train_steps,photos,seed,images,skipped,${acc},baseline_${acc},over_baseline_db,${real}"
for nw in "$@"; do
  name="${nw%%=*}" w="${nw#*=}"
  row "$name" "$w" train "$train" 0
  for s in "${val_seeds[@]}"; do row "$name" "$w" val "$val" "$s"; done
done
