#!/usr/bin/env bash
# Restore speed as a photographer sees it: seconds per output megapixel for
# each mode at realistic sizes, with the shipped weights and default settings,
# the median of RUNS runs of each job.
# Images are generated (content does not change the time): 1024x768 and a
# 12-megapixel 4000x3000.
#
#   scripts/bench_restore.sh [OUT_DIR]        (default ../runs/bench_restore)
#
# Environment: THREADS (default 2), RUNS (default 3), DIFFRESTORE (binary),
# JOBS="sr4 inpaint_scratch inpaint_10pct inpaint12_scratch colorize colorize12_r384"
# Opt-in jobs (name them in JOBS): sr4_fast (superres --preset fast), sr4_bf16
# (superres --precision bf16), yardstick_sr4 (the one-pass ESRGAN-medium x4 of
# scripts/yardstick_sr on TensorFlow.js' WASM backend, same input as sr4; needs
# node and npm, runs `npm ci` there if node_modules is absent, else the table
# says "not run: reason").
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-../runs/bench_restore}"
bin="${DIFFRESTORE:-build/diffrestore}"
mk="${MAKE_IMAGE:-build/tests/make_tiny_weights}"
threads="${THREADS:-2}"
runs="${RUNS:-3}"
jobs="${JOBS:-sr4 inpaint_scratch inpaint_10pct inpaint12_scratch colorize colorize12_r384}"
mkdir -p "$out"
[ -f "$out/p1024.png" ] || "$mk" --image "$out/p1024.png" 1024 768 3 8 5
[ -f "$out/p256.png" ] || "$mk" --image "$out/p256.png" 256 192 3 8 6
[ -f "$out/p12mp.png" ] || "$mk" --image "$out/p12mp.png" 4000 3000 3 8 7
# 10% of a 1024x768 photo in holes: ten 100x79 blots spread over the frame
holes10=()
for i in 0 1 2 3 4 5 6 7 8 9; do holes10+=(--box "$((i * 97 + 10)),$(((i * 313) % 680 + 5)),100,79"); done

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
time_job() { # time_job NAME OUTPUT_MEGAPIXELS command...
  local name="$1" mp="$2" t s=()
  shift 2
  for _ in $(seq 1 "$runs"); do
    /usr/bin/time -o "$out/.time" -f "%e" "$@" >/dev/null 2>&1 || { echo "bench_restore.sh: $name failed: $*" >&2; return 1; }
    t=$(tail -1 "$out/.time")
    s+=("$t")
  done
  local med
  med=$(printf '%s\n' "${s[@]}" | median)
  printf '| %s | %.2f | %s | %.1f | %s |\n' "$name" "$mp" "$med" "$(awk -v a="$med" -v b="$mp" 'BEGIN {print a / b}')" "${s[*]}"
}
{
  echo "diffrestore restore speed, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $threads threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) at start"
  echo
  echo "| job | output MP | median s | s per output MP | runs (s) |"
  echo "|---|---|---|---|---|"
  for j in $jobs; do
    case "$j" in
      sr4) time_job "superres x4, 256x192 -> 1024x768" 0.786 "$bin" superres -q --threads "$threads" --scale 4 -w weights/superres.safetensors "$out/p256.png" -o "$out/o_sr4.png" --overwrite ;;
      inpaint_scratch) time_job "inpaint 1024x768, one 8-px scratch" 0.786 "$bin" inpaint -q --threads "$threads" -w weights/inpaint.safetensors --box 0,380,1024,8 "$out/p1024.png" -o "$out/o_in1.png" --overwrite ;;
      inpaint_10pct) time_job "inpaint 1024x768, 10% holes (10 blots)" 0.786 "$bin" inpaint -q --threads "$threads" -w weights/inpaint.safetensors "${holes10[@]}" "$out/p1024.png" -o "$out/o_in10.png" --overwrite ;;
      inpaint12_scratch) time_job "inpaint 4000x3000, one 8-px scratch" 12.0 "$bin" inpaint -q --threads "$threads" -w weights/inpaint.safetensors --box 0,1500,4000,8 "$out/p12mp.png" -o "$out/o_in12.png" --overwrite ;;
      colorize) time_job "colorize 1024x768 (full size)" 0.786 "$bin" colorize -q --threads "$threads" --render-size 0 -w weights/colorize.safetensors "$out/p1024.png" -o "$out/o_c.png" --overwrite ;;
      colorize12_r384) time_job "colorize 4000x3000 at --render-size 384" 12.0 "$bin" colorize -q --threads "$threads" --render-size 384 -w weights/colorize.safetensors "$out/p12mp.png" -o "$out/o_c12.png" --overwrite ;;
      sr4_fast) time_job "superres x4 --preset fast, 256x192 -> 1024x768" 0.786 "$bin" superres -q --threads "$threads" --scale 4 --preset fast -w weights/superres.safetensors "$out/p256.png" -o "$out/o_sr4f.png" --overwrite ;;
      sr4_bf16) time_job "superres x4 --precision bf16, 256x192 -> 1024x768" 0.786 "$bin" superres -q --threads "$threads" --scale 4 --precision bf16 -w weights/superres.safetensors "$out/p256.png" -o "$out/o_sr4b.png" --overwrite ;;
      yardstick_sr4)
        name="yardstick: ESRGAN-medium x4 (TF.js WASM), 256x192 -> 1024x768"
        if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
          echo "bench_restore.sh: yardstick_sr4 skipped: node/npm not found" >&2
          echo "| $name | 0.79 | not run: node/npm not found | | |"
        elif [ ! -d scripts/yardstick_sr/node_modules ] && ! (cd scripts/yardstick_sr && npm ci --no-audit --no-fund >&2); then
          echo "bench_restore.sh: yardstick_sr4 skipped: npm ci failed in scripts/yardstick_sr" >&2
          echo "| $name | 0.79 | not run: npm ci failed | | |"
        else
          time_job "$name" 0.786 node scripts/yardstick_sr/upscale.mjs "$out/p256.png" "$out/o_ysr4.png" "$threads"
        fi ;;
      *) echo "bench_restore.sh: unknown job $j" >&2; exit 2 ;;
    esac
  done
} | tee "$out/table.md"
