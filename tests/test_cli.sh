#!/usr/bin/env bash
# CLI behaviour: help for every command, usage errors (exit 2 + a hint),
# failures (exit 1, message naming the file), info and forward.
# Usage: test_cli.sh path/to/diffrestore SOURCE_DIR
set -u
BIN="$1"
SRC="$2"
. "$(dirname "$0")/lib.sh"
tmp_make

# --- top level
expect 0 "--help" "$BIN" --help
contains "$TMP/out" "Commands:" "--help lists commands"
expect 0 "--version" "$BIN" --version
contains "$TMP/out" "diffrestore " "--version prints a version"
expect 2 "no command" "$BIN"
expect 2 "unknown command" "$BIN" frobnicate
contains "$TMP/err" "Try 'diffrestore --help'" "unknown command hint"

# --- every listed command has --help, and rejects an unknown option with exit 2
cmds=$("$BIN" --help | awk '/^Commands:/{f=1;next} f&&/^  [a-z]/{print $1} /^$/{if(f)exit}')
[ -n "$cmds" ] && ok || bad "no commands parsed from --help"
for c in $cmds; do
  expect 0 "$c --help" "$BIN" "$c" --help
  contains "$TMP/out" "Usage: diffrestore $c" "$c --help usage line"
  expect 0 "$c --version" "$BIN" "$c" --version
  contains "$TMP/out" "diffrestore " "$c --version prints the version"
  expect 2 "$c --bogus" "$BIN" "$c" --bogus-option
  contains "$TMP/err" "diffrestore $c --help" "$c usage hint"
done

# --- info
W="$SRC/tests/data/ref_tiny.weights.safetensors"
expect 0 "info weights" "$BIN" info "$W"
contains "$TMP/out" "mode = inpaint" "info shows metadata"
contains "$TMP/out" "128 tensors" "info shows tensor count"
expect 2 "info without file" "$BIN" info
printf 'hello' >"$TMP/text.png"
expect 1 "info on text named .png" "$BIN" info "$TMP/text.png"
contains "$TMP/err" "text.png" "error names the file"
expect 1 "info on missing file" "$BIN" info "$TMP/nope.png"
contains "$TMP/err" "nope.png" "missing file named"
expect 2 "threads not a number" "$BIN" info --threads abc "$W"

# --- forward: reproduces the PyTorch dump through the CLI
IO="$SRC/tests/data/ref_tiny.io.safetensors"
expect 0 "forward" "$BIN" forward -q -w "$W" "$IO" "$TMP/y.safetensors"
[ -s "$TMP/y.safetensors" ] && ok || bad "forward wrote nothing"
expect 0 "info on forward output" "$BIN" info "$TMP/y.safetensors"
contains "$TMP/out" "1 tensors" "forward output has y"
expect 2 "forward without weights" "$BIN" forward "$IO" "$TMP/y2.safetensors"
expect 1 "forward with bad weights" "$BIN" forward -w "$IO" "$IO" "$TMP/y3.safetensors"
contains "$TMP/err" "ref_tiny.io.safetensors" "bad weights named"
[ ! -e "$TMP/y3.safetensors" ] && ok || bad "failed forward left an output"
expect 2 "forward onto its input" "$BIN" forward -w "$W" "$IO" "$IO"

# --- train --init: usage errors, and wrong-mode weights named
expect 2 "train --init with --resume" "$BIN" train --init "$W" --resume "$TMP/c.ckpt" --data "$TMP" --out "$TMP/c.ckpt"
contains "$TMP/err" "exclude each other" "--init/--resume conflict explained"
mkdir -p "$TMP/data"
expect 1 "train --init wrong mode" "$BIN" train -q --mode colorize --init "$W" --data "$TMP/data" --out "$TMP/c.ckpt" --steps 1
contains "$TMP/err" "weights for inpaint" "wrong-mode --init weights named"
[ ! -e "$TMP/c.ckpt" ] && ok || bad "refused --init left a checkpoint"

# --- train --validate: usage errors
expect 2 "train --validate=bogus" "$BIN" train --validate=bogus --init "$W" --val "$TMP/data"
contains "$TMP/err" "'bogus'" "--validate's bad value named"
expect 2 "train --validate=params of weights" "$BIN" train --validate=params --init "$W" --val "$TMP/data"
contains "$TMP/err" "needs --resume" "--validate=params needs a checkpoint"
expect 2 "train --validate without --val" "$BIN" train --validate --init "$W"
expect 2 "train --val-batches 0" "$BIN" train --validate --val-batches 0 --init "$W" --val "$TMP/data"
contains "$TMP/err" "--val-batches needs 1..4096" "bad --val-batches named"

