#!/usr/bin/env bash
# Hostile use (issue 20). Input protection: no file that a command reads as input (photos,
# masks, data sets, weights, checkpoints) is ever opened for writing by it.
# A matrix over colorize / inpaint / superres / train / eval: output folders
# nested inside input folders (by name and through a symbolic link), outputs
# that are hard links or symbolic links to inputs, the input itself as the
# output, all with --overwrite; train's checkpoint, log and export inside or
# onto the data, the weights or the checkpoint. After every case the input
# files are byte-identical to the copies taken at the start. Then: train on
# SIGTERM (exit 143), colorize on gray data, FIFOs and empty files.
# Usage: test_cli_protect.sh path/to/diffrestore path/to/make_tiny_weights SOURCE_DIR
set -u
BIN="$1"
MK="$2"
. "$(dirname "$0")/lib.sh"
tmp_make
cli_clean_env

W="$TMP/w"
mkdir -p "$W" "$TMP/in/sub" "$TMP/val"
for m in colorize inpaint superres; do "$MK" "$m" "$W/$m.safetensors" || exit 1; done
"$MK" --image "$TMP/in/a.png" 24 24 3 8 1 || exit 1
"$MK" --image "$TMP/in/sub/b.png" 24 24 3 8 2 || exit 1
"$MK" --image "$TMP/val/v.png" 24 24 3 8 3 || exit 1
# the reference copies, outside every tree the commands see
mkdir -p "$TMP/ref"
snapshot() { (cd "$TMP" && find in val w -type f -exec sha256sum {} + | sort -k2) >"$1"; }
snapshot "$TMP/ref/sums"
untouched() { # untouched "case": every input byte-identical to the start
  snapshot "$TMP/now"
  if cmp -s "$TMP/ref/sums" "$TMP/now"; then ok; else bad "$1: an input changed: $(diff "$TMP/ref/sums" "$TMP/now" | head -4)"; fi
}

opts() { # the command's options for a tiny run
  case "$1" in
    colorize) echo "--steps 1 -w $W/colorize.safetensors" ;;
    inpaint) echo "--steps 1 -w $W/inpaint.safetensors --box 2,2,6,6" ;;
    superres) echo "--steps 1 -w $W/superres.safetensors --scale 2" ;;
  esac
}

for c in colorize inpaint superres; do
  # shellcheck disable=SC2046
  set -- $(opts "$c")
  # an output folder inside the input folder walked with -r, by name and through a link
  expect 2 "$c -r, -o inside the input" "$BIN" "$c" "$@" -r --overwrite "$TMP/in" -o "$TMP/in/sub"
  contains "$TMP/err" "inside the input folder" "$c: nested -o explained"
  ln -sfn "$TMP/in/sub" "$TMP/link_$c"
  expect 2 "$c -r, -o a link into the input" "$BIN" "$c" "$@" -r --overwrite "$TMP/in" -o "$TMP/link_$c/out"
  untouched "$c: nested output folders"
  # outputs that are other names for the inputs: a hard link, a symbolic link
  mkdir -p "$TMP/o_$c"
  ln -f "$TMP/in/a.png" "$TMP/o_$c/a.png"
  expect 1 "$c: output is a hard link to the input" "$BIN" "$c" "$@" --overwrite "$TMP/in/a.png" -o "$TMP/o_$c/a.png"
  contains "$TMP/err" "input" "$c: hard link refused"
  rm -f "$TMP/o_$c/a.png"
  ln -s "$TMP/in/a.png" "$TMP/o_$c/a.png"
  expect 1 "$c: output is a symlink to the input" "$BIN" "$c" "$@" --overwrite "$TMP/in/a.png" -o "$TMP/o_$c/a.png"
  rm -f "$TMP/o_$c/a.png"
  # the same in a batch: the output folder holds a hard link to an input
  ln -f "$TMP/in/a.png" "$TMP/o_$c/a.png"
  expect 1 "$c: batch output folder holds a hard link to an input" "$BIN" "$c" "$@" --overwrite "$TMP/in" -o "$TMP/o_$c"
  rm -f "$TMP/o_$c/a.png"
  # the input itself
  expect 1 "$c: -o the input itself" "$BIN" "$c" "$@" --overwrite "$TMP/in/a.png" -o "$TMP/in/a.png"
  untouched "$c: other names for the inputs"
  # the legal case still works: -r with the output folder outside
  expect 0 "$c -r, -o outside" "$BIN" "$c" "$@" -r "$TMP/in" -o "$TMP/out_$c"
  exists "$TMP/out_$c/sub/b.png" "$c: batch output"
