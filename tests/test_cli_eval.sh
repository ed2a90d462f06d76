#!/usr/bin/env bash
# diffrestore eval through the CLI: help, usage errors (exit 2), each mode on
# two tiny generated images (the table, --json, --out's outputs and sheets),
# determinism, the Telea baseline (scripts/telea_baseline.py on --inputs-only's
# files, scored through --baseline-dir; skipped with a note without it), a bad file in
# the data (exit 1, the others still evaluated), --crop, --samples/--reduce,
# an output directory inside the data (refused).
# Tiny random-init weights keep it fast (--steps 2).
# Usage: test_cli_eval.sh path/to/diffrestore path/to/make_tiny_weights SOURCE_DIR
set -u
BIN="$1"
MK="$2"
SRC="$3"
. "$(dirname "$0")/lib.sh"
tmp_make
cli_clean_env
lines_are() { # lines_are FILE N description
  local got
  got=$(wc -l <"$1")
  if [ "$got" -eq "$2" ]; then ok; else bad "$3: $got lines, want $2"; fi
}

# A Python with the json module, for checking --json (grep otherwise).
PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c "import json" 2>/dev/null; then PY="$p"; break; fi
done
# json_check FILE "python expression over L (the parsed lines)" description
json_check() {
  if [ -z "$PY" ]; then
    # without Python: every line is one {...} object
    if grep -qv '^{.*}$' "$1"; then bad "$3: a line is not a JSON object"; else ok; fi
    return
  fi
  if "$PY" - "$1" "$2" <<'EOF'
import json, math, sys
L = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
ok = eval(sys.argv[2], {"L": L, "math": math})
sys.exit(0 if ok else 1)
EOF
  then ok; else bad "$3: $2 is false for $(head -c 800 "$1")"; fi
}
telea_available() { /usr/bin/python3 -c "import cv2" >/dev/null 2>&1; }

# ------------------------------------------------------------------ fixtures
W="$TMP/w"
D="$TMP/data"
mkdir -p "$W" "$D/sub"
for m in colorize inpaint superres denoise; do
  "$MK" "$m" "$W/$m.safetensors" || { echo "make_tiny_weights $m failed" >&2; exit 1; }
done
"$MK" --image "$D/a.png" 24 24 3 8 1 || exit 1
"$MK" --image "$D/sub/b.jpg" 24 24 3 8 2 || exit 1
S=(--steps 2)

# ------------------------------------------------------------------ help and usage
expect 0 "eval --help" "$BIN" eval --help
for s in "Usage: diffrestore eval" "--mode M" "--data DIR" "--scale S" "(default 4)" "--holes A-B" "(default 0.10-0.30)" \
  "--crop N" "(default 0: the whole image)" "--steps N" "--preset P" "sampler steps (default: the preset's)" "--sampler S" "--seed N" \
  "(default 0)" "--samples N" "--reduce mean" "--out DIR" "--json" "--baseline-dir DIR" "--inputs-only" "telea_baseline.py" "-w, --weights" \
  "python3-opencv" "Exit codes"; do
  contains "$TMP/out" "$s" "eval --help lists $s"
done
expect 0 "top-level help" "$BIN" --help
contains "$TMP/out" "eval" "top-level help lists eval"
expect 2 "no --mode" "$BIN" eval --data "$D"
contains "$TMP/err" "--mode is required" "no --mode message"
expect 2 "bad --mode" "$BIN" eval --mode paint --data "$D"
expect 2 "no --data" "$BIN" eval --mode colorize
expect 2 "--scale with colorize" "$BIN" eval --mode colorize --data "$D" --scale 2
expect 2 "--holes with superres" "$BIN" eval --mode superres --data "$D" --holes 0.1-0.2
expect 2 "--noise with colorize" "$BIN" eval --mode colorize --data "$D" --noise 10
contains "$TMP/err" "--noise and --jpeg are only for denoise" "--noise message"
expect 2 "bad --jpeg" "$BIN" eval --mode denoise --data "$D" --jpeg 101
expect 2 "--tile too small" "$BIN" eval --mode superres --data "$D" --tile 3
contains "$TMP/err" "--tile needs" "--tile usage error explained"
expect 2 "bad --holes" "$BIN" eval --mode inpaint --data "$D" --holes 0.3-0.1
expect 2 "--samples without --reduce" "$BIN" eval --mode colorize --data "$D" --samples 2
expect 2 "--reduce without --samples" "$BIN" eval --mode colorize --data "$D" --reduce mean
expect 2 "a positional argument" "$BIN" eval --mode colorize --data "$D" extra.png
expect 2 "--out is --data" "$BIN" eval --mode colorize --data "$D" --out "$D" -w "$W/colorize.safetensors"
expect 1 "missing --data directory" "$BIN" eval --mode colorize --data "$TMP/nope" -w "$W/colorize.safetensors"
expect 1 "weights of another mode" "$BIN" eval --mode colorize --data "$D" -w "$W/inpaint.safetensors"
contains "$TMP/err" "not colorize" "wrong-mode weights message"