# --- train --masks / --scale-dist (issue 14): parsing, bad values, wrong modes
expect 0 "train --help" "$BIN" train --help
contains "$TMP/out" "--masks M" "train --help lists --masks"
contains "$TMP/out" "--scale-dist D" "train --help lists --scale-dist"
contains "$TMP/out" "--ema-probe D[,D...]" "train --help lists --ema-probe"
contains "$TMP/out" "--augment A" "train --help lists --augment"
contains "$TMP/out" "--zoom-max Z" "train --help lists --zoom-max"
contains "$TMP/out" "--val-patch P" "train --help lists --val-patch"
contains "$TMP/out" "--anneal N[:K]" "train --help lists --anneal"
expect 2 "train --masks cracks" "$BIN" train --masks cracks --mode inpaint --data "$TMP/data" --out "$TMP/m.ckpt"
contains "$TMP/err" "--masks must be legacy or damage, not 'cracks'" "bad --masks named"
expect 2 "train --masks empty" "$BIN" train --masks "" --mode inpaint --data "$TMP/data" --out "$TMP/m.ckpt"
expect 2 "train --scale-dist low" "$BIN" train --scale-dist low --mode superres --data "$TMP/data" --out "$TMP/m.ckpt"
contains "$TMP/err" "--scale-dist must be uniform or high, not 'low'" "bad --scale-dist named"
expect 2 "train --scale-dist HIGH" "$BIN" train --scale-dist HIGH --mode superres --data "$TMP/data" --out "$TMP/m.ckpt"
expect 1 "train --masks damage on colorize" "$BIN" train -q --mode colorize --masks damage --data "$TMP/data" --out "$TMP/m.ckpt" --steps 1
contains "$TMP/err" "--masks damage is only for inpaint" "--masks is inpaint's"
expect 1 "train --scale-dist high on inpaint weights" "$BIN" train -q --init "$W" --scale-dist high --data "$TMP/data" --out "$TMP/m.ckpt" --steps 1
contains "$TMP/err" "--scale-dist high is only for superres" "--scale-dist is superres'"
# --- train --zoom-max: parsing and bad values (the option itself: test_train)
for z in 0.5 5 x ""; do
  expect 2 "train --zoom-max '$z'" "$BIN" train --zoom-max "$z" --mode superres --data "$TMP/data" --out "$TMP/m.ckpt"
  contains "$TMP/err" "--zoom-max needs 1..4, got '$z'" "bad --zoom-max '$z' named"
done
absent "$TMP/m.ckpt" "a refused --zoom-max writes no checkpoint"
# --- train --anneal: parsing and bad values (the schedule itself: test_train)
for a in -1 x 4:0 4:9 1:2 4: :2 "4:2:1" ""; do
  expect 2 "train --anneal '$a'" "$BIN" train --anneal "$a" --mode superres --data "$TMP/data" --out "$TMP/m.ckpt"
  contains "$TMP/err" "--anneal needs N or N:K, N >= 0 steps in K = 1..8 stages (N >= K), got '$a'" "bad --anneal '$a' named"
done
absent "$TMP/m.ckpt" "a refused --anneal writes no checkpoint"
# --- train --augment: parsing and bad values (reaching the checkpoint: test_cli_protect)
expect 2 "train --augment rot45" "$BIN" train --augment rot45 --mode superres --data "$TMP/data" --out "$TMP/m.ckpt"
contains "$TMP/err" "--augment must be flip or dihedral, not 'rot45'" "bad --augment named"
expect 2 "train --augment empty" "$BIN" train --augment "" --mode superres --data "$TMP/data" --out "$TMP/m.ckpt"
contains "$TMP/err" "--augment must be flip or dihedral, not ''" "empty --augment named"
expect 2 "train --val-patch 4" "$BIN" train --val-patch 4 --mode superres --data "$TMP/data" --out "$TMP/m.ckpt"
contains "$TMP/err" "--val-patch needs 8..1024" "bad --val-patch named"
# --- train --ema-probe: parsing and its need of --val

expect 2 "train --ema-probe 1.5" "$BIN" train --ema-probe 0.99,1.5 --mode inpaint --data "$TMP/data" --out "$TMP/m.ckpt"
contains "$TMP/err" "--ema-probe needs decays in 0..1" "bad --ema-probe named"
expect 2 "train --ema-probe five" "$BIN" train --ema-probe 0.9,0.99,0.995,0.998,0.999 --mode inpaint --data "$TMP/data" --out "$TMP/m.ckpt"
contains "$TMP/err" "at most 4 decays" "too many probes named"
expect 1 "train --ema-probe without --val" "$BIN" train -q --mode inpaint --ema-probe 0.99 --data "$TMP/data" --out "$TMP/m.ckpt" --steps 1
contains "$TMP/err" "they need --val DIR" "probes need --val"
[ ! -e "$TMP/m.ckpt" ] && ok || bad "refused recipe options left a checkpoint"

# --- train --resume --lr: the rate from the checkpoint's step on, said in the log
mkdir -p "$TMP/lrdata" && cp "$SRC/samples/mountains_128x96.png" "$TMP/lrdata/"
expect 0 "train 2 steps for --lr on resume" "$BIN" train -q --mode colorize --config base=8,mult=1,2,res=1,attn=1,groups=2 \
  --batch 2 --patch 16 --data "$TMP/lrdata" --out "$TMP/lr.ckpt" --steps 2 --lr 1e-3