done

# ---- train: checkpoint, log and export never land on what it reads
T=(-q --mode colorize --data "$TMP/in" --steps 1 --batch 1 --patch 16)
expect 1 "train --out inside --data" "$BIN" train "${T[@]}" --out "$TMP/in/a.png"
contains "$TMP/err" "inside the training data" "train --out in the data explained"
expect 1 "train --log inside --data" "$BIN" train "${T[@]}" --out "$TMP/c.ckpt" --log "$TMP/in/sub/b.png"
expect 1 "train --out inside --val" "$BIN" train "${T[@]}" --val "$TMP/val" --out "$TMP/val/c.ckpt"
ln -f "$TMP/in/a.png" "$TMP/hard.png"
expect 1 "train --out a hard link to a photo" "$BIN" train "${T[@]}" --out "$TMP/hard.png"
contains "$TMP/err" "another name" "train hard link explained"
ln -sfn "$TMP/in" "$TMP/link_train"
expect 1 "train --out through a link into --data" "$BIN" train "${T[@]}" --out "$TMP/link_train/c.ckpt"
expect 1 "train --export onto a photo" "$BIN" train "${T[@]}" --out "$TMP/c2.ckpt" --export "$TMP/in/a.png"
expect 1 "train --out onto the --init weights" "$BIN" train -q --init "$W/colorize.safetensors" --data "$TMP/in" \
  --steps 1 --batch 1 --patch 16 --out "$W/colorize.safetensors"
contains "$TMP/err" "--init weights" "train --init overwrite explained"
expect 1 "train --out a missing directory" "$BIN" train "${T[@]}" --out "$TMP/missing/c.ckpt"
contains "$TMP/err" "does not exist" "missing directory named before any work"
expect 1 "train --out a directory" "$BIN" train "${T[@]}" --out "$TMP/ref"
absent "$TMP/ref.csv" "no log beside a refused directory"
untouched "train"
# the legal case: train, then resume into the same checkpoint (atomic replacement)
expect 0 "train" "$BIN" train "${T[@]}" --out "$TMP/ok.ckpt"
expect 0 "train --resume CKPT --out CKPT" "$BIN" train -q --resume "$TMP/ok.ckpt" --data "$TMP/in" --steps 2 --out "$TMP/ok.ckpt"
expect 1 "train --log onto the resumed checkpoint" "$BIN" train -q --resume "$TMP/ok.ckpt" --data "$TMP/in" --steps 3 \
  --out "$TMP/ok2.ckpt" --log "$TMP/ok.ckpt"
expect 1 "export onto the checkpoint itself" "$BIN" train -q --resume "$TMP/ok.ckpt" --export "$TMP/ok.ckpt"
[ -s "$TMP/ok.ckpt" ] && "$BIN" info "$TMP/ok.ckpt" >/dev/null 2>&1 && ok || bad "the resumed checkpoint was damaged"
# a directory link loop in the data: walked once, not fatal
ln -s .. "$TMP/in/sub/loop"
expect 0 "train with a directory link loop in --data" "$BIN" train "${T[@]}" --out "$TMP/loop.ckpt"
contains "$TMP/err" "2 training images" "each photo once through the loop"
rm -f "$TMP/in/sub/loop"
untouched "train, legal runs"