# ------------------------------------------------------------------ each mode
declare -A NAMES=(
  [colorize]="chroma PSNR;colorful/GT;max |dY|"
  [inpaint]="hole PSNR;hole HF;max known"
  [superres]="HF ratio;consist. dB"
  [denoise]=""
)
declare -A KEYS=(
  [colorize]="chroma_psnr colorfulness_ratio max_luma_diff"
  [inpaint]="hole_psnr hole_hf_ratio max_known_diff"
  [superres]="hf_ratio consistency_psnr"
  [denoise]=""
)
declare -A BASE=([colorize]=gray [inpaint]=telea [superres]=bicubic [denoise]=input)
for m in colorize inpaint superres denoise; do
  O="$TMP/out-$m"
  expect 0 "$m: eval" "$BIN" eval --mode "$m" --data "$D" -w "$W/$m.safetensors" "${S[@]}" --out "$O"
  cp "$TMP/out" "$TMP/table-$m"
  contains "$TMP/out" "PSNR dB" "$m table has PSNR"
  contains "$TMP/out" "SSIM" "$m table has SSIM"
  IFS=';' read -r -a names <<<"${NAMES[$m]}"
  for n in "${names[@]}"; do contains "$TMP/out" "$n" "$m table has $n"; done
  contains "$TMP/out" "${BASE[$m]}" "$m table names the baseline"
  contains "$TMP/out" "a.png" "$m table has a.png"
  contains "$TMP/out" "sub/b.jpg" "$m table has sub/b.jpg (recursive)"
  contains "$TMP/out" "mean (2)" "$m table has the mean row"
  contains "$TMP/err" "2 evaluated, 0 failed" "$m summary"
  for f in a.png a_sheet.png sub/b.png sub/b_sheet.png; do exists "$O/$f" "$m --out writes $f"; done
  size_is "$O/a.png" "24x24 3 8" "$m restored output size"
  size_is "$O/sub/b_sheet.png" "76x24 3 8" "$m sheet is three panels with 2-pixel gaps"

  expect 0 "$m: eval --json" "$BIN" eval --mode "$m" --data "$D" -w "$W/$m.safetensors" "${S[@]}" --json -q
  cp "$TMP/out" "$TMP/json-$m"
  lines_are "$TMP/out" 3 "$m --json: two images and the mean"
  json_check "$TMP/out" "len(L) == 3 and [x.get('file') for x in L[:2]] == ['a.png', 'sub/b.jpg'] and L[2]['mean'] is True and L[2]['images'] == 2" "$m --json structure"
  for k in psnr ssim ${KEYS[$m]}; do
    json_check "$TMP/out" "all('$k' in x['model'] for x in L)" "$m --json has $k"
  done
  json_check "$TMP/out" "all(x['mode'] == '$m' for x in L)" "$m --json mode"
  lacks "$TMP/out" "PSNR dB" "$m --json prints no table"
done

# denoise (the mode added by a table line): the title says the noise, the baseline is the noisy input
contains "$TMP/table-denoise" "denoise noise 25" "denoise table title names the noise"
json_check "$TMP/json-denoise" "all(x['baseline']['name'] == 'input' for x in L[:2])" "denoise baseline is the noisy input"
expect 0 "denoise --jpeg 30 --noise 5" "$BIN" eval --mode denoise --data "$D" -w "$W/denoise.safetensors" "${S[@]}" --jpeg 30 --noise 5
contains "$TMP/out" "denoise JPEG 30, noise 5" "denoise title with JPEG"