expect 0 "train --resume --lr 2.5e-4" "$BIN" train --resume "$TMP/lr.ckpt" --out "$TMP/lr.ckpt" --data "$TMP/lrdata" --steps 3 --lr 2.5e-4
contains "$TMP/err" "learning rate 0.001 -> 0.00025 from step 2" "resume --lr is logged"
expect 0 "train --resume --batch --seed" "$BIN" train -q --resume "$TMP/lr.ckpt" --out "$TMP/lr.ckpt" --data "$TMP/lrdata" --steps 4 --batch 8 --seed 9
contains "$TMP/err" "note: --batch, --seed: kept from the checkpoint" "resume says which given options it keeps"
# --- train --init: options the weights fix are named, not dropped in silence
expect 0 "train 1 superres step" "$BIN" train -q --mode superres --config base=8,mult=1,2,res=1,attn=1,groups=2 \
  --batch 2 --patch 16 --data "$TMP/lrdata" --out "$TMP/ini.ckpt" --steps 1
expect 0 "export it" "$BIN" train -q --resume "$TMP/ini.ckpt" --export "$TMP/ini.safetensors"
expect 0 "train --init --scales --config" "$BIN" train --init "$TMP/ini.safetensors" --scales 4-4 --config base=16 \
  --batch 2 --patch 16 --data "$TMP/lrdata" --out "$TMP/ini2.ckpt" --steps 1
contains "$TMP/err" "note: --config, --scales: taken from the weights $TMP/ini.safetensors on --init" "init says which given options the weights fix"
expect 0 "info on the --init run" "$BIN" info "$TMP/ini2.ckpt"
contains "$TMP/out" "scale_min = 2" "init keeps the weights' scale range"
expect 0 "train --init --seed" "$BIN" train --init "$TMP/ini.safetensors" --seed 3 \
  --batch 2 --patch 16 --data "$TMP/lrdata" --out "$TMP/ini3.ckpt" --steps 1
lacks "$TMP/err" "note:" "init with only recipe options adds no note"
expect 2 "train --lr 0" "$BIN" train --mode colorize --data "$TMP/data" --out "$TMP/lr0.ckpt" --lr 0
contains "$TMP/err" "above 0" "--lr 0 refused"

# --- train --dropout: parsing, stored in the checkpoint, kept or changed on resume
expect 0 "train --help" "$BIN" train --help
contains "$TMP/out" "--dropout P          ResBlock dropout in training only (default 0)" "train --help lists --dropout"
for p in 1 -0.1 0.5x; do
  expect 2 "train --dropout $p" "$BIN" train --dropout "$p" --mode colorize --data "$TMP/lrdata" --out "$TMP/d.ckpt"
  contains "$TMP/err" "--dropout needs 0 <= P < 1" "--dropout $p refused"
done
expect 0 "train --dropout 0.2" "$BIN" train -q --mode colorize --config base=8,mult=1,2,res=1,attn=1,groups=2 \
  --batch 2 --patch 16 --data "$TMP/lrdata" --out "$TMP/d.ckpt" --steps 1 --dropout 0.2
expect 0 "info on a dropout checkpoint" "$BIN" info "$TMP/d.ckpt"
contains "$TMP/out" "dropout = 0.200000003" "the checkpoint stores dropout"
expect 0 "train --resume" "$BIN" train -q --resume "$TMP/d.ckpt" --out "$TMP/d.ckpt" --data "$TMP/lrdata" --steps 2
expect 0 "info after resume" "$BIN" info "$TMP/d.ckpt"
contains "$TMP/out" "dropout = 0.200000003" "resume keeps dropout"
expect 0 "train --resume --dropout 0.1" "$BIN" train --resume "$TMP/d.ckpt" --out "$TMP/d.ckpt" --data "$TMP/lrdata" --steps 3 --dropout 0.1
contains "$TMP/err" "dropout 0.2 -> 0.1 from step 2" "resume --dropout is logged"
expect 0 "info after resume --dropout" "$BIN" info "$TMP/d.ckpt"
contains "$TMP/out" "dropout = 0.100000001" "resume --dropout is stored"
expect 0 "info on a checkpoint without dropout" "$BIN" info "$TMP/lr.ckpt"
lacks "$TMP/out" "dropout" "a run without dropout stores no dropout key"

# --- train --cond-dropout and restore/eval --guidance (classifier-free guidance;
# the batches and the guided sampler: test_train, test_restore)
expect 0 "train --help" "$BIN" train --help
contains "$TMP/out" "--cond-dropout P" "train --help lists --cond-dropout"
for p in 1 -0.1 x; do
  expect 2 "train --cond-dropout $p" "$BIN" train --cond-dropout "$p" --mode colorize --data "$TMP/lrdata" --out "$TMP/cd.ckpt"
  contains "$TMP/err" "--cond-dropout needs 0 <= P < 1" "--cond-dropout $p refused"
done
absent "$TMP/cd.ckpt" "a refused --cond-dropout writes no checkpoint"
expect 0 "train --cond-dropout 0.2" "$BIN" train -q --mode colorize --config base=8,mult=1,2,res=1,attn=1,groups=2 \
  --batch 2 --patch 16 --data "$TMP/lrdata" --out "$TMP/cd.ckpt" --steps 1 --cond-dropout 0.2