# ---- train --masks / --scale-dist (issue 14) reach the checkpoint; a resume keeps them
expect 0 "train --masks damage" "$BIN" train -q --mode inpaint --masks damage --data "$TMP/in" --steps 1 --batch 1 --patch 16 --out "$TMP/dmg.ckpt"
expect 0 "info of the damage checkpoint" "$BIN" info "$TMP/dmg.ckpt"
contains "$TMP/out" "masks = damage" "--masks damage stored"
expect 0 "resume the damage checkpoint" "$BIN" train -q --resume "$TMP/dmg.ckpt" --data "$TMP/in" --steps 2 --out "$TMP/dmg.ckpt"
expect 0 "info of the resumed checkpoint" "$BIN" info "$TMP/dmg.ckpt"
contains "$TMP/out" "masks = damage" "--masks kept on resume"
expect 0 "train --scale-dist high" "$BIN" train -q --mode superres --scale-dist high --data "$TMP/in" --steps 1 --batch 1 --patch 16 --out "$TMP/hi.ckpt"
expect 0 "info of the high checkpoint" "$BIN" info "$TMP/hi.ckpt"
contains "$TMP/out" "scale_dist = high" "--scale-dist high stored"
contains "$TMP/out" "masks = legacy" "superres keeps the legacy masks key"
expect 0 "train --augment dihedral" "$BIN" train -q --mode superres --augment dihedral --data "$TMP/in" --steps 1 --batch 1 --patch 16 --out "$TMP/aug.ckpt"
expect 0 "info of the dihedral checkpoint" "$BIN" info "$TMP/aug.ckpt"
contains "$TMP/out" "augment = dihedral" "--augment dihedral stored"
expect 0 "resume the dihedral checkpoint" "$BIN" train -q --resume "$TMP/aug.ckpt" --data "$TMP/in" --steps 2 --out "$TMP/aug.ckpt"
expect 0 "info of the resumed checkpoint" "$BIN" info "$TMP/aug.ckpt"
contains "$TMP/out" "augment = dihedral" "--augment kept on resume"
expect 0 "resume with --augment flip" "$BIN" train -q --resume "$TMP/aug.ckpt" --augment flip --data "$TMP/in" --steps 3 --out "$TMP/aug.ckpt"
expect 0 "info of the flip-resumed checkpoint" "$BIN" info "$TMP/aug.ckpt"
if grep -q "augment" "$TMP/out"; then bad "--augment flip on resume left the dihedral key"; else ok; fi
untouched "train recipe options"

# ---- train ends on SIGTERM like every command: checkpoint written, exit 143
set -m
"$BIN" train "${T[@]}" --steps 1000000 --checkpoint-every 1 --out "$TMP/sig.ckpt" >/dev/null 2>"$TMP/sig.err" &
sig_pid=$!
set +m
while [ ! -s "$TMP/sig.ckpt" ] && kill -0 "$sig_pid" 2>/dev/null; do sleep 0.05; done
kill -TERM "$sig_pid"
wait "$sig_pid"
rc=$?
[ "$rc" -eq 143 ] && ok || bad "train on SIGTERM: exit $rc, want 143 ($(head -c 300 "$TMP/sig.err"))"
contains "$TMP/sig.err" "checkpoint" "train on SIGTERM names its checkpoint"
"$BIN" info "$TMP/sig.ckpt" >/dev/null 2>&1 && ok || bad "the checkpoint written on SIGTERM does not load"

# ---- colorize trained on gray photos: refused before the first step (it used
# to train, then export weights no command would load)
mkdir -p "$TMP/grayset"
for i in 1 2; do "$MK" --image "$TMP/grayset/g$i.png" 24 24 1 8 "$i" || exit 1; done
expect 1 "colorize trained on gray photos" "$BIN" train -q --mode colorize --data "$TMP/grayset" --steps 2 --batch 1 \
  --patch 16 --out "$TMP/gray.ckpt"
contains "$TMP/err" "no colour" "gray training data explained"
absent "$TMP/gray.ckpt" "no checkpoint from gray training data"
expect 2 "train --target-scale out of range" "$BIN" train -q --mode colorize --data "$TMP/in" --steps 1 --batch 1 \
  --patch 16 --target-scale 5e5 --out "$TMP/ts.ckpt"

