#!/usr/bin/env bash
# Restore outputs bit for bit equal to those of another revision, on this
# machine: the safety net of a refactor that must change no behaviour (issue 18).
#
#   scripts/golden_check.sh [BASE]     (default: the commit named in tests/golden_base)
#
# Builds BASE's CLI from `git archive` in build-golden/ (Release, as scripts/build.sh),
# makes tiny random-init weights and test images with this tree's
# make_tiny_weights (the same files for both binaries), then runs every mode
# through both binaries (samplers, tiling, render size, masks and alpha, scales
# and sizes, 8- and 16-bit, several samples and their mean) at 1, 2 and 3
# threads, in fp32 and, where the CPU has it, bf16, and compares the outputs'
# samples exactly (make_tiny_weights --compare: largest difference 0, same layout). Exit 1 on the first list of differences, 0 when all agree.
# Goldens differ between CPUs (kernel paths, OpenBLAS's core), so they are
# never stored: both sides are computed here.
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-$(grep -v '^#' tests/golden_base | head -1)}"
git rev-parse --verify -q "$base^{commit}" >/dev/null || { echo "golden_check: unknown revision '$base'" >&2; exit 2; }
[ -x build/diffrestore ] && [ -x build/tests/make_tiny_weights ] || scripts/build.sh
out=build-golden
rm -rf "$out/src" "$out/run"
mkdir -p "$out/src" "$out/run"
git archive "$base" | tar -x -C "$out/src"
echo "golden_check: building $(git rev-parse --short "$base") in $out/build"
cmake -S "$out/src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/build" -j"$(nproc)" --target diffrestore_cli >/dev/null
# AMX sums bf16 products in another order than AVX512-BF16 (test_bf16 holds
# the two to fp32 rounding of each other); both sides run the kernels the
# base has
export DIFFRESTORE_AMX=0
A="$out/build/diffrestore" B=build/diffrestore MK=build/tests/make_tiny_weights R="$out/run"
for m in colorize inpaint superres; do "$MK" "$m" "$R/$m.safetensors"; done
"$MK" --image "$R/rgb.png" 150 110 3 8 1        # tiled at --tile 64
"$MK" --image "$R/gray16.png" 61 47 1 16 2
"$MK" --image "$R/rgba.png" 70 50 4 8 3         # alpha: inpaint's holes
"$MK" --image "$R/small.png" 40 30 3 8 4
"$MK" --mask "$R/mask.png" 150 110 20 30 50 12
cases=(
  "colorize|rgb.png|--steps 3"
  "colorize|rgb.png|--steps 3 --tile 64 --sampler dpmpp-sde --eta 1"
  "colorize|gray16.png|--steps 3 --render-size 32"
  "colorize|small.png|--steps 2 --samples 2 --reduce mean"
  "inpaint|rgb.png|--steps 3 --mask $R/mask.png --tile 64"
  "inpaint|rgb.png|--steps 3 --box 5,5,20,20 --box 100,80,40,20 --sampler ddpm"
  "inpaint|rgba.png|--steps 3"
  "superres|small.png|--steps 3 --scale 2"
  "superres|small.png|--steps 2 --scale 3 --sampler dpmpp"
  "superres|gray16.png|--steps 2 --width 150"
  "superres|rgb.png|--steps 2 --scale 2 --tile 64"
)
precisions=(fp32)
if "$B" colorize --precision bf16 -q -w "$R/colorize.safetensors" --steps 1 "$R/small.png" -o "$R/probe.png" 2>&1 |
    grep -q warning; then :; else precisions+=(bf16); fi
n=0 bad=0
for c in "${cases[@]}"; do
  IFS='|' read -r mode img opts <<<"$c"
  for prec in "${precisions[@]}"; do
    for t in 1 2 3; do
      n=$((n + 1))
      # shellcheck disable=SC2086
      "$A" "$mode" -q -t "$t" --precision "$prec" -w "$R/$mode.safetensors" $opts "$R/$img" -o "$R/a_$n.png"
      # shellcheck disable=SC2086
      "$B" "$mode" -q -t "$t" --precision "$prec" -w "$R/$mode.safetensors" $opts "$R/$img" -o "$R/b_$n.png"
      # the pixels, not the files: the outputs' provenance (XMP) names the version
      if [ "$("$MK" --compare "$R/a_$n.png" "$R/b_$n.png" 2>/dev/null)" != 0 ]; then
        bad=$((bad + 1))
        echo "DIFFERS: $mode $img $opts, $t threads, $prec" >&2
      fi
    done
  done
done
echo "golden_check: $((n - bad)) of $n outputs bit-identical to $(git rev-parse --short "$base") (${precisions[*]}; 1-3 threads)"
[ "$bad" -eq 0 ]