expect 0 "train --resume --cond-dropout 0.5" "$BIN" train --resume "$TMP/cd.ckpt" --out "$TMP/cd.ckpt" --data "$TMP/lrdata" --steps 2 --cond-dropout 0.5
contains "$TMP/err" "note: --cond-dropout: kept from the checkpoint" "resume keeps cond_dropout and says so"
expect 0 "export a cond_dropout model" "$BIN" train -q --resume "$TMP/cd.ckpt" --export "$TMP/cd.safetensors"
expect 0 "info on it" "$BIN" info "$TMP/cd.safetensors"
contains "$TMP/out" "cond_dropout = 0.2" "the weights carry cond_dropout"
expect 0 "colorize --help" "$BIN" colorize --help
contains "$TMP/out" "--guidance W" "colorize --help lists --guidance"
expect 0 "eval --help" "$BIN" eval --help
contains "$TMP/out" "--guidance W" "eval --help lists --guidance"
for g in 21 -1 x; do
  expect 2 "colorize --guidance $g" "$BIN" colorize -w "$TMP/cd.safetensors" --guidance "$g" "$SRC/samples/kitten_gray.png" -o "$TMP/g.png"
  contains "$TMP/err" "--guidance needs 0..20" "--guidance $g refused"
done
expect 0 "colorize --guidance 2" "$BIN" colorize -q -t 1 --steps 2 -w "$TMP/cd.safetensors" --guidance 2 "$SRC/samples/kitten_gray.png" -o "$TMP/g2.png"
expect 0 "colorize off" "$BIN" colorize -q -t 1 --steps 2 -w "$TMP/cd.safetensors" "$SRC/samples/kitten_gray.png" -o "$TMP/g0.png"
expect 0 "colorize --guidance 1" "$BIN" colorize -q -t 1 --steps 2 -w "$TMP/cd.safetensors" --guidance 1 "$SRC/samples/kitten_gray.png" -o "$TMP/g1.png"
if ! cmp -s "$TMP/g0.png" "$TMP/g1.png"; then bad "--guidance 1 changed the output"; else ok; fi
if cmp -s "$TMP/g0.png" "$TMP/g2.png"; then bad "--guidance 2 did not change the output"; else ok; fi
expect 0 "eval --guidance 2" "$BIN" eval -q -t 1 --steps 2 --mode colorize --data "$SRC/samples/kitten_gray.png" -w "$TMP/cd.safetensors" --guidance 2
contains "$TMP/out" ", guidance 2" "eval's header names the guidance"
expect 0 "export a model without cond_dropout" "$BIN" train -q --resume "$TMP/d.ckpt" --export "$TMP/d.safetensors"
expect 1 "colorize --guidance 2 with weights without cond_dropout" "$BIN" colorize -t 1 --steps 2 -w "$TMP/d.safetensors" --guidance 2 "$SRC/samples/kitten_gray.png" -o "$TMP/g3.png"
contains "$TMP/err" "needs weights trained with conditioning dropout" "guidance without cond_dropout: the reason"
absent "$TMP/g3.png" "a refused guidance writes no output"
# the weights' own guidance (train --guidance at export): restore's default, overridable
expect 0 "export --guidance 2" "$BIN" train -q --resume "$TMP/cd.ckpt" --export "$TMP/cd2.safetensors" --guidance 2
expect 0 "info" "$BIN" info "$TMP/cd2.safetensors"
contains "$TMP/out" "guidance = 2" "the export carries guidance"
expect 0 "colorize with the weights' guidance" "$BIN" colorize -q -t 1 --steps 2 -w "$TMP/cd2.safetensors" "$SRC/samples/kitten_gray.png" -o "$TMP/ga.png"
expect 0 "colorize --guidance 0 overrides it" "$BIN" colorize -q -t 1 --steps 2 -w "$TMP/cd2.safetensors" --guidance 0 "$SRC/samples/kitten_gray.png" -o "$TMP/gz.png"
expect 0 "eval with the weights' guidance" "$BIN" eval -q -t 1 --steps 2 --mode colorize --data "$SRC/samples/kitten_gray.png" -w "$TMP/cd2.safetensors"
contains "$TMP/out" ", guidance 2" "eval's header names the weights' guidance"
if cmp -s "$TMP/ga.png" "$TMP/gz.png"; then bad "the weights' guidance was not applied"; else ok; fi
expect 1 "export --guidance 2 of a checkpoint without cond_dropout" "$BIN" train -q --resume "$TMP/d.ckpt" --export "$TMP/d2.safetensors" --guidance 2
contains "$TMP/err" "needs cond_dropout" "export --guidance without cond_dropout: the reason"
absent "$TMP/d2.safetensors" "a refused export --guidance leaves no file"
expect 2 "train --guidance on a training run" "$BIN" train --guidance 2 --mode colorize --data "$TMP/lrdata" --out "$TMP/cdg.ckpt"
contains "$TMP/err" "--guidance is only for an export" "train --guidance outside an export refused"

