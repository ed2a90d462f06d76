#!/usr/bin/env bash
# scripts/average_weights.py on tiny random-init weights: the output is the
# element-wise mean of its inputs rounded to F16 (checked in numpy against the
# inputs), the C loader reads it and restores with it, and it refuses: one
# input, inputs of other modes or configs, a damaged input, an output that is
# an input, an existing output without --overwrite. A refusal exits non-zero,
# names the file and leaves no output and every input as it was.
# Usage: test_average_weights.sh path/to/diffrestore path/to/make_tiny_weights SOURCE_DIR
set -u
BIN="$1"
MK="$2"
SRC="$3"
. "$(dirname "$0")/lib.sh"
tmp_make
cli_clean_env
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
AVG="$SRC/scripts/average_weights.py"
T="$TMP"

"$MK" colorize "$T/a.safetensors" >/dev/null
cp "$T/a.safetensors" "$T/a.copy"
# make_tiny_weights is deterministic: b and c are a with seeded noise added
# (written F32; a is what make_tiny_weights writes), then checked by the C loader
"$PY" - "$SRC" "$T" <<'EOF' || bad "making b and c"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import safetensors_io as st
t, m = st.load_np(sys.argv[2] + "/a.safetensors")
rng = np.random.default_rng(7)
for n in "bc":
    st.save_np(f"{sys.argv[2]}/{n}.safetensors", {k: v + rng.normal(0, 0.05, v.shape) for k, v in t.items()}, m)
m["prediction"] = "eps" if m.get("prediction") == "v" else "v"  # the same tensors, another meaning
st.save_np(f"{sys.argv[2]}/pred.safetensors", t, m)
EOF
expect 0 "the C loader reads b" "$BIN" info "$T/b.safetensors"
"$MK" superres "$T/sr.safetensors" >/dev/null
"$MK" colorize "$T/wide.safetensors" "base=16,mult=1,2,res=1,attn=,groups=2" >/dev/null
sums() { md5sum "$T"/a.safetensors "$T"/b.safetensors "$T"/c.safetensors "$T"/sr.safetensors "$T"/wide.safetensors; }
before=$(sums)

# the mean of three, against numpy on the same inputs
expect 0 "mean of three" "$PY" "$AVG" -o "$T/m.safetensors" "$T/a.safetensors" "$T/b.safetensors" "$T/c.safetensors"
contains "$T/out" "mean of 3 models" "the summary line"
expect 0 "numpy check of the mean" "$PY" - "$SRC" "$T" <<'EOF'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import safetensors_io as st
d = sys.argv[2]
ins = [st.load_np(f"{d}/{n}.safetensors") for n in "abc"]
out, meta = st.load_np(f"{d}/m.safetensors")
assert set(out) == set(ins[0][0]), "tensor names differ"
assert set(st.dtypes(f"{d}/m.safetensors").values()) == {"F16"}, "not all F16"
for k, v in out.items():
    # the mean in float64, to float32, then F16 as the C writer rounds (round to nearest even)
    want = ((ins[0][0][k].astype(np.float64) + ins[1][0][k] + ins[2][0][k]) / 3).astype(np.float32)
    want = want.astype(np.float16).astype(np.float32)
    assert v.shape == want.shape and np.array_equal(v, want), f"{k}: not the F16 mean"
assert any(not np.array_equal(ins[0][0][k], ins[1][0][k]) for k in out), "inputs equal"
assert meta["mode"] == "colorize" and meta["averaged_from"].startswith("train_steps "), meta
for k, v in ins[2][1].items():
    if k != "averaged_from":
        assert meta[k] == v, f"metadata {k}: {meta[k]!r}, the last input has {v!r}"
EOF
expect 0 "info reads the mean" "$BIN" info "$T/m.safetensors"
contains "$T/out" "averaged_from" "info shows averaged_from"
"$MK" --image "$T/gray.png" 24 20 1 8 3 >/dev/null
expect 0 "colorize with the mean" "$BIN" colorize -q -w "$T/m.safetensors" --steps 2 "$T/gray.png" -o "$T/col.png"
size_is "$T/col.png" "24x20 3 8" "colorized with the mean"

# refusals: non-zero, the file named, no output
refuses() { refuses_to_write "$T/r.safetensors" "$1" "$2" "$PY" "$AVG" "${@:3}"; } # refuses "description" NAME-IN-MESSAGE args...
refuses "one input" "at least two" -o "$T/r.safetensors" "$T/a.safetensors"
refuses "another mode" "sr.safetensors" -o "$T/r.safetensors" "$T/a.safetensors" "$T/sr.safetensors"
refuses "another prediction, same shapes" "pred.safetensors" -o "$T/r.safetensors" "$T/a.safetensors" "$T/pred.safetensors"
refuses "another config" "wide.safetensors" -o "$T/r.safetensors" "$T/a.safetensors" "$T/wide.safetensors"
head -c 1000 "$T/b.safetensors" >"$T/cut.safetensors"
refuses "a truncated input" "cut.safetensors" -o "$T/r.safetensors" "$T/a.safetensors" "$T/cut.safetensors"
refuses "a missing input" "nosuch.safetensors" -o "$T/r.safetensors" "$T/a.safetensors" "$T/nosuch.safetensors"
"$PY" "$AVG" -o "$T/a.safetensors" "$T/a.safetensors" "$T/b.safetensors" >"$T/out" 2>"$T/err" && bad "output = input: exit 0"
contains "$T/err" "also an input" "output = input: the reason"
cmp -s "$T/a.safetensors" "$T/a.copy" && ok || bad "output = input: a.safetensors was written"
# an existing output: refused without --overwrite (left as it was), replaced with it
cp "$T/c.safetensors" "$T/r.safetensors"
"$PY" "$AVG" -o "$T/r.safetensors" "$T/a.safetensors" "$T/b.safetensors" >"$T/out" 2>"$T/err" && bad "existing output: exit 0"
contains "$T/err" "--overwrite" "existing output: the way out"
cmp -s "$T/r.safetensors" "$T/c.safetensors" && ok || bad "existing output: replaced without --overwrite"
expect 0 "existing output with --overwrite" "$PY" "$AVG" --overwrite -o "$T/r.safetensors" "$T/a.safetensors" "$T/b.safetensors"
cmp -s "$T/r.safetensors" "$T/c.safetensors" && bad "--overwrite: not replaced" || ok
# an output directory that does not exist: an error naming it, nothing left
"$PY" "$AVG" -o "$T/nodir/r.safetensors" "$T/a.safetensors" "$T/b.safetensors" >"$T/out" 2>"$T/err" && bad "missing output directory: exit 0"
contains "$T/err" "nodir/r.safetensors" "missing output directory: the message names the output"
[ "$(sums)" = "$before" ] && ok || bad "an input changed"
finish test_average_weights
