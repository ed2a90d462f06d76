#!/usr/bin/env bash
# The restore commands (colorize, inpaint, superres) through the CLI: help,
# usage errors (exit 2), per-input failures (exit 1, the file named), batches
# that survive failures, outputs that never replace inputs or existing files,
# shards, samples/mean/uncertainty, JSON progress, weights discovery, Ctrl-C.
# Tiny random-init weights and generated images keep it fast (--steps 2).
# Usage: test_cli_restore.sh path/to/diffrestore path/to/make_tiny_weights SOURCE_DIR
set -u
BIN="$1"
MK="$2"
SRC="$3"
. "$(dirname "$0")/lib.sh"
tmp_make
cli_clean_env
known_equal() { # known_equal IN OUT [MASK] description: max diff of known pixels is 0
  local got
  got=$("$MK" --compare "$@" 2>&1 | head -1)
  if [ "$got" = "0" ]; then ok; else bad "known pixels of $2 differ from $1: $got"; fi
}
no_temp_files() { # no_temp_files DIR description: the atomic writer left nothing behind
  local left
  left=$(find "$1" -name '*.tmp*' 2>/dev/null | head -3)
  if [ -z "$left" ]; then ok; else bad "$2: temp files left: $left"; fi
}

# ------------------------------------------------------------------ fixtures
W="$TMP/w"
mkdir -p "$W" "$TMP/img"
for m in colorize inpaint superres; do
  "$MK" "$m" "$W/$m.safetensors" || { echo "make_tiny_weights $m failed" >&2; exit 1; }
done
"$MK" --image "$TMP/img/rgb.png" 24 24 3 8 1 || exit 1
"$MK" --image "$TMP/img/gray.png" 24 24 1 8 2 || exit 1
"$MK" --image "$TMP/img/gray16.png" 24 24 1 16 3 || exit 1
"$MK" --image "$TMP/img/rgba.png" 24 24 4 8 4 || exit 1
"$MK" --punch "$TMP/img/rgba.png" "$TMP/img/holes.png" 4 4 8 8 || exit 1
"$MK" --image "$TMP/img/photo.jpg" 24 24 3 8 5 || exit 1
"$MK" --mask "$TMP/img/mask.png" 24 24 6 6 10 10 || exit 1
"$MK" --mask "$TMP/img/mask32.png" 32 32 6 6 10 10 || exit 1
"$MK" --mask "$TMP/img/black.png" 24 24 0 0 0 0 || exit 1
S=(--steps 2 -q)

# ------------------------------------------------------------------ help
for c in colorize inpaint superres; do
  expect 0 "$c --help" "$BIN" "$c" --help
  contains "$TMP/out" "Usage: diffrestore $c" "$c --help usage line"
  contains "$TMP/out" "--steps N" "$c --help lists --steps"
  # the default preset's steps (docs/TUNING.md, "Presets") are the --steps default
  want=$(sed -n 's/^ *default: *[a-z+-]* \([0-9]*\) steps.*/\1/p' "$TMP/out")
  if [ -n "$want" ]; then ok; else bad "$c --help: no default preset line"; fi
  contains "$TMP/out" "sampler steps (default $want)" "$c --help: --steps default is the default preset's"
  contains "$TMP/out" "--preset P" "$c --help lists --preset"
  contains "$TMP/out" "DIFFRESTORE_WEIGHTS" "$c --help explains weights discovery"
  contains "$TMP/out" "130 interrupted by Ctrl-C" "$c --help documents the Ctrl-C exit code"
done
expect 0 "top-level help" "$BIN" --help
contains "$TMP/out" "colorize" "top-level help lists colorize"
contains "$TMP/out" "superres" "top-level help lists superres"

