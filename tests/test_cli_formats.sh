#!/usr/bin/env bash
# TIFF/WebP inputs and outputs and EXIF orientation through the restore
# commands, on the committed fixtures of tests/data/formats (tiny
# random-init weights, --steps 2).
# Usage: test_cli_formats.sh path/to/diffrestore path/to/make_tiny_weights SOURCE_DIR
set -u
BIN="$1"
MK="$2"
SRC="$3"
F="$SRC/tests/data/formats"
. "$(dirname "$0")/lib.sh"
tmp_make
cli_clean_env
W="$TMP/w"
mkdir -p "$W" "$TMP/in"
for m in colorize superres; do "$MK" "$m" "$W/$m.safetensors" || exit 1; done
S=(--steps 2 -q --seed 5)
before=$(cd "$F" && cat *.tif *.webp *.jpg *.png | md5sum)

# 16-bit LZW TIFF in, 16-bit TIFF out.
expect 0 "colorize a 16-bit TIFF" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$F/rgb16_lzw.tif" -o "$TMP/c16.tif"
size_is "$TMP/c16.tif" "7x5 3 16" "16-bit TIFF output"
# WebP with alpha in, WebP out (lossless by default): alpha kept.
expect 0 "superres a WebP with alpha" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --scale 2 "$F/rgba8_lossless.webp" -o "$TMP/s.webp"
size_is "$TMP/s.webp" "14x10 4 8" "WebP output keeps alpha"
expect 0 "lossy WebP with --quality" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --scale 2 --quality 60 "$F/rgb8_lossless.webp" -o "$TMP/q.webp"
size_is "$TMP/q.webp" "14x10 3 8" "lossy WebP output"

# Orientation: every oriented PNG (eXIf) gives the same output as the upright
# one (--strip-metadata: the files, not only the pixels, are then identical;
# test_cli_metadata.sh checks the EXIF written without it).
expect 0 "colorize upright" "$BIN" colorize "${S[@]}" --strip-metadata -w "$W/colorize.safetensors" "$F/upright.png" -o "$TMP/up.png"
for o in 1 2 3 4 5 6 7 8; do
  expect 0 "colorize orient$o.png" "$BIN" colorize "${S[@]}" --strip-metadata -w "$W/colorize.safetensors" "$F/orient$o.png" -o "$TMP/o$o.png"
  same "$TMP/up.png" "$TMP/o$o.png" "orient$o.png restored upright, identical to the upright input's output"
  expect 0 "colorize orient$o.jpg" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$F/orient$o.jpg" -o "$TMP/j$o.jpg"
  size_is "$TMP/j$o.jpg" "56x40 3 8" "orient$o.jpg written upright"
done
expect 0 "info on an oriented JPEG" "$BIN" info "$F/orient6.jpg"
contains "$TMP/out" "EXIF orientation 6" "info reports the orientation"
expect 0 "info on a 16-bit TIFF" "$BIN" info "$F/rgb16_lzw.tif"
contains "$TMP/out" "TIFF 7x5, 3 channels (RGB), 16-bit" "info reports TIFF depth"

# A folder with --format webp; TIFF and WebP files are picked up.
cp "$F/rgb16_lzw.tif" "$F/rgb8_lossless.webp" "$TMP/in/"
expect 0 "batch --format webp" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --format webp "$TMP/in" -o "$TMP/outdir"
size_is "$TMP/outdir/rgb16_lzw.webp" "7x5 3 8" "batch TIFF input written as WebP"
exists "$TMP/outdir/rgb8_lossless.webp" "batch WebP input written"
expect 2 "-o .tif with --format webp" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --format webp "$F/upright.png" -o "$TMP/x.tif"

# Bad input: exit 1, the file named, nothing written.
head -c 150 "$F/rgb16_lzw.tif" >"$TMP/cut.tif"
head -c 40 "$F/rgb8_lossy.webp" >"$TMP/cut.webp"
for b in cut.tif cut.webp; do
  expect 1 "truncated $b" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/$b" -o "$TMP/bad_$b.png"
  contains "$TMP/err" "$b" "the error names $b"
  absent "$TMP/bad_$b.png" "no output for $b"
done
after=$(cd "$F" && cat *.tif *.webp *.jpg *.png | md5sum)
if [ "$before" = "$after" ]; then ok; else bad "the input fixtures were modified"; fi
finish test_cli_formats
