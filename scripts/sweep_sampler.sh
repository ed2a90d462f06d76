#!/usr/bin/env bash
# Sampler sweep on the validation photos: for each (sampler, steps, eta,
# spacing) configuration, `diffrestore eval` at a fixed seed, and its mean row
# (docs/TUNING.md records the results).
#
#   scripts/sweep_sampler.sh MODE WEIGHTS [EXTRA EVAL OPTIONS...]
#
# e.g. scripts/sweep_sampler.sh superres weights/superres.safetensors --scale 4 --crop 128
# Configurations: $CONFIGS, a space-separated list of sampler:steps:eta:spacing
# (default below). Each line of output: the configuration, then eval's mean row.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:?usage: scripts/sweep_sampler.sh MODE WEIGHTS [eval options]}"
w="${2:?weights}"
shift 2
data="${DATA:-../shared/data/val}"
configs=${CONFIGS:-"ddim:10:0:trailing ddim:20:0:trailing ddim:50:0:trailing ddim:20:0:leading dpmpp:10:0:trailing dpmpp:20:0:trailing ddim:20:1:trailing ddpm:50:0:trailing"}
for c in $configs; do
  IFS=: read -r s n e sp <<<"$c"
  t0=$(date +%s)
  row=$(${DIFFRESTORE:-build/diffrestore} eval -q --mode "$mode" --data "$data" -w "$w" --sampler "$s" --steps "$n" --eta "$e" \
    --spacing "$sp" --seed 0 "$@" | grep '^mean')
  printf '%-22s %4ss | %s\n' "$c" "$(($(date +%s) - t0))" "$row"
done
