#!/usr/bin/env bash
# Does a mode need more photos? For every committed version of
# weights/MODE.safetensors (git history, oldest first), the x0 MSE of
# `diffrestore train --validate` on the training photos and on the val photos,
# on the same number of fixed crops (--val-batches, default 32 = 512 crops,
# seed 1). A falling train column beside a flat or rising val column is a
# model that memorises its photos: more steps no longer help, more photos would.
#
#   scripts/train_val_gap.sh MODE [BATCHES]     (CSV on stdout)
#
# One more model that is not in git (a checkpoint) is added with EXTRA="NAME=ARGS",
# e.g. EXTRA="ckpt=--resume ../runs/colorize/colorize.ckpt".
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:?usage: scripts/train_val_gap.sh MODE [BATCHES]}"
batches="${2:-32}"
bin="${DIFFRESTORE:-build/diffrestore}"
train="${TRAIN:-../shared/data/train}"
val="${VAL:-../shared/data/val}"
[ -x "$bin" ] || { echo "train_val_gap.sh: $bin is missing: build first (scripts/build.sh)" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=scripts/lib/val_x0.sh
. scripts/lib/val_x0.sh
x0() { # x0 WEIGHTS-ARGS DIR -> the x0 MSE
  # shellcheck disable=SC2086
  val_x0 "$bin" "$2" 1 "$batches" $1 2>>"$tmp/err"
}
row() { # row NAME STEPS WEIGHTS-ARGS
  local t v
  if ! t=$(x0 "$3" "$train") || ! v=$(x0 "$3" "$val"); then
    echo "train_val_gap.sh: validation of $1 ($3) failed: $(tail -n 1 "$tmp/err")" >&2
    exit 1
  fi
  awk -v n="$1" -v s="$2" -v t="$t" -v v="$v" -v m="$mode" 'BEGIN {printf "%s,%s,%s,%s,%s,%.1f\n", m, n, s, t, v, 100 * (v - t) / t}'
}
echo "mode,version,train_steps,train_x0_mse,val_x0_mse,val_over_train_pct"
for c in $(git log --reverse --format=%h -- "weights/$mode.safetensors"); do
  git show "$c:weights/$mode.safetensors" >"$tmp/w.safetensors" 2>/dev/null || continue
  steps=$(head -c 65536 "$tmp/w.safetensors" | grep -a -o '"train_steps":"[0-9]*"' | grep -o '[0-9]*' || echo "?")
  row "$c" "$steps" "--init $tmp/w.safetensors"
done
for e in ${EXTRA:+"$EXTRA"}; do
  row "${e%%=*}" "?" "${e#*=}"
done