# ---- eval: the output folder never inside the ground truth
E=(-q --mode colorize --steps 1 -w "$W/colorize.safetensors" --data "$TMP/in")
expect 2 "eval -o inside --data" "$BIN" eval "${E[@]}" -o "$TMP/in/sub"
contains "$TMP/err" "inside --data" "eval nested -o explained"
expect 2 "eval -o through a link into --data" "$BIN" eval "${E[@]}" -o "$TMP/link_train/x"
expect 0 "eval -o outside" "$BIN" eval "${E[@]}" -o "$TMP/eval_out"
untouched "eval"

# ---- files that are not regular files never block a command (a FIFO waits
# for a writer forever if opened plainly); timeout turns a hang into a failure
mkfifo "$TMP/fifo.png" "$TMP/fifo.safetensors"
: >"$TMP/zero.png"
expect 1 "info on a FIFO" timeout 60 "$BIN" info "$TMP/fifo.png"
contains "$TMP/err" "not a regular file" "info FIFO explained"
expect 1 "info on an empty file" timeout 60 "$BIN" info "$TMP/zero.png"
contains "$TMP/err" "empty file (0 bytes)" "info empty file explained"
expect 1 "-w a FIFO" timeout 60 "$BIN" colorize --steps 1 -w "$TMP/fifo.safetensors" "$TMP/in/a.png" -o "$TMP/fifo_out.png"
contains "$TMP/err" "not a regular file" "-w FIFO explained"
expect 1 "--mask a FIFO" timeout 60 "$BIN" inpaint --steps 1 -w "$W/inpaint.safetensors" --mask "$TMP/fifo.png" "$TMP/in/a.png" -o "$TMP/fifo_out.png"
contains "$TMP/err" "not a regular file" "--mask FIFO explained"
expect 1 "train --init a FIFO" timeout 60 "$BIN" train -q --init "$TMP/fifo.safetensors" --data "$TMP/in" --steps 1 --out "$TMP/fifo.ckpt"
absent "$TMP/fifo_out.png" "no output after a FIFO"

# ---- output names of 245-255 bytes are legal: the temp file beside them
# (".NAME.tmpXXXXXX") must not break the 255-byte limit
for len in 245 251 255; do
  long=$(head -c $((len - 4)) /dev/zero | tr '\0' 'n').png
  expect 0 "an output name of $len bytes" "$BIN" colorize --steps 1 -w "$W/colorize.safetensors" "$TMP/in/a.png" -o "$TMP/$long"
  exists "$TMP/$long" "output named with $len bytes"
done
no_tmp=$(find "$TMP" -maxdepth 1 -name '.*tmp*' | head -1)
[ -z "$no_tmp" ] && ok || bad "temp file left: $no_tmp"

# ---- --skip-existing: an empty output is not a finished one
mkdir -p "$TMP/skip_out"
: >"$TMP/skip_out/a.png"
expect 0 "--skip-existing over an empty output" "$BIN" colorize --steps 1 -w "$W/colorize.safetensors" --skip-existing "$TMP/in" -o "$TMP/skip_out"
contains "$TMP/err" "was empty" "the empty output is named"
"$BIN" info "$TMP/skip_out/a.png" >/dev/null 2>&1 && ok || bad "the empty output was not restored"
cp "$TMP/skip_out/a.png" "$TMP/skip_a.png"
expect 0 "--skip-existing again" "$BIN" colorize --steps 1 -w "$W/colorize.safetensors" --skip-existing "$TMP/in" -o "$TMP/skip_out"
same "$TMP/skip_out/a.png" "$TMP/skip_a.png" "a finished output is skipped, untouched"