# ------------------------------------------------------------------ usage errors (exit 2)
expect 2 "colorize without input" "$BIN" colorize -w "$W/colorize.safetensors"
contains "$TMP/err" "no input" "no-input message"
contains "$TMP/err" "diffrestore colorize --help" "usage hint"
expect 2 "superres without a size" "$BIN" superres -w "$W/superres.safetensors" "$TMP/img/rgb.png" -o "$TMP/x.png"
contains "$TMP/err" "--scale" "superres asks for --scale"
expect 2 "superres --scale with --width" "$BIN" superres --scale 2 --width 50 "$TMP/img/rgb.png" -o "$TMP/x.png"
expect 2 "--box malformed" "$BIN" inpaint --box 1,2,3 "$TMP/img/rgb.png" -o "$TMP/x.png"
contains "$TMP/err" "x,y,w,h" "--box message shows the form"
expect 2 "--box zero width" "$BIN" inpaint --box 1,2,0,3 "$TMP/img/rgb.png" -o "$TMP/x.png"
expect 2 "--box with letters" "$BIN" inpaint --box 1,2,a,3 "$TMP/img/rgb.png" -o "$TMP/x.png"
expect 2 "--shard 3/2" "$BIN" colorize --shard 3/2 "$TMP/img/gray.png" -o "$TMP/x.png"
contains "$TMP/err" "K/N" "--shard message"
expect 2 "--shard 0/0" "$BIN" colorize --shard 0/0 "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--sampler unknown" "$BIN" colorize --sampler euler "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--spacing unknown" "$BIN" colorize --spacing odd "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--seed garbage" "$BIN" colorize --seed -3 "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--progress unknown" "$BIN" colorize --progress=fancy "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--mask on colorize" "$BIN" colorize --mask "$TMP/img/mask.png" "$TMP/img/gray.png" -o "$TMP/x.png"
contains "$TMP/err" "only for inpaint" "--mask is inpaint's"
expect 2 "--scale on colorize" "$BIN" colorize --scale 2 "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--mask with --box" "$BIN" inpaint --mask "$TMP/img/mask.png" --box 1,1,2,2 "$TMP/img/rgb.png" -o "$TMP/x.png"
expect 2 "--reduce mean with one sample" "$BIN" colorize --reduce mean "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--uncertainty with one sample" "$BIN" colorize --uncertainty "$TMP/u.png" "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "a directory without -o" "$BIN" colorize "$TMP/img"
contains "$TMP/err" "-o DIR" "directory input asks for -o DIR"
expect 2 "-o without an image extension" "$BIN" colorize "$TMP/img/gray.png" -o "$TMP/x.txt"
expect 2 "-o disagrees with --format" "$BIN" colorize --format jpg "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--overwrite with --skip-existing" "$BIN" colorize --overwrite --skip-existing "$TMP/img/gray.png" -o "$TMP/x.png"
absent "$TMP/x.png" "usage errors write nothing"

# ------------------------------------------------------------------ weights
expect 1 "wrong-mode weights" "$BIN" inpaint "${S[@]}" -w "$W/colorize.safetensors" --box 1,1,4,4 "$TMP/img/rgb.png" -o "$TMP/x.png"
contains "$TMP/err" "colorize.safetensors" "wrong-mode message names the file"
contains "$TMP/err" "for colorize, not inpaint" "wrong-mode message names both modes"
absent "$TMP/x.png" "wrong-mode weights write nothing"
expect 1 "weights that are not weights" "$BIN" colorize "${S[@]}" -w "$TMP/img/gray.png" "$TMP/img/gray.png" -o "$TMP/x.png"
contains "$TMP/err" "gray.png" "bad weights named"
expect 1 "missing weights file" "$BIN" colorize "${S[@]}" -w "$TMP/nope.safetensors" "$TMP/img/gray.png" -o "$TMP/x.png"
contains "$TMP/err" "nope.safetensors" "missing weights named"
expect 0 "DIFFRESTORE_WEIGHTS as a directory" env DIFFRESTORE_WEIGHTS="$W" "$BIN" colorize "${S[@]}" "$TMP/img/gray.png" -o "$TMP/env_dir.png"
exists "$TMP/env_dir.png" "weights found through DIFFRESTORE_WEIGHTS=DIR"
expect 0 "DIFFRESTORE_WEIGHTS as a file" env DIFFRESTORE_WEIGHTS="$W/colorize.safetensors" "$BIN" colorize "${S[@]}" "$TMP/img/gray.png" -o "$TMP/env_file.png"
exists "$TMP/env_file.png" "weights found through DIFFRESTORE_WEIGHTS=FILE"
# a copy of the executable elsewhere: nothing beside it, then weights beside it
mkdir -p "$TMP/inst/bin"
cp "$BIN" "$TMP/inst/bin/diffrestore"
"$TMP/inst/bin/diffrestore" colorize "${S[@]}" "$TMP/img/gray.png" -o "$TMP/inst/none.png" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 1 ]; then
  ok
  contains "$TMP/err" "$TMP/inst/weights/colorize.safetensors" "not-found lists <exe>/../weights"
  contains "$TMP/err" "$TMP/inst/bin/weights/colorize.safetensors" "not-found lists <exe>/weights"
  contains "$TMP/err" "DIFFRESTORE_WEIGHTS" "not-found mentions DIFFRESTORE_WEIGHTS"
  contains "$TMP/err" "share/diffrestore/weights/colorize.safetensors" "not-found lists the install dir"
elif [ "$rc" -eq 0 ]; then
  ok # weights installed on this machine (DR_INSTALL_DATADIR) were found
else
  bad "no weights anywhere: exit $rc, want 1 ($(head -c 300 "$TMP/err"))"
fi
mkdir -p "$TMP/inst/weights"
cp "$W/colorize.safetensors" "$TMP/inst/weights/"
expect 0 "weights in <exe>/../weights" "$TMP/inst/bin/diffrestore" colorize "${S[@]}" "$TMP/img/gray.png" -o "$TMP/inst/found.png"
exists "$TMP/inst/found.png" "weights found beside the executable"