# --- scripts/ship_check.sh: the ship rule (lower on every val crop set) as one command.
# A model trained 60 steps on the val photo against one of 1 step: lower on both sets.
SC="$SRC/scripts/ship_check.sh"
TINY=(--mode colorize --config base=8,mult=1,2,res=1,attn=1,groups=2 --batch 2 --patch 16 --data "$TMP/lrdata" --lr 1e-3)
expect 0 "train 1 step (ship_check's old model)" "$BIN" train -q "${TINY[@]}" --out "$TMP/sc_old.ckpt" --steps 1
expect 0 "train 60 steps (ship_check's new model)" "$BIN" train -q "${TINY[@]}" --out "$TMP/sc_new.ckpt" --steps 60
expect 0 "export the new model" "$BIN" train -q --resume "$TMP/sc_new.ckpt" --export "$TMP/sc_new.safetensors"
# --validate measures on crops of --patch, for a checkpoint too (it trained at 16): a
# checkpoint and its F16 export agree at 32, and 32 is not the checkpoint's 16
vx0() { "$BIN" train --validate "$@" --val "$TMP/lrdata" --val-seed 1 --val-batches 2 2>/dev/null | awk '/val_x0_mse/ {print $4}'; }
v16=$(vx0 --resume "$TMP/sc_new.ckpt" --patch 16)
v32=$(vx0 --resume "$TMP/sc_new.ckpt" --patch 32)
w32=$(vx0 --init "$TMP/sc_new.safetensors" --patch 32)
awk -v a="$v16" -v b="$v32" -v w="$w32" 'BEGIN {d = (w - b) / b; exit !(a != "" && b != "" && a != b && d < 0.02 && d > -0.02)}' &&
  ok || bad "validate --patch: checkpoint at 16 $v16, at 32 $v32, its export at 32 $w32"
# and the same x0 error by noise level: five fifths of t holding the 32 crops
"$BIN" train --validate --resume "$TMP/sc_new.ckpt" --val "$TMP/lrdata" --val-seed 1 --val-batches 2 >"$TMP/bands" 2>/dev/null
awk '/^x0_by_t / {n = 0; for (i = 2; i <= NF; i += 3) {n += $(i + 2); if ($i != (i - 2) / 3 * 200 "-" (i - 2) / 3 * 200 + 199) bad = 1}
  found = NF == 16 && n == 32 && !bad} END {exit !found}' "$TMP/bands" &&
  [ "$(grep -c val_x0_mse "$TMP/bands")" = 1 ] && ok || bad "validate's x0_by_t line: $(cat "$TMP/bands")"
# EVAL_SEEDS="": the x0 rule alone here; the eval gate is tested below
export DIFFRESTORE="$BIN" VAL="$TMP/lrdata" SIZES=64:2 EVAL_SEEDS=""
expect 0 "ship_check: better checkpoint ships" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "SHIP: colorize candidate is lower on all 2 sets of val crops" "ship verdict"
[ "$(grep -c '%$' "$TMP/out")" -eq 2 ] && ok || bad "ship_check: want one row per seed: $(cat "$TMP/out")"
expect 0 "ship_check: better weights file ships" bash "$SC" colorize "$TMP/sc_new.safetensors" "$TMP/sc_old.ckpt"
expect 3 "ship_check: worse model holds" bash "$SC" colorize "$TMP/sc_old.ckpt" "$TMP/sc_new.ckpt"
contains "$TMP/out" "HOLD: colorize candidate is lower on 0 of 2 sets" "hold verdict"
expect 3 "ship_check: an equal model holds" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_new.ckpt"
SEEDS=5 expect 0 "ship_check: SEEDS" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "lower on all 1 sets" "SEEDS chooses the sets"
SIZES=32:2 SEEDS=1 expect 0 "ship_check: SIZES" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
grep -q "^32 *1 *32 .*${v32}" "$TMP/out" && ok || bad "ship_check SIZES=32:2: want the candidate's x0 at 32 ($v32): $(cat "$TMP/out")"
SIZES="32:2 64:2" expect 0 "ship_check: two sizes" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
[ "$(grep -c '%$' "$TMP/out")" -eq 4 ] && ok || bad "ship_check: want a row per size and seed: $(cat "$TMP/out")"
contains "$TMP/out" "lower on all 4 sets" "every size and seed decides"
SIZES=32 expect 2 "ship_check: a size without batches" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "SIZES: '32' is not PATCH:BATCHES" "bad SIZES named"
SIZES=64:08 expect 2 "ship_check: a leading zero" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
SIZES=" " expect 2 "ship_check: no sizes" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "no crop sets to compare" "no sets is not a ship"
SEEDS=" " expect 2 "ship_check: no seeds" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
PATCH=128 expect 2 "ship_check: the old PATCH" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "use SIZES=PATCH:BATCHES" "the old PATCH points to SIZES"
expect 2 "ship_check: missing candidate" bash "$SC" colorize "$TMP/nope.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "nope.ckpt: no such file" "missing candidate named"
expect 2 "ship_check: no arguments" bash "$SC"
expect 1 "ship_check: a text file as candidate" bash "$SC" colorize "$TMP/text.png" "$TMP/sc_old.ckpt"
contains "$TMP/err" "validating $TMP/text.png (seed 1, 64 px) failed" "failed validation names the file, seed and size"
expect 0 "ship_check --help" bash "$SC" --help
contains "$TMP/out" "scripts/ship_check.sh MODE CANDIDATE [SHIPPED]" "ship_check --help usage"
contains "$TMP/out" "The eval gate" "ship_check --help explains the eval gate"
unset EVAL_SEEDS

