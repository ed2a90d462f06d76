# shellcheck shell=bash
# Sourced by scripts/ship_check.sh and scripts/train_val_gap.sh: the one way the
# scripts measure a model, the x0 MSE of `diffrestore train --validate` on fixed
# crops (one thread, bf16 where the CPU has it, as training validates).
#
#   val_x0 BIN DIR SEED BATCHES MODEL-ARG...
#
# MODEL-ARG: `--init WEIGHTS` or `--resume CKPT` (validated on its EMA). Prints
# the x0 MSE on stdout. On failure prints the binary's last error line on
# stderr and returns 1.
val_x0() {
  local bin="$1" dir="$2" seed="$3" batches="$4" out err rc=0
  shift 4
  err=$(mktemp)
  out=$("$bin" train --validate "$@" --val "$dir" --val-seed "$seed" --val-batches "$batches" \
    --threads 1 --precision auto 2>"$err") || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 1 "$err" >&2
    rm -f "$err"
    return 1
  fi
  rm -f "$err"
  out=$(awk '/val_x0_mse/ {print $4}' <<<"$out")
  if [ -z "$out" ]; then
    echo "no val_x0_mse in the output of $bin train --validate" >&2
    return 1
  fi
  echo "$out"
}