# ------------------------------------------------------------------ single files
expect 0 "colorize gray" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" -o "$TMP/c.png"
size_is "$TMP/c.png" "24x24 3 8" "colorize gives RGB"
expect 0 "colorize 16-bit gray" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray16.png" -o "$TMP/c16.png"
size_is "$TMP/c16.png" "24x24 3 16" "colorize keeps 16 bits"
# working resolution: the output keeps the input's size; 0 and a size >= the
# long side are the full-resolution output; other modes refuse it
expect 0 "colorize --render-size 16" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" -o "$TMP/cr16.png" --render-size 16
size_is "$TMP/cr16.png" "24x24 3 8" "colorize --render-size keeps the input's size"
expect 0 "colorize --render-size 0" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" -o "$TMP/cr0.png" --render-size 0
same "$TMP/c.png" "$TMP/cr0.png" "--render-size 0 is the default for weights without render_size"
expect 0 "colorize --render-size 24" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" -o "$TMP/cr24.png" --render-size 24
same "$TMP/c.png" "$TMP/cr24.png" "--render-size >= the long side is full resolution"
if cmp -s "$TMP/c.png" "$TMP/cr16.png"; then bad "--render-size 16 changed nothing"; else ok; fi
expect 2 "--render-size 8" "$BIN" colorize --render-size 8 "$TMP/img/gray.png" -o "$TMP/x.png"
expect 2 "--render-size on superres" "$BIN" superres --scale 2 --render-size 64 "$TMP/img/rgb.png" -o "$TMP/x.png"
contains "$TMP/err" "only for colorize" "--render-size is colorize's"
expect 0 "colorize to JPEG" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" -o "$TMP/c.jpg" --quality 80
size_is "$TMP/c.jpg" "24x24 3 8" "colorize writes JPEG by -o's extension"
# default output name: beside the input
mkdir -p "$TMP/beside"
cp "$TMP/img/gray.png" "$TMP/beside/old.png"
expect 0 "colorize without -o" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/beside/old.png"
exists "$TMP/beside/old_colorize.png" "default output NAME_colorize.png beside the input"
# -o an existing directory
mkdir -p "$TMP/odir"
expect 0 "single input, -o DIR" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" -o "$TMP/odir"
exists "$TMP/odir/gray.png" "single input into an existing directory"
expect 1 "missing input" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/nope.png" -o "$TMP/n.png"
contains "$TMP/err" "nope.png" "missing input named"
expect 1 "missing input, summary" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$TMP/img/nope.png" -o "$TMP/n.png"
contains "$TMP/err" "0 done, 1 failed, 0 skipped" "summary line"

# ------------------------------------------------------------------ superres
expect 0 "superres --scale 2" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --scale 2 "$TMP/img/rgb.png" -o "$TMP/sr2.png"
size_is "$TMP/sr2.png" "48x48 3 8" "superres x2 size"
expect 0 "superres --width 60" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --width 60 "$TMP/img/rgb.png" -o "$TMP/sr60.png"
size_is "$TMP/sr60.png" "60x60 3 8" "superres --width keeps the aspect"
expect 1 "superres --scale outside the weights' range" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --scale 8 "$TMP/img/rgb.png" -o "$TMP/sr8.png"
contains "$TMP/err" "2..4" "scale error names the range"
contains "$TMP/err" "superres.safetensors" "scale error names the weights"
absent "$TMP/sr8.png" "no output for a bad scale"
expect 1 "superres --width outside the range" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --width 240 "$TMP/img/rgb.png" -o "$TMP/sr240.png"
contains "$TMP/err" "rgb.png" "width error names the input"
contains "$TMP/err" "2..4" "width error names the range"

# ------------------------------------------------------------------ inpaint
expect 0 "inpaint --box" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" --box 6,6,10,10 "$TMP/img/rgb.png" -o "$TMP/ib.png"
exists "$TMP/ib.png" "inpaint --box output"
known_equal "$TMP/img/rgb.png" "$TMP/ib.png" "$TMP/img/mask.png"
expect 0 "inpaint --box partly outside (clipped), repeated" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" --box -4,-4,8,8 --box 20,20,10,10 "$TMP/img/rgb.png" -o "$TMP/ib2.png"
exists "$TMP/ib2.png" "clipped boxes output"
expect 1 "inpaint --box entirely outside" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" --box 30,30,4,4 "$TMP/img/rgb.png" -o "$TMP/ib3.png"
contains "$TMP/err" "outside the 24x24 image" "outside box message"
contains "$TMP/err" "rgb.png" "outside box names the file"
expect 0 "inpaint --mask" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" --mask "$TMP/img/mask.png" "$TMP/img/rgb.png" -o "$TMP/im.png"
known_equal "$TMP/img/rgb.png" "$TMP/im.png" "$TMP/img/mask.png"
expect 1 "inpaint mask of the wrong size" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" --mask "$TMP/img/mask32.png" "$TMP/img/rgb.png" -o "$TMP/iw.png"
contains "$TMP/err" "32x32" "wrong-size message names the mask's size"
contains "$TMP/err" "24x24" "wrong-size message names the image's size"
contains "$TMP/err" "mask32.png" "wrong-size message names the mask"
absent "$TMP/iw.png" "no output for a wrong-size mask"
expect 1 "inpaint without mask or alpha" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" "$TMP/img/rgb.png" -o "$TMP/ia.png"
contains "$TMP/err" "no alpha" "no-alpha message"
expect 0 "inpaint from the alpha channel" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" "$TMP/img/holes.png" -o "$TMP/ih.png"
size_is "$TMP/ih.png" "24x24 4 8" "alpha inpaint keeps RGBA"
expect 0 "inpaint with an all-black mask" "$BIN" inpaint --steps 2 -w "$W/inpaint.safetensors" --mask "$TMP/img/black.png" "$TMP/img/rgb.png" -o "$TMP/ik.png"
contains "$TMP/err" "no hole" "all-black mask note"
known_equal "$TMP/img/rgb.png" "$TMP/ik.png"
expect 0 "inpaint an opaque RGBA (no hole)" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" "$TMP/img/rgba.png" -o "$TMP/io.png"
known_equal "$TMP/img/rgba.png" "$TMP/io.png"