# --- ship_check's eval gate. End to end with the real binary: colorize gates by
# default on seeds 0 1 2, a row per seed and metric, and the verdict follows the rows.
RC=0
EVAL_CROPS=16 bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt" >"$TMP/out" 2>"$TMP/err" || RC=$?
[ "$(grep -c -E '^16 +[012] +(chroma_psnr|colorfulness_ratio) ' "$TMP/out")" -eq 6 ] && ok ||
  bad "ship_check gate: want 6 eval rows (3 seeds x 2 metrics): $(cat "$TMP/out")"
gate_fell=$(awk '$3 == "chroma_psnr" || $3 == "colorfulness_ratio" {if ($5 < $4) n++} END {print n + 0}' "$TMP/out")
if [ "$gate_fell" -eq 0 ]; then want=0; else want=3; fi
[ "$RC" -eq "$want" ] && ok || bad "ship_check gate: $gate_fell metrics fell, want exit $want, got $RC: $(cat "$TMP/out")"
# the decision, on scripted eval numbers: a wrapper answers eval, the binary the rest
cat >"$TMP/fakedr" <<FAKE
#!/usr/bin/env bash
if [ "\$1" != eval ]; then exec "$BIN" "\$@"; fi
echo "\$*" >>"$TMP/fake_args"
[ -z "\${FAKE_FAIL:-}" ] || { echo "diffrestore: scripted failure" >&2; exit 1; }
w= ; s= ; c=
while [ \$# -gt 0 ]; do case "\$1" in -w) w="\$2"; shift ;; --seed) s="\$2"; shift ;; --crop) c="\$2"; shift ;; esac; shift; done
case "\$w" in *candidate*|*sc_new*) who=CAND ;; *) who=SHIP ;; esac
v="FAKE_\${who}_\${s}_c\$c"; [ -n "\${!v:-}" ] || v="FAKE_\${who}_\$s"
set -- \${!v:-22 0.7}
[ "\$1" = none ] && { echo '{"mean":true,"mode":"colorize","model":{"psnr":1}}'; exit 0; }
echo '{"file":"a.png","model":{"chroma_psnr":0,"colorfulness_ratio":0}}'
echo "{\\"mean\\":true,\\"mode\\":\\"colorize\\",\\"model\\":{\\"psnr\\":\$1,\\"hf_ratio\\":\$2,\\"chroma_psnr\\":\$1,\\"colorfulness_ratio\\":\$2},\\"baseline\\":{\\"chroma_psnr\\":99,\\"colorfulness_ratio\\":9}}"
FAKE
chmod +x "$TMP/fakedr"
export DIFFRESTORE="$TMP/fakedr" EVAL_CROPS=256
expect 0 "ship_check gate: equal eval numbers ship" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "SHIP: colorize candidate is lower on all 2 sets of val crops, and none of 6 eval metrics falls" "gate ship verdict"
FAKE_CAND_1="22.5 0.8" expect 0 "ship_check gate: better eval numbers ship" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
grep -q '^256 *1 *chroma_psnr *22 *22.5 *+0.500$' "$TMP/out" && ok || bad "ship_check gate: want the seed-1 chroma row: $(cat "$TMP/out")"
FAKE_CAND_2="21.99 0.7" expect 3 "ship_check gate: chroma falls on one seed" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "HOLD: colorize candidate is lower on all 2 sets of val crops, but 1 of 6 eval metrics fall" "gate hold verdict"
FAKE_CAND_0="23 0.69" expect 3 "ship_check gate: colourfulness falls" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
FAKE_SHIP_0="21 0.9" FAKE_SHIP_1="21 0.9" expect 3 "ship_check gate: more accurate, less colourful holds" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "but 2 of 6 eval metrics fall" "each fallen metric counts"
EVAL_SEEDS=7 FAKE_CAND_7="20 0.5" expect 3 "ship_check gate: EVAL_SEEDS chooses the seeds" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "but 2 of 2 eval metrics fall" "one seed, two metrics"
FAKE_CAND_0="20 0.5" EVAL_SEEDS="" expect 0 "ship_check gate: EVAL_SEEDS=\"\" turns it off" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
grep -q chroma_psnr "$TMP/out" && bad "ship_check gate: off, yet eval rows: $(cat "$TMP/out")" || ok
FAKE_FAIL=1 expect 3 "ship_check gate: no eval when the x0 rule holds" bash "$SC" colorize "$TMP/sc_old.ckpt" "$TMP/sc_new.ckpt"
FAKE_FAIL=1 expect 1 "ship_check gate: a failed eval" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "(seed 0, crop 256) failed: diffrestore: scripted failure" "failed eval named with its seed and reason"
FAKE_CAND_1=none expect 1 "ship_check gate: a metric missing from eval" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "no chroma_psnr in eval's mean line (seed 1, crop 256)" "missing metric named"
EVAL_SEEDS="0 x" expect 2 "ship_check gate: a bad seed" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "EVAL_SEEDS: 'x' is not a seed" "bad eval seed named"
EVAL_CROPS="256 x" expect 2 "ship_check gate: a bad crop" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "EVAL_CROPS: 'x' is not a crop size" "bad crop named"
EVAL_CROPS=" " expect 2 "ship_check gate: no crops" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
EVAL_CROP=256 expect 2 "ship_check gate: the old EVAL_CROP" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "EVAL_CROP is now EVAL_CROPS" "the old EVAL_CROP points to EVAL_CROPS"
# colorize's default crops: the README's 256 and the whole photos (0), each decides
unset EVAL_CROPS
expect 0 "ship_check gate: the default crops" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "none of 12 eval metrics falls" "2 crops x 3 seeds x 2 metrics"
[ "$(grep -c -E '^0 +[012] +' "$TMP/out")" -eq 6 ] && [ "$(grep -c -E '^256 +[012] +' "$TMP/out")" -eq 6 ] && ok ||
  bad "ship_check gate: want 6 rows at crop 256 and 6 at 0: $(cat "$TMP/out")"