# mode guarantees, as measured
json_check "$TMP/json-colorize" "all(x['model']['max_luma_diff'] <= 0.5 + 1e-6 for x in L)" "colorize keeps the luma"
json_check "$TMP/json-colorize" "all(x['baseline']['name'] == 'gray' and x['baseline']['colorfulness_ratio'] == 0 for x in L)" "colorize baseline is gray"
json_check "$TMP/json-inpaint" "all(x['model']['max_known_diff'] == 0 for x in L)" "inpaint keeps known pixels"
json_check "$TMP/json-inpaint" "all(0.10 <= x['hole_fraction'] <= 0.30 for x in L[:2])" "inpaint hole fraction in the default range"
json_check "$TMP/json-superres" "all(x['lr_width'] == 6 and x['lr_height'] == 6 for x in L[:2])" "superres default x4: LR 6x6"
json_check "$TMP/json-superres" "all(x['model']['consistency_psnr'] > 40 for x in L[:2])" "superres output downscales to the LR"
json_check "$TMP/json-superres" "all(x['baseline']['name'] == 'bicubic' for x in L)" "superres baseline is bicubic"

# colorize at a working resolution: named in the header, the luma still kept
expect 0 "colorize --render-size 16" "$BIN" eval --mode colorize --data "$D" -w "$W/colorize.safetensors" "${S[@]}" --render-size 16
contains "$TMP/out" "render size 16" "the header names the render size"
lacks "$TMP/table-colorize" "render size" "no render size in the header by default"
expect 0 "colorize --render-size 16 --json" "$BIN" eval --mode colorize --data "$D" -w "$W/colorize.safetensors" "${S[@]}" --render-size 16 --json -q
json_check "$TMP/out" "all(x['model']['max_luma_diff'] <= 0.5 + 1e-6 for x in L)" "render size 16 keeps the luma"
expect 2 "--render-size on inpaint" "$BIN" eval --mode inpaint --data "$D" --render-size 64
contains "$TMP/err" "only for colorize" "--render-size is colorize's"

# ------------------------------------------------------------------ Telea
for f in a_input.png a_mask.png sub/b_input.png sub/b_mask.png; do exists "$TMP/out-inpaint/$f" "inpaint --out keeps $f"; done
# --inputs-only writes the same inputs and masks, without weights or restoring
expect 0 "inpaint --inputs-only" "$BIN" eval --mode inpaint --data "$D" --out "$TMP/tel" --inputs-only
for f in a_input.png a_mask.png sub/b_input.png sub/b_mask.png; do
  if cmp -s "$TMP/out-inpaint/$f" "$TMP/tel/$f"; then ok; else bad "--inputs-only: $f differs from the eval run's"; fi
done
absent "$TMP/tel/a.png" "--inputs-only restores nothing"
lacks "$TMP/out" "PSNR" "--inputs-only prints no table"
expect 2 "--inputs-only without --out" "$BIN" eval --mode inpaint --data "$D" --inputs-only
expect 2 "--inputs-only on colorize" "$BIN" eval --mode colorize --data "$D" --out "$TMP/tel2" --inputs-only
expect 2 "--baseline-dir on superres" "$BIN" eval --mode superres --data "$D" --baseline-dir "$TMP/tel"
contains "$TMP/err" "only for inpaint" "--baseline-dir is inpaint's"
expect 2 "--baseline-dir missing" "$BIN" eval --mode inpaint --data "$D" --baseline-dir "$TMP/nope"
if telea_available; then
  expect 0 "telea_baseline.py" /usr/bin/python3 "$SRC/scripts/telea_baseline.py" "$TMP/tel"
  exists "$TMP/tel/a_telea.png" "Telea output written"
  exists "$TMP/tel/sub/b_telea.png" "Telea output written (subdirectory)"
  expect 0 "inpaint --baseline-dir" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" --json -q \
    --baseline-dir "$TMP/tel"
  json_check "$TMP/out" "all(x['baseline'] is not None and x['baseline']['name'] == 'telea' and x['baseline']['max_known_diff'] == 0 for x in L)" "Telea baseline scored"
  lacks "$TMP/err" "Telea baseline skipped" "no skip note with --baseline-dir"
  expect 0 "inpaint --baseline-dir, table" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" \
    --baseline-dir "$TMP/tel"
  contains "$TMP/out" "mean (2)" "table with the Telea baseline"
  rm "$TMP/tel/sub/b_telea.png"
  expect 0 "inpaint --baseline-dir, a result missing" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" \
    --json --baseline-dir "$TMP/tel"
  contains "$TMP/err" "no Telea result" "a missing Telea result is noted"
  json_check "$TMP/out" "L[0]['baseline'] is not None and L[1]['baseline'] is None and L[2]['baseline']['images'] == 1" "only the Telea results there are scored"