# ------------------------------------------------------------------ outputs never replace inputs or existing files
cp "$TMP/img/rgb.png" "$TMP/victim.png"
cp "$TMP/victim.png" "$TMP/victim.copy"
expect 1 "-o is the input" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/victim.png" -o "$TMP/victim.png"
contains "$TMP/err" "input" "refusal says why"
same "$TMP/victim.png" "$TMP/victim.copy" "input unchanged"
expect 1 "-o is the input, --overwrite" "$BIN" colorize "${S[@]}" --overwrite -w "$W/colorize.safetensors" "$TMP/victim.png" -o "$TMP/victim.png"
same "$TMP/victim.png" "$TMP/victim.copy" "input unchanged with --overwrite"
ln -s "$TMP/victim.png" "$TMP/victim_link.png"
expect 1 "-o is a link to the input" "$BIN" colorize "${S[@]}" --overwrite -w "$W/colorize.safetensors" "$TMP/victim.png" -o "$TMP/victim_link.png"
same "$TMP/victim.png" "$TMP/victim.copy" "input unchanged through a link"
cp "$TMP/c.png" "$TMP/c.copy"
expect 1 "existing output" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --seed 7 "$TMP/img/gray.png" -o "$TMP/c.png"
contains "$TMP/err" "exists" "existing-output message"
contains "$TMP/err" "--overwrite" "existing-output hint"
same "$TMP/c.png" "$TMP/c.copy" "existing output unchanged"
expect 0 "--overwrite" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --overwrite "$TMP/img/gray.png" -o "$TMP/c.png"
expect 0 "--skip-existing on one file" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" --skip-existing "$TMP/img/gray.png" -o "$TMP/c.png"
contains "$TMP/err" "0 done, 0 failed, 1 skipped" "single skip counted"
# an output directory under a regular file (ENOTDIR even as root)
echo text >"$TMP/file.txt"
expect 1 "output under a regular file" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" -o "$TMP/file.txt/out.png"
contains "$TMP/err" "file.txt" "unwritable path named"
contains "$TMP/err" "Not a directory" "unwritable reason"
no_temp_files "$TMP" "failed write"
expect 1 "batch output dir under a regular file" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/img/gray.png" "$TMP/img/rgb.png" -o "$TMP/file.txt/out"
contains "$TMP/err" "file.txt" "unwritable output dir named"

# an output directory that exists but is not writable. Root ignores the mode
# bits, so as root the command runs as "nobody" (setpriv), on a directory
# owned by root with mode 0755; otherwise the directory is made read-only.
RO="$TMP/ro"
mkdir -p "$RO/in" "$RO/out"
cp "$TMP/img/gray.png" "$RO/in/g.png"
cp "$W/colorize.safetensors" "$RO/w.safetensors"
cp "$BIN" "$RO/diffrestore" # the build tree may sit where "nobody" cannot reach it
chmod 755 "$TMP" "$RO" "$RO/in" "$RO/out" "$RO/diffrestore"
chmod 644 "$RO/in/g.png" "$RO/w.safetensors"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
  chmod 555 "$RO/out"
fi
expect 1 "output directory not writable" "${as_user[@]}" "$RO/diffrestore" colorize "${S[@]}" -w "$RO/w.safetensors" "$RO/in/g.png" -o "$RO/out/g.png"
contains "$TMP/err" "$RO/out/g.png" "unwritable output named"
contains "$TMP/err" "Permission denied" "unwritable reason given"
[ -z "$(ls -A "$RO/out")" ] && ok || bad "unwritable directory: something was created in it"
expect 1 "batch into a non-writable directory" "${as_user[@]}" "$RO/diffrestore" colorize "${S[@]}" -w "$RO/w.safetensors" "$RO/in" -o "$RO/out"
contains "$TMP/err" "$RO/out/g.png: cannot create output: Permission denied" "batch into a non-writable directory: the file and the reason"
chmod 700 "$TMP"