grep -q -- '--crop 0 ' "$TMP/fake_args" && ok || bad "ship_check gate: no whole-photo eval: $(tail -3 "$TMP/fake_args")"
FAKE_CAND_1_c0="21 0.7" expect 3 "ship_check gate: falls on whole photos only" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "but 1 of 12 eval metrics fall" "a whole-photo fall holds"
grep -q '^0 *1 *chroma_psnr *22 *21 *-1.000$' "$TMP/out" && ok || bad "ship_check gate: want the whole-photo row: $(cat "$TMP/out")"
# superres gates by default too (session 50): x4, crop 256, seeds 0 1 2, PSNR and HF
# ratio; inpaint does not (a scripted eval failure would show)
rm -f "$TMP/fake_args"
expect 0 "ship_check gate: superres by default" bash "$SC" superres "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
[ "$(grep -c -E '^256 +[012] +(psnr|hf_ratio) ' "$TMP/out")" -eq 6 ] && ok ||
  bad "ship_check gate: want 6 superres rows (3 seeds x PSNR, HF): $(cat "$TMP/out")"
[ "$(grep -c -- '--mode superres .*--scale 4 -w' "$TMP/fake_args")" -eq 6 ] && ok ||
  bad "ship_check gate: want 6 superres evals at x4: $(cat "$TMP/fake_args")"
FAKE_CAND_2="23 0.69" expect 3 "ship_check gate: superres HF falls" bash "$SC" superres "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "HOLD: superres candidate is lower on all 2 sets of val crops, but 1 of 6 eval metrics fall" "superres hf verdict"
FAKE_CAND_0="21.9 0.8" expect 3 "ship_check gate: superres PSNR falls" bash "$SC" superres "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
grep -q '^256 *0 *psnr *22 *21.9 *-0.100$' "$TMP/out" && ok || bad "ship_check gate: want the seed-0 psnr row: $(cat "$TMP/out")"
FAKE_FAIL=1 expect 0 "ship_check gate: inpaint has none by default" bash "$SC" inpaint "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/out" "SHIP: inpaint candidate is lower on all 2 sets of val crops" "inpaint: the x0 rule alone"
export EVAL_CROPS=256
EVAL_SEEDS=0 expect 2 "ship_check gate: a mode without metrics" bash "$SC" nomode "$TMP/sc_new.ckpt" "$TMP/sc_old.ckpt"
contains "$TMP/err" "no eval metrics for mode 'nomode'" "a mode without metrics is named"
# a checkpoint is exported for eval; colorize runs both at the shipped weights' render_size
expect 0 "export the old model with a render size" "$BIN" train -q --resume "$TMP/sc_old.ckpt" --export "$TMP/sc_old_r.safetensors" --render-size 48
rm -f "$TMP/fake_args"
expect 0 "ship_check gate: shipped weights with a render size" bash "$SC" colorize "$TMP/sc_new.ckpt" "$TMP/sc_old_r.safetensors"
[ "$(grep -c -- '--render-size 48 -w' "$TMP/fake_args")" -eq 6 ] && ok || bad "ship_check gate: want 6 evals at render size 48: $(cat "$TMP/fake_args")"
grep -q -- '-w .*candidate.safetensors' "$TMP/fake_args" && ok || bad "ship_check gate: the checkpoint is exported for eval: $(cat "$TMP/fake_args")"
unset DIFFRESTORE VAL SIZES EVAL_CROPS

# --- scripts/train_val_gap.sh: x0 MSE on the training and the val photos (the same
# helper as ship_check). A mode with no committed weights gives only the EXTRA row;
# the same photos on both sides must give the same MSE: a gap of exactly 0.0.
TVG="$SRC/scripts/train_val_gap.sh"
export DIFFRESTORE="$BIN" TRAIN="$TMP/lrdata" VAL="$TMP/lrdata"
EXTRA="new=--resume $TMP/sc_new.ckpt" expect 0 "train_val_gap: a checkpoint's row" bash "$TVG" nomode 2
contains "$TMP/out" "mode,version,train_steps,train_x0_mse,val_x0_mse,val_over_train_pct" "train_val_gap header"
grep -Eq '^nomode,new,\?,[0-9.e-]+,[0-9.e-]+,0\.0$' "$TMP/out" && ok || bad "train_val_gap: want one row, gap 0.0: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/out")" -eq 2 ] && ok || bad "train_val_gap: want a header and one row: $(cat "$TMP/out")"
EXTRA="bad=--init $TMP/text.png" expect 1 "train_val_gap: a text file as model" bash "$TVG" nomode 2
contains "$TMP/err" "validation of bad (--init $TMP/text.png) failed" "train_val_gap names the failed model"
unset DIFFRESTORE TRAIN VAL