else
  echo "note: python3-opencv missing: the Telea run itself is not tested" >&2
fi
# without --baseline-dir: the baseline is skipped with the note, the rest works
expect 0 "inpaint without --baseline-dir" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" --json -q
contains "$TMP/err" "Telea baseline skipped" "skip note"
json_check "$TMP/out" "all(x['baseline'] is None for x in L)" "no baseline without --baseline-dir"
# without --out, nothing is written (no temporary files either)
mkdir -p "$TMP/tt"
expect 0 "inpaint without --out" env TMPDIR="$TMP/tt" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" -q
if [ -z "$(ls -A "$TMP/tt")" ]; then ok; else bad "temporary files left: $(ls -A "$TMP/tt")"; fi

# ------------------------------------------------------------------ determinism
for m in colorize inpaint superres; do
  expect 0 "$m --seed 7 (1)" "$BIN" eval --mode "$m" --data "$D" -w "$W/$m.safetensors" "${S[@]}" --json -q --seed 7
  cp "$TMP/out" "$TMP/seed7a"
  expect 0 "$m --seed 7 (2)" "$BIN" eval --mode "$m" --data "$D" -w "$W/$m.safetensors" "${S[@]}" --json -q --seed 7 -t 1
  if cmp -s "$TMP/seed7a" "$TMP/out"; then ok; else bad "$m: the same seed gives other numbers"; fi
done
expect 0 "inpaint seed 7 --out" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" -q --seed 7 --out "$TMP/s7a"
expect 0 "inpaint seed 7 --out again" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" -q --seed 7 --out "$TMP/s7b"
if cmp -s "$TMP/s7a/a_mask.png" "$TMP/s7b/a_mask.png" && cmp -s "$TMP/s7a/a.png" "$TMP/s7b/a.png"; then ok; else bad "same seed: other masks or outputs"; fi
expect 0 "inpaint seed 8 --out" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" -q --seed 8 --out "$TMP/s8"
if cmp -s "$TMP/s7a/a_mask.png" "$TMP/s8/a_mask.png"; then bad "another seed gave the same mask"; else ok; fi
expect 0 "inpaint --masks damage --out" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" -q --seed 7 --masks damage --out "$TMP/s7d"
if cmp -s "$TMP/s7a/a_mask.png" "$TMP/s7d/a_mask.png"; then bad "--masks damage gave the legacy mask"; else ok; fi
expect 0 "inpaint --masks legacy --out" "$BIN" eval --mode inpaint --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" -q --seed 7 --masks legacy --out "$TMP/s7l"
if cmp -s "$TMP/s7a/a_mask.png" "$TMP/s7l/a_mask.png"; then ok; else bad "--masks legacy is not the default's mask"; fi
expect 2 "--masks on colorize" "$BIN" eval --mode colorize --data "$D" --masks damage
contains "$TMP/err" "--masks is only for inpaint" "--masks on colorize explained"
expect 2 "--masks bad value" "$BIN" eval --mode inpaint --data "$D" --masks scratches
contains "$TMP/err" "--masks must be legacy or damage" "--masks value explained"