# an all-white mask: the whole image is the hole, every pixel generated
"$MK" --mask "$TMP/img/white.png" 24 24 0 0 24 24 || exit 1
expect 0 "inpaint with an all-white mask" "$BIN" inpaint "${S[@]}" -w "$W/inpaint.safetensors" --mask "$TMP/img/white.png" "$TMP/img/rgb.png" -o "$TMP/iwhite.png"
size_is "$TMP/iwhite.png" "24x24 3 8" "all-white mask output"

# ------------------------------------------------------------------ batches
B="$TMP/batch"
mkdir -p "$B/sub"
cp "$TMP/img/gray.png" "$B/good1.png"
cp "$TMP/img/photo.jpg" "$B/good2.jpg"
echo "not an image" >"$B/bad.png"
echo "notes" >"$B/notes.txt"
cp "$TMP/img/gray.png" "$B/.hidden.png"
cp "$TMP/img/rgb.png" "$B/sub/deep.png"
expect 1 "batch with a corrupt file" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$B" -o "$TMP/out1"
contains "$TMP/err" "2 done, 1 failed, 1 skipped" "batch summary (the hidden image counts as skipped)"
contains "$TMP/err" "bad.png" "corrupt file named"
lacks "$TMP/err" "notes.txt" "non-image files ignored silently"
lacks "$TMP/err" ".hidden" "hidden files not restored, named only under -v"
exists "$TMP/out1/good1.png" "batch output 1"
exists "$TMP/out1/good2.jpg" "batch output 2 keeps its format (jpg in, jpg out)"
absent "$TMP/out1/good2.png" "no png for a jpg input without --format"
absent "$TMP/out1/bad.png" "no output for the corrupt file"
absent "$TMP/out1/sub" "no recursion without -r"
absent "$TMP/out1/.hidden.png" "no output for hidden files"
no_temp_files "$TMP/out1" "batch"
rm "$B/bad.png"
expect 0 "batch rerun with --skip-existing" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" --skip-existing "$B" -o "$TMP/out1"
contains "$TMP/err" "0 done, 0 failed, 3 skipped" "rerun skips everything"
expect 1 "batch rerun without --skip-existing" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$B" -o "$TMP/out1"
contains "$TMP/err" "0 done, 2 failed" "existing outputs fail"
expect 0 "batch -r, --format jpg" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" -r --format jpg "$B" -o "$TMP/out2"
exists "$TMP/out2/sub/deep.jpg" "recursive output mirrors subdirectories"
exists "$TMP/out2/good1.jpg" "--format jpg"
# several files, two with the same output name
cp "$TMP/img/gray.png" "$TMP/img/twin.png"
"$MK" --image "$TMP/img/twin.jpg" 24 24 3 8 9
expect 1 "two inputs, one output name" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" --format png "$TMP/img/twin.png" "$TMP/img/twin.jpg" -o "$TMP/out3"
contains "$TMP/err" "1 done, 1 failed" "collision: one done, one failed"
contains "$TMP/err" "would also be the output" "collision explained"
# outputs into the input directory: same names are refused, the input kept
mkdir -p "$TMP/inplace"
cp "$TMP/img/gray.png" "$TMP/inplace/a.png"
cp "$TMP/inplace/a.png" "$TMP/a.copy"
expect 1 "batch -o is the input directory" "$BIN" colorize "${S[@]}" --overwrite -w "$W/colorize.safetensors" "$TMP/inplace" -o "$TMP/inplace"
same "$TMP/inplace/a.png" "$TMP/a.copy" "batch never replaces an input"
# empty directory
mkdir -p "$TMP/empty/sub"
expect 1 "no images" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/empty" -o "$TMP/out4"
contains "$TMP/err" "use -r" "empty directory hints at -r"

# ------------------------------------------------------------------ inpaint batch with a mask directory
mkdir -p "$TMP/ib/in/s" "$TMP/ib/masks/s"
cp "$TMP/img/rgb.png" "$TMP/ib/in/one.png"
cp "$TMP/img/photo.jpg" "$TMP/ib/in/s/two.jpg"
cp "$TMP/img/rgb.png" "$TMP/ib/in/three.png"
cp "$TMP/img/mask.png" "$TMP/ib/masks/one.png"
cp "$TMP/img/mask.png" "$TMP/ib/masks/s/two.png"
expect 1 "inpaint batch, --mask DIR" "$BIN" inpaint --steps 2 -w "$W/inpaint.safetensors" -r --mask "$TMP/ib/masks" "$TMP/ib/in" -o "$TMP/ib/out"
contains "$TMP/err" "2 done, 1 failed" "mask dir: one input without a mask"
contains "$TMP/err" "three.png" "input without a mask named"
known_equal "$TMP/ib/in/one.png" "$TMP/ib/out/one.png" "$TMP/img/mask.png"
exists "$TMP/ib/out/s/two.jpg" "mask paired by relative path with another extension"