# --- scripts/sample_gap.sh: the model's mean estimate over the baseline on the training
# and the val photos. The same photos on both sides give the same row; a gray photo
# (the gray input is exact: 99 dB) is left out of the mean and counted.
SG="$SRC/scripts/sample_gap.sh"
mkdir -p "$TMP/sgdata" && cp "$SRC/samples/mountains_128x96.png" "$SRC/samples/kitten_gray.png" "$TMP/sgdata/"
export DIFFRESTORE="$BIN" TRAIN="$TMP/sgdata" VAL="$TMP/sgdata" CROP=64 VAL_SEEDS="0 1"
expect 0 "sample_gap: two rows of val, one of train" bash "$SG" colorize "tiny=$TMP/sc_new.safetensors"
contains "$TMP/out" "mode,name,train_steps,photos,seed,images,skipped,chroma_psnr,baseline_chroma_psnr,over_baseline_db,colorfulness_ratio" "sample_gap header"
[ "$(grep -c '^colorize,tiny,60,' "$TMP/out")" -eq 3 ] && ok || bad "sample_gap: want 3 rows at step 60: $(cat "$TMP/out")"
grep -Eq '^colorize,tiny,60,val,1,1,1,[0-9.]+,[0-9.]+,-?[0-9.]+,[0-9.]+$' "$TMP/out" && ok ||
  bad "sample_gap: want the seed-1 val row of 1 image with the gray photo skipped: $(cat "$TMP/out")"
tr_row=$(awk -F, '$4 == "train" {$4 = ""; print}' "$TMP/out")
va_row=$(awk -F, '$4 == "val" && $5 == 0 {$4 = ""; print}' "$TMP/out")
[ -n "$tr_row" ] && [ "$tr_row" = "$va_row" ] && ok || bad "sample_gap: the same photos and seed must give the same row: '$tr_row' '$va_row'"
expect 1 "sample_gap: a colorize model as superres" bash "$SG" superres "tiny=$TMP/sc_new.safetensors"
contains "$TMP/err" "eval of tiny ($TMP/sc_new.safetensors) on $TMP/sgdata failed" "sample_gap names the failed model"
TRAIN="$SRC/samples/kitten_gray.png" expect 1 "sample_gap: only gray photos" bash "$SG" colorize "tiny=$TMP/sc_new.safetensors"
contains "$TMP/err" "no scored image" "sample_gap: nothing to score is an error"
expect 2 "sample_gap: a missing weights file" bash "$SG" colorize "tiny=$TMP/none.safetensors"
contains "$TMP/err" "'tiny=$TMP/none.safetensors' is not NAME=WEIGHTS with a readable file" "sample_gap names the bad argument"
[ ! -s "$TMP/out" ] && ok || bad "sample_gap: a bad argument printed rows: $(cat "$TMP/out")"
expect 2 "sample_gap: inpaint is not measured" bash "$SG" inpaint "tiny=$TMP/sc_new.safetensors"
unset DIFFRESTORE TRAIN VAL CROP VAL_SEEDS

# --- scripts/arms_csv.sh: the validation points of a real training CSV, found by
# the header's names, over a resume (the header repeats); bad inputs refused.
AC="$SRC/scripts/arms_csv.sh"
expect 0 "train 4 steps validating every 2 (arms_csv)" "$BIN" train -q "${TINY[@]}" --out "$TMP/arm.ckpt" --steps 4 --val "$TMP/lrdata" --val-every 2 --val-batches 1
expect 0 "resume to 6 steps (arms_csv)" "$BIN" train -q --resume "$TMP/arm.ckpt" --out "$TMP/arm.ckpt" --steps 6 --data "$TMP/lrdata" --val "$TMP/lrdata" --val-every 2 --val-batches 1
expect 0 "arms_csv: a resumed run" bash "$AC" "tiny=$TMP/arm.ckpt.csv"
[ "$(awk -F, 'NR > 1 {printf "%s:%s ", $1, $2}' "$TMP/out")" = "tiny:2 tiny:4 tiny:6 " ] && ok || bad "arms_csv: want rows at steps 2 4 6: $(cat "$TMP/out")"
want=$(awk -F, '$1 == "step" {for (i = 1; i <= NF; i++) c[$i] = i; next} $1 == 4 {print $c["val_x0_mse"]}' "$TMP/arm.ckpt.csv")
[ -n "$want" ] && grep -q "^tiny,4,[0-9.]*,$want\$" "$TMP/out" && ok || bad "arms_csv: step 4's val x0 MSE $want: $(cat "$TMP/out")"
expect 2 "arms_csv: no arms" bash "$AC"
expect 2 "arms_csv: not NAME=CSV" bash "$AC" "$TMP/arm.ckpt.csv"
expect 1 "arms_csv: a missing file" bash "$AC" "x=$TMP/nope.csv"
contains "$TMP/err" "cannot read $TMP/nope.csv" "arms_csv names the missing file"
expect 1 "arms_csv: a CSV without the columns" bash "$AC" "x=$TMP/text.png"
contains "$TMP/err" "has no step, cpu_seconds and val_x0_mse header" "arms_csv says what is missing"

finish test_cli