# ------------------------------------------------------------------ a bad file in the data
BD="$TMP/baddata"
mkdir -p "$BD/sub"
cp "$D/a.png" "$BD/a.png"
cp "$D/sub/b.jpg" "$BD/sub/b.jpg"
printf 'not a png at all' >"$BD/bad.png"
for m in colorize inpaint superres; do
  expect 1 "$m: a bad file" "$BIN" eval --mode "$m" --data "$BD" -w "$W/$m.safetensors" "${S[@]}" --out "$TMP/bad-$m"
  contains "$TMP/err" "bad.png" "$m: the bad file is named"
  contains "$TMP/err" "2 evaluated, 1 failed" "$m: summary counts the failure"
  contains "$TMP/out" "a.png" "$m: a.png still evaluated"
  contains "$TMP/out" "sub/b.jpg" "$m: sub/b.jpg still evaluated"
  contains "$TMP/out" "mean (2)" "$m: the mean covers the good images"
  exists "$TMP/bad-$m/sub/b_sheet.png" "$m: sheets of the good images written"
done
expect 1 "bad file, --json" "$BIN" eval --mode superres --data "$BD" -w "$W/superres.safetensors" "${S[@]}" --json -q
json_check "$TMP/out" "len(L) == 4 and L[1]['file'].endswith('bad.png') and 'error' in L[1] and L[3]['failed'] == 1 and L[3]['images'] == 2" "--json reports the failure in order"

# ------------------------------------------------------------------ options
expect 0 "--crop 16" "$BIN" eval --mode colorize --data "$D" -w "$W/colorize.safetensors" "${S[@]}" --crop 16 --out "$TMP/crop" -q
size_is "$TMP/crop/a_sheet.png" "52x16 3 8" "--crop 16 sheet"
expect 0 "--crop larger than the image" "$BIN" eval --mode colorize --data "$D" -w "$W/colorize.safetensors" "${S[@]}" --crop 100 --out "$TMP/crop100" -q
size_is "$TMP/crop100/a.png" "24x24 3 8" "--crop 100 keeps 24x24"
expect 0 "--scale 3" "$BIN" eval --mode superres --scale 3 --data "$D" -w "$W/superres.safetensors" "${S[@]}" --json -q
json_check "$TMP/out" "all(x['lr_width'] == 8 for x in L[:2])" "--scale 3: LR 8x8"
expect 0 "--holes 0.2-0.25" "$BIN" eval --mode inpaint --holes 0.2-0.25 --data "$D" -w "$W/inpaint.safetensors" "${S[@]}" --json -q
json_check "$TMP/out" "all(0.2 <= x['hole_fraction'] <= 0.25 for x in L[:2])" "--holes range honoured"
# --preset: the sampler and steps of the restore command's preset, named in the title
fastline=$("$BIN" superres --help | sed -n 's/^ *fast: *\([a-z+-]*\) \([0-9]*\) steps.*/\1, \2 steps/p')
expect 0 "--preset fast" "$BIN" eval --mode superres --data "$D" -w "$W/superres.safetensors" --preset fast -q
contains "$TMP/out" "$fastline" "--preset fast runs the superres fast preset ($fastline)"
expect 0 "--preset fast --steps 2" "$BIN" eval --preset fast --steps 2 --mode superres --data "$D" -w "$W/superres.safetensors" -q
contains "$TMP/out" ", 2 steps" "--steps wins over --preset"
expect 2 "--preset turbo" "$BIN" eval --mode superres --data "$D" --preset turbo -q
contains "$TMP/err" "--preset needs fast, default, best" "--preset turbo refused"
expect 0 "--samples 2 --reduce mean" "$BIN" eval --mode superres --data "$D" -w "$W/superres.safetensors" "${S[@]}" --samples 2 --reduce mean -q
contains "$TMP/out" "mean of 2 samples" "--samples in the title"
# an output directory inside the data is refused before any work (issue 20:
# the files in it would be ground truth to the recursive walk, and replaced)
cp -r "$D" "$TMP/d2"
expect 2 "--out inside --data" "$BIN" eval --mode colorize --data "$TMP/d2" -w "$W/colorize.safetensors" "${S[@]}" --out "$TMP/d2/results" -q
contains "$TMP/err" "inside --data" "--out inside --data explained"
absent "$TMP/d2/results" "nothing written inside --data"
# a single file as --data
expect 0 "a file as --data" "$BIN" eval --mode colorize --data "$D/a.png" -w "$W/colorize.safetensors" "${S[@]}" -q
contains "$TMP/out" "mean (1)" "one file evaluated"

finish test_cli_eval