# ------------------------------------------------------------------ shards
D="$TMP/shard_in"
mkdir -p "$D"
for i in 1 2 3 4 5; do cp "$TMP/img/gray.png" "$D/p$i.png"; done
expect 0 "shard 0/2" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --shard 0/2 "$D" -o "$TMP/sh"
expect 0 "shard 1/2" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --shard 1/2 "$D" -o "$TMP/sh"
n=$(ls "$TMP/sh" | wc -l)
if [ "$n" -eq 5 ]; then ok; else bad "shards wrote $n files, want 5"; fi
expect 0 "shard 0/2 again, skip-existing" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" --shard 0/2 --skip-existing "$D" -o "$TMP/sh"
contains "$TMP/err" "0 done, 0 failed, 3 skipped" "shard 0/2 holds p1, p3, p5"
expect 0 "SLURM array task" env SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$D" -o "$TMP/slurm"
contains "$TMP/err" "SLURM_ARRAY_TASK_ID" "SLURM note"
if [ "$(ls "$TMP/slurm" | tr '\n' ' ')" = "p2.png p4.png " ]; then ok; else bad "SLURM shard wrote: $(ls "$TMP/slurm" | tr '\n' ' ')"; fi
expect 0 "SLURM array starting at 1" env SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=2 "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$D" -o "$TMP/slurm1"
if [ "$(ls "$TMP/slurm1" | tr '\n' ' ')" = "p1.png p3.png p5.png " ]; then ok; else bad "SLURM min=1 shard wrote: $(ls "$TMP/slurm1" | tr '\n' ' ')"; fi
expect 2 "SLURM task outside the count" env SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=2 "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$D" -o "$TMP/slurm2"
expect 0 "--shard overrides SLURM" env SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=2 "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --shard 0/5 "$D" -o "$TMP/slurm3"

# ------------------------------------------------------------------ samples, mean, uncertainty, seeds
expect 0 "--samples 2" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --samples 2 "$TMP/img/gray.png" -o "$TMP/s.png"
exists "$TMP/s_1.png" "sample 1"
exists "$TMP/s_2.png" "sample 2"
absent "$TMP/s.png" "no unnumbered file with --samples 2"
expect 0 "--reduce mean" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --samples 2 --reduce mean "$TMP/img/gray.png" -o "$TMP/mean.png"
exists "$TMP/mean.png" "mean output"
absent "$TMP/mean_1.png" "no numbered files with --reduce mean"
expect 0 "--uncertainty" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --samples 2 --reduce mean --uncertainty "$TMP/unc.png" "$TMP/img/gray.png" -o "$TMP/mean2.png"
size_is "$TMP/unc.png" "24x24 3 8" "uncertainty heat map is an RGB PNG"
expect 0 "--uncertainty DIR in a batch" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --samples 2 --uncertainty "$TMP/uncdir" "$D" -o "$TMP/sampdir"
exists "$TMP/uncdir/p3.png" "batch uncertainty mirrors names"
exists "$TMP/sampdir/p3_2.png" "batch samples numbered"
expect 0 "--seed random" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --seed random "$TMP/img/gray.png" -o "$TMP/r.png"
contains "$TMP/err" "seed: " "random seed printed"
expect 0 "seed 5 a" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --seed 5 --sampler ddpm "$TMP/img/gray.png" -o "$TMP/seed_a.png"
expect 0 "seed 5 b" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" --seed 5 --sampler ddpm "$TMP/img/gray.png" -o "$TMP/seed_b.png"
same "$TMP/seed_a.png" "$TMP/seed_b.png" "same seed, same output"

# ------------------------------------------------------------------ progress
expect 0 "--progress=json" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" --progress=json "$D/p1.png" "$D/p2.png" -o "$TMP/js"
contains "$TMP/out" '"step":1' "json step lines"
contains "$TMP/out" '"done":true' "json done lines"
if [ -x /usr/bin/python3 ]; then
  if /usr/bin/python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines and all("file" in o for o in lines)
steps = [o for o in lines if "step" in o]
done = [o for o in lines if o.get("done") is True]
assert len(done) == 2 and all("output" in o for o in done), done
assert all(o["steps"] >= o["step"] >= 1 for o in steps)
' "$TMP/out"; then ok; else bad "--progress=json lines are not the documented JSON"; fi
else
  n=$(grep -c '^{"file":".*}$' "$TMP/out")
  if [ "$n" -ge 4 ]; then ok; else bad "--progress=json: $n JSON-looking lines"; fi