# ---- messages name the file and the real reason
expect 1 "-w a PNG" "$BIN" colorize --steps 1 -w "$TMP/in/a.png" "$TMP/in/a.png" -o "$TMP/msg_out.png"
contains "$TMP/err" "not a safetensors file: it is a PNG image" "-w PNG explained"
expect 2 "--box beyond the value limit" "$BIN" inpaint --steps 1 -w "$W/inpaint.safetensors" --box 2147483640,0,100,100 "$TMP/in/a.png" -o "$TMP/msg_out.png"
contains "$TMP/err" "within -1000000000..1000000000" "--box limit named"
esc_name="$TMP/$(printf 'esc\033[31mname').png"
printf 'not an image' >"$esc_name"
expect 1 "a file name with ESC" "$BIN" colorize --steps 1 -w "$W/colorize.safetensors" "$esc_name" -o "$TMP/msg_out.png"
if grep -q $'\033' "$TMP/err"; then bad "ESC printed raw: $(od -c "$TMP/err" | head -2)"; else ok; fi
contains "$TMP/err" 'esc\x1b[31mname' "ESC escaped as \\x1b"
expect 1 "info on a name with ESC" "$BIN" info "$esc_name"
if grep -q $'\033' "$TMP/err"; then bad "info: ESC printed raw"; else ok; fi
rm -f "$esc_name"

# ---- what a folder walk passes over is counted as skipped, and named under -v
mkdir -p "$TMP/walk"
cp "$TMP/in/a.png" "$TMP/walk/a.png"
cp "$TMP/in/a.png" "$TMP/walk/.hidden.png"
mkfifo "$TMP/walk/pipe.png"
expect 0 "a folder with a hidden image and a FIFO" timeout 120 "$BIN" colorize --steps 1 -w "$W/colorize.safetensors" "$TMP/walk" -o "$TMP/walk_out"
contains "$TMP/err" "1 done, 0 failed, 2 skipped" "hidden file and FIFO counted as skipped"
lacks "$TMP/err" "pipe.png" "no names without -v"
expect 0 "the same with -v" timeout 120 "$BIN" colorize -v --steps 1 -w "$W/colorize.safetensors" "$TMP/walk" -o "$TMP/walk_out2"
contains "$TMP/err" ".hidden.png: skipped: a hidden file" "-v names the hidden file"
contains "$TMP/err" "pipe.png: skipped: not a regular file" "-v names the FIFO"
absent "$TMP/walk_out2/.hidden.png" "the hidden file is not restored"

# ---- one walking rule for every command: directory links are followed,
# loops are not (train's data walk is tested above)
mkdir -p "$TMP/lw/real" "$TMP/elsewhere"
cp "$TMP/in/a.png" "$TMP/lw/real/r.png"
cp "$TMP/in/a.png" "$TMP/elsewhere/e.png"
ln -s "$TMP/elsewhere" "$TMP/lw/linked"
ln -s .. "$TMP/lw/real/up"
expect 0 "restore -r through a directory link and past a loop" timeout 120 "$BIN" colorize --steps 1 -w "$W/colorize.safetensors" -r "$TMP/lw" -o "$TMP/lw_out"
exists "$TMP/lw_out/linked/e.png" "a linked directory is walked"
exists "$TMP/lw_out/real/r.png" "the real directory is walked"
contains "$TMP/err" "2 done, 0 failed" "each photo once, the loop not followed"

# ---- export with a working size for restore (colorize only)
expect 0 "export --render-size" "$BIN" train -q --resume "$TMP/ok.ckpt" --export "$TMP/ok_r.safetensors" --render-size 256
"$BIN" info "$TMP/ok_r.safetensors" >"$TMP/info_r" 2>&1
contains "$TMP/info_r" "render_size = 256" "the working size is in the weights"
"$BIN" train -q --mode inpaint --config base=8,mult=1,2,res=1,attn=,groups=2 --data "$TMP/in" --steps 1 --batch 1 --patch 16 --out "$TMP/inp.ckpt" >/dev/null 2>&1
expect 2 "export --render-size of an inpaint model" "$BIN" train -q --resume "$TMP/inp.ckpt" --export "$TMP/inp.safetensors" --render-size 256
absent "$TMP/inp.safetensors" "nothing exported when refused"

finish test_cli_protect
