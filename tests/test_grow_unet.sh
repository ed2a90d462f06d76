#!/usr/bin/env bash
# scripts/grow_unet.py: the grown U-Net computes what the original computes.
# On tiny random-init weights (every tensor non-zero, so a block in the wrong
# place or a skip popped out of order changes the output), for several
# configs (attention on a level whose channels change, on the last level, on
# none; 1 -> 2, 1 -> 3 and 2 -> 3 blocks), the C forward of the grown file
# on random x and t equals the original's bit for bit. The grown file has the
# new config and grown_from, `train --init` trains it (its new zero branches
# leave zero), and the script refuses what it cannot grow: no output, the
# input as it was.
# Usage: test_grow_unet.sh path/to/diffrestore path/to/make_tiny_weights SOURCE_DIR
set -u
BIN="$1"
MK="$2"
SRC="$3"
. "$(dirname "$0")/lib.sh"
tmp_make
cli_clean_env
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
GROW="$SRC/scripts/grow_unet.py"
T="$TMP"

# same_forward NAME MODE CONFIG RES: grow, then compare the two forwards
same_forward() {
  local name="$1" mode="$2" cfg="$3" res="$4"
  "$MK" "$mode" "$T/$name.safetensors" "$cfg" >/dev/null || { bad "$name: make_tiny_weights"; return; }
  expect 0 "$name: grow to $res" "$PY" "$GROW" --res "$res" --seed 3 -o "$T/$name-g.safetensors" "$T/$name.safetensors"
  expect 0 "$name: info reads the grown file" "$BIN" info "$T/$name-g.safetensors"
  contains "$T/out" "grown_from" "$name: grown_from in the metadata"
  # x and t for the forward: 2 images at two noise levels, the file's in_channels
  "$PY" - "$SRC" "$T/$name.safetensors" "$T/$name-in.safetensors" <<'EOF' || bad "$name: making x"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import safetensors_io as st
_, m = st.load_np(sys.argv[2])
side = 2 ** (len(m["channel_mult"].split(",")) - 1) * 4
rng = np.random.default_rng(5)
st.save_np(sys.argv[3], {"x": rng.normal(0, 1, (2, int(m["in_channels"]), side, side)).astype(np.float32),
                         "t": np.array([37.0, 811.0], np.float32)})
EOF
  expect 0 "$name: forward, original" "$BIN" forward -q -t 2 -w "$T/$name.safetensors" "$T/$name-in.safetensors" "$T/$name-y.safetensors"
  expect 0 "$name: forward, grown" "$BIN" forward -q -t 2 -w "$T/$name-g.safetensors" "$T/$name-in.safetensors" "$T/$name-yg.safetensors"
  expect 0 "$name: the same output" "$PY" - "$SRC" "$T/$name" "$res" <<'EOF'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import safetensors_io as st
p, res = sys.argv[2], sys.argv[3]
a, _ = st.load_np(p + "-y.safetensors")
b, _ = st.load_np(p + "-yg.safetensors")
assert np.abs(a["y"]).max() > 0, "the output is zero"
assert np.array_equal(a["y"], b["y"]), f"forwards differ by up to {np.abs(a['y'] - b['y']).max()}"
t, m = st.load_np(p + ".safetensors")
g, mg = st.load_np(p + "-g.safetensors")
assert mg["num_res_blocks"] == res and len(g) > len(t), (mg["num_res_blocks"], len(g), len(t))
for k, v in m.items():
    if k != "num_res_blocks":
        assert mg[k] == v, f"metadata {k}: {mg[k]!r} against {v!r}"
EOF
}
same_forward col1 colorize "base=8,mult=1,2,2,res=1,attn=1,groups=2" 2
same_forward col13 colorize "base=8,mult=1,2,2,res=1,attn=1,groups=2" 3
same_forward sr2 superres "base=8,mult=1,2,2,4,res=2,attn=3,groups=4" 3
same_forward inp inpaint "base=8,mult=1,2,res=2,attn=,groups=2" 4

# training moves the new blocks: after a few steps their zero conv2 is not zero
mkdir -p "$T/data"
for i in 1 2 3; do "$MK" --image "$T/data/p$i.png" 40 36 3 8 "$i" >/dev/null; done
expect 0 "train --init the grown file" "$BIN" train -q --mode colorize --init "$T/col1-g.safetensors" --data "$T/data" \
  --patch 16 --batch 2 --steps 3 --threads 2 --out "$T/g.ckpt"
expect 0 "export" "$BIN" train -q --resume "$T/g.ckpt" --export "$T/trained.safetensors"
expect 0 "the new branches trained" "$PY" - "$SRC" "$T" <<'EOF'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import safetensors_io as st
g, _ = st.load_np(sys.argv[2] + "/col1-g.safetensors")
t, m = st.load_np(sys.argv[2] + "/trained.safetensors")
assert m["num_res_blocks"] == "2", m["num_res_blocks"]
for k in ("down.0.res.1.conv2.weight", "up.2.res.1.conv2.weight", "down.1.attn.1.proj.weight"):
    assert not g[k].any(), f"{k}: not zero in the grown file"
    assert t[k].any(), f"{k}: still zero after training"
EOF

# refusals: non-zero, the file named, no output, the input as it was
"$MK" colorize "$T/a.safetensors" "base=8,mult=1,2,res=2,attn=,groups=2" >/dev/null
before=$(md5sum "$T/a.safetensors")
refuses() { refuses_to_write "$T/r.safetensors" "$1" "$2" "$PY" "$GROW" "${@:3}"; } # refuses "description" NAME-IN-MESSAGE args...
refuses "no more blocks" "must be more than" --res 2 -o "$T/r.safetensors" "$T/a.safetensors"
refuses "fewer blocks" "must be more than" --res 1 -o "$T/r.safetensors" "$T/a.safetensors"
head -c 1000 "$T/a.safetensors" >"$T/cut.safetensors"
refuses "a truncated input" "cut.safetensors" --res 3 -o "$T/r.safetensors" "$T/cut.safetensors"
refuses "a missing input" "nosuch.safetensors" --res 3 -o "$T/r.safetensors" "$T/nosuch.safetensors"
"$PY" - "$SRC" "$T" <<'EOF' || bad "making notunet"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import safetensors_io as st
st.save_np(sys.argv[2] + "/notunet.safetensors", {"x": np.zeros(3, np.float32)}, {"format": "other"})
EOF
refuses "not a U-Net" "notunet.safetensors" --res 3 -o "$T/r.safetensors" "$T/notunet.safetensors"
"$PY" "$GROW" --res 3 -o "$T/a.safetensors" "$T/a.safetensors" >"$T/out" 2>"$T/err" && bad "output = input: exit 0"
contains "$T/err" "also the input" "output = input: the reason"
cp "$T/col1.safetensors" "$T/r.safetensors"
"$PY" "$GROW" --res 3 -o "$T/r.safetensors" "$T/a.safetensors" >"$T/out" 2>"$T/err" && bad "existing output: exit 0"
contains "$T/err" "--overwrite" "existing output: the way out"
same "$T/r.safetensors" "$T/col1.safetensors" "existing output: replaced without --overwrite"
expect 0 "existing output with --overwrite" "$PY" "$GROW" --overwrite --res 3 -o "$T/r.safetensors" "$T/a.safetensors"
cmp -s "$T/r.safetensors" "$T/col1.safetensors" && bad "--overwrite: not replaced" || ok
[ "$(md5sum "$T/a.safetensors")" = "$before" ] && ok || bad "the input changed"
finish test_grow_unet