fi
# ------------------------------------------------------------------ presets
# steps_run WHAT ARGS...: the "steps" the JSON progress reports, into $steps
steps_run() {
  local what="$1"
  shift
  expect 0 "$what" "$BIN" superres --scale 2 -w "$W/superres.safetensors" --progress=json "$@" "$D/p1.png" \
    -o "$TMP/preset.png" --overwrite
  steps=$(sed -n 's/.*"steps":\([0-9]*\).*/\1/p' "$TMP/out" | tail -1)
}
fast=$("$BIN" superres --help | sed -n 's/^ *fast: *[a-z+-]* \([0-9]*\) steps.*/\1/p')
best=$("$BIN" superres --help | sed -n 's/^ *best: *[a-z+-]* \([0-9]*\) steps.*/\1/p')
if [ -n "$fast" ] && [ -n "$best" ] && [ "$fast" -lt "$best" ]; then ok; else bad "superres presets: fast '$fast', best '$best'"; fi
steps_run "--preset fast" --preset fast
if [ "$steps" = "$fast" ]; then ok; else bad "--preset fast ran $steps steps, want $fast"; fi
steps_run "--quality best" --quality best
if [ "$steps" = "$best" ]; then ok; else bad "--quality best ran $steps steps, want $best"; fi
steps_run "--preset best --steps 3" --preset best --steps 3
if [ "$steps" = 3 ]; then ok; else bad "--preset best --steps 3 ran $steps steps"; fi
steps_run "--steps 3 --preset fast" --steps 3 --preset fast
if [ "$steps" = 3 ]; then ok; else bad "--steps 3 before --preset fast ran $steps steps"; fi
expect 2 "--preset turbo" "$BIN" superres --scale 2 -w "$W/superres.safetensors" --preset turbo "$D/p1.png" -o "$TMP/t.png"
contains "$TMP/err" "--preset needs fast, default, best, got 'turbo'" "--preset turbo names the presets"
absent "$TMP/t.png" "no output for a bad --preset"
expect 2 "--quality turbo" "$BIN" superres --scale 2 -w "$W/superres.safetensors" --quality turbo "$D/p1.png" -o "$TMP/t.png"
contains "$TMP/err" "or a preset" "--quality turbo names both meanings"

expect 0 "no progress when stderr is not a TTY" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$D/p1.png" -o "$TMP/np.png"
lacks "$TMP/err" "ETA" "no progress bar in a pipe"
lacks "$TMP/err" $'\r' "no carriage returns in a pipe"

# ------------------------------------------------------------------ Ctrl-C / SIGTERM
# interrupt(SIGNAL CODE): start a slow two-image batch, signal it at its first
# step; the current image is abandoned, nothing is written, the summary shows.
"$MK" --image "$TMP/img/big.png" 64 64 1 8 11
interrupt() {
  local sig="$1" want="$2" out="$TMP/int_$1"
  rm -f "$TMP/int.out" "$TMP/int.err"
  # set -m: the job gets its own process group and SIGINT is not ignored in it
  set -m
  "$BIN" colorize --steps 1000 --sampler ddpm -w "$W/colorize.safetensors" --progress=json \
    "$TMP/img/big.png" "$TMP/img/gray.png" -o "$out" >"$TMP/int.out" 2>"$TMP/int.err" &
  local pid=$!
  set +m
  # wait for its first step however long start-up takes on this machine
  # (sanitizers, load), as long as the run is alive
  while ! grep -q '"step"' "$TMP/int.out" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
    sleep 0.05
  done
  kill -"$sig" "$pid"
  wait "$pid"
  local rc=$?
  if [ "$rc" -eq "$want" ]; then ok; else bad "$sig: exit $rc, want $want ($(head -c 300 "$TMP/int.err"))"; fi
  contains "$TMP/int.err" "interrupted (SIG$sig)" "$sig reported"
  contains "$TMP/int.err" "0 done, 0 failed, 0 skipped, 2 not processed" "$sig summary"
  absent "$out/big.png" "$sig: no output for the abandoned image"
  no_temp_files "$out" "$sig: interrupted run"
}
interrupt INT 130
interrupt TERM 143

# A job signalled before it has exec'd is still a copy of this shell: it must
# not run the EXIT trap and take TMP with it (tmp_make in lib.sh).
for i in 1 2 3 4 5 6 7 8 9 10; do
  set -m
  sleep 5 >/dev/null 2>"$TMP/fork.err" &
  fork_pid=$!
  set +m
  kill -TERM "$fork_pid" 2>/dev/null
  wait "$fork_pid" 2>/dev/null
done
if [ -d "$TMP" ]; then ok; else bad "a job signalled before exec removed TMP"; fi

# Signals at random moments of a batch (decoding, sampling, saving, between
# images), each run resumed with --skip-existing, until the batch is done;
# then again from scratch, until at least 8 runs were interrupted. After
# every signal: exit 130/143 (or 0 if the batch had finished), no temp file,
# and every output present is complete: identical to the uninterrupted run's.
# A finished batch equals the uninterrupted one.
mkdir -p "$TMP/rb"
for i in 1 2 3 4; do "$MK" --image "$TMP/rb/im$i.png" 40 32 1 8 $((20 + i)) || exit 1; done
rb_run() { # rb_run OUTDIR [extra options]: the batch, in its own process group
  local out="$1"
  shift
  set -m
  "$BIN" colorize -q --steps 4 -w "$W/colorize.safetensors" "$TMP/rb" -o "$out" "$@" >/dev/null 2>"$TMP/rb.err" &
  rb_pid=$!
  set +m
}
t0=$(date +%s%N)
rb_run "$TMP/rb_ref"
wait "$rb_pid" && ok || bad "random-signal batch: reference run failed: $(head -c 300 "$TMP/rb.err")"
rb_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rb_ms" -gt 0 ] || rb_ms=1
signals=0 finished=0 round=0
# The delays span the reference batch's time; a resumed batch is shorter, so
# some runs finish first: the cap on rounds leaves room for a machine whose
# speed changes under load (about 12 rounds are needed when it does not).
while [ "$signals" -lt 8 ] && [ "$round" -lt 200 ]; do
  round=$((round + 1))
  rb_run "$TMP/rb_int" --skip-existing
  sig=INT want=130
  [ $((round % 2)) -eq 0 ] && sig=TERM want=143
  d=$((RANDOM % (rb_ms + 1))) # up to the whole batch's time, in ms
  sleep "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"
  kill -"$sig" "$rb_pid" 2>/dev/null
  wait "$rb_pid"
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne "$want" ]; then
    bad "random $sig at ${d} ms: exit $rc, want $want or 0 ($(head -c 300 "$TMP/rb.err"))"
    break
  fi
  [ "$rc" -eq "$want" ] && signals=$((signals + 1))
  left=$(find "$TMP/rb_int" -name '*.tmp*' 2>/dev/null | head -3)
  [ -z "$left" ] || { bad "random $sig at ${d} ms: temp files left: $left"; break; }
  for f in "$TMP"/rb_int/*; do
    [ -e "$f" ] || continue
    cmp -s "$f" "$TMP/rb_ref/$(basename "$f")" || bad "random $sig at ${d} ms: $f is not the finished output"
  done
  if [ "$rc" -eq 0 ]; then # done: complete and equal, then start over
    finished=$((finished + 1))
    for i in 1 2 3 4; do same "$TMP/rb_int/im$i.png" "$TMP/rb_ref/im$i.png" "random-signal batch, resumed"; done
    rm -rf "$TMP/rb_int"
  fi
done
[ "$signals" -ge 8 ] && ok || bad "random-signal batch: only $signals runs were interrupted in $round"
rb_run "$TMP/rb_int" --skip-existing # whatever the last signal left: resume to the end
wait "$rb_pid" && ok || bad "random-signal batch: the final --skip-existing run failed"
for i in 1 2 3 4; do same "$TMP/rb_int/im$i.png" "$TMP/rb_ref/im$i.png" "random-signal batch, final resume"; done
echo "random signals: $signals interrupted runs, $finished finished batches, $round runs (batch ${rb_ms} ms)"

# ------------------------------------------------------------------ denoise: a mode from the table alone
# The fourth mode was added by one file and one table line in the library:
# the command, its help, its option checks and the weights search follow.
expect 0 "--help lists denoise" "$BIN" --help
contains "$TMP/out" "denoise" "the command list names denoise"
expect 0 "denoise --help" "$BIN" denoise --help
contains "$TMP/out" "Usage: diffrestore denoise [options] INPUT... -o OUTPUT" "denoise --help usage line"
lacks "$TMP/out" "--mask MASK" "denoise --help has no mask options"
expect 2 "denoise --scale" "$BIN" denoise --scale 2 "$TMP/img/rgb.png"
contains "$TMP/err" "--scale is only for superres" "denoise --scale message"
expect 2 "denoise --box" "$BIN" denoise --box 1,1,2,2 "$TMP/img/rgb.png"
contains "$TMP/err" "--box is only for inpaint" "denoise --box message"
# no weights for it where the others are: said plainly, nothing written
DIFFRESTORE_WEIGHTS="$W" expect 1 "denoise without weights" "$BIN" denoise "$TMP/img/rgb.png" -o "$TMP/dn_none.png"
contains "$TMP/err" "denoise has no trained weights yet" "untrained mode message"
contains "$TMP/err" "colorize, inpaint, superres" "the modes that have weights are named"
absent "$TMP/dn_none.png" "no output without weights"
"$MK" denoise "$W/denoise.safetensors" || bad "make_tiny_weights denoise"
expect 0 "denoise restores" "$BIN" denoise -w "$W/denoise.safetensors" "${S[@]}" "$TMP/img/rgb.png" -o "$TMP/dn.png"
size_is "$TMP/dn.png" "24x24 3 8" "denoise keeps the size"
expect 0 "denoise keeps gray" "$BIN" denoise -w "$W/denoise.safetensors" "${S[@]}" "$TMP/img/gray.png" -o "$TMP/dn_gray.png"
size_is "$TMP/dn_gray.png" "24x24 1 8" "denoise: gray in, gray out"
expect 0 "denoise keeps alpha" "$BIN" denoise -w "$W/denoise.safetensors" "${S[@]}" "$TMP/img/rgba.png" -o "$TMP/dn_rgba.png"
size_is "$TMP/dn_rgba.png" "24x24 4 8" "denoise keeps the alpha channel"
expect 1 "colorize weights for denoise" "$BIN" denoise -w "$W/colorize.safetensors" "${S[@]}" "$TMP/img/rgb.png" -o "$TMP/dn_bad.png"
contains "$TMP/err" "these weights are for colorize, not denoise" "wrong mode's weights named"

finish test_cli_restore
