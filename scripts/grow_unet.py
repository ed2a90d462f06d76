"""Deepen a trained diffrestore U-Net without changing what it computes.

A wider or deeper network trained from scratch must first relearn what the
shipped one knows (base 48 from scratch took 7.6 CPU-hours to pass base 32's
milestone, docs/TRAINING.md sessions 46-51). This grows `num_res_blocks` from
R to R' > R so that the grown network computes exactly the same function as
the old one; training with `train --init GROWN` then starts from the old
model's accuracy and only has to learn what the new blocks add (Net2Net,
Chen et al. 2016, with zero-initialized residual branches).

Per level l (c = base_channels * channel_mult[l] channels), following the data
flow of docs/MODEL.md:
- down: the new blocks res.R .. res.R'-1 come after the old ones. Their
  conv2 is zero and their skip is the identity (cin = cout = c), so each
  passes its input through, and pushes a copy of the skip res.(R-1) pushed.
  On attention levels their attn.k has a zero `proj`: the identity too.
- up: the up path pops R' - R more skips at level l, all copies of
  res.(R-1)'s. Block res.0 stays (it pops a copy: the same values); the new
  blocks res.1 .. res.(R'-R) each take concat(h, a copy): their 1x1 `skip` is
  [I | 0] (h passes, the copy is dropped) and their conv2 is zero; the old
  res.k (k >= 1) move to res.(k + R' - R) and pop what they popped before.
New conv1, temb and qkv take the C trainer's default init (U(+-1/sqrt(fan_in)),
numpy's generator from --seed), so the new branches start learning as soon as
their zero conv2 / proj leave zero; GroupNorm gamma 1, beta 0.

The output keeps the input's metadata (its train_steps: `train --init` keeps
the EMA warm over them) with num_res_blocks R' and `grown_from` added, and is
written in the input's dtype through OUT.tmp and a rename; an existing OUT is
replaced only with --overwrite. tests/test_grow_unet.sh checks that the C
forward of the grown file equals the original's.

    /usr/bin/python3 scripts/grow_unet.py --res R' [--seed N] [--overwrite] -o OUT.safetensors IN.safetensors
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import safetensors_io  # noqa: E402


def uniform(rng, shape, fan_in):
    b = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-b, b, shape).astype(np.float32)


def new_res(rng, cin, c, temb_dim, passthrough):
    """A ResBlock cin -> c that returns its input's first c channels."""
    p = {
        "norm1.weight": np.ones(cin, np.float32), "norm1.bias": np.zeros(cin, np.float32),
        "conv1.weight": uniform(rng, (c, cin, 3, 3), cin * 9), "conv1.bias": uniform(rng, (c,), cin * 9),
        "temb.weight": uniform(rng, (c, temb_dim), temb_dim), "temb.bias": uniform(rng, (c,), temb_dim),
        "norm2.weight": np.ones(c, np.float32), "norm2.bias": np.zeros(c, np.float32),
        "conv2.weight": np.zeros((c, c, 3, 3), np.float32), "conv2.bias": np.zeros(c, np.float32),
    }
    if passthrough:  # cin = 2c: h first, then the popped copy (MODEL.md: concat(h, pop))
        w = np.zeros((c, cin, 1, 1), np.float32)
        w[np.arange(c), np.arange(c), 0, 0] = 1.0
        p["skip.weight"], p["skip.bias"] = w, np.zeros(c, np.float32)
    return p


def new_attn(rng, c):
    """An AttnBlock that returns its input: out = x + proj(...) with proj zero."""
    return {
        "norm.weight": np.ones(c, np.float32), "norm.bias": np.zeros(c, np.float32),
        "qkv.weight": uniform(rng, (3 * c, c, 1, 1), c), "qkv.bias": uniform(rng, (3 * c,), c),
        "proj.weight": np.zeros((c, c, 1, 1), np.float32), "proj.bias": np.zeros(c, np.float32),
    }


def grow(t, meta, res_new, seed):
    C = int(meta["base_channels"])
    mult = [int(m) for m in meta["channel_mult"].split(",")]
    R = int(meta["num_res_blocks"])
    attn = {int(a) for a in meta.get("attention_levels", "").split(",") if a.strip()}
    d = res_new - R
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in t.items():  # move up.l.{res,attn}.k (k >= 1) to k + d
        parts = k.split(".")
        if parts[0] == "up" and parts[2] in ("res", "attn") and int(parts[3]) >= 1:
            parts[3] = str(int(parts[3]) + d)
            k = ".".join(parts)
        out[k] = v
    for l, m in enumerate(mult):
        c = C * m
        for k in range(R, res_new):
            for n, v in new_res(rng, c, c, 4 * C, False).items():
                out[f"down.{l}.res.{k}.{n}"] = v
            if l in attn:
                for n, v in new_attn(rng, c).items():
                    out[f"down.{l}.attn.{k}.{n}"] = v
        for k in range(1, d + 1):
            for n, v in new_res(rng, 2 * c, c, 4 * C, True).items():
                out[f"up.{l}.res.{k}.{n}"] = v
            if l in attn:
                for n, v in new_attn(rng, c).items():
                    out[f"up.{l}.attn.{k}.{n}"] = v
    m2 = dict(meta)
    m2["num_res_blocks"] = str(res_new)
    m2["grown_from"] = f"num_res_blocks {R}, train_steps {meta.get('train_steps', '?')}, seed {seed}"
    return out, m2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", required=True, help="output safetensors (must not be the input)")
    ap.add_argument("--res", type=int, required=True, help="the new num_res_blocks (more than the input's)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new blocks' init (default 0)")
    ap.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    ap.add_argument("input", help="weights file (.safetensors)")
    a = ap.parse_args()
    if os.path.abspath(a.out) == os.path.abspath(a.input):
        ap.error(f"{a.out}: the output is also the input")
    if os.path.lexists(a.out) and not a.overwrite:
        sys.exit(f"grow_unet: {a.out}: exists (--overwrite replaces it)")
    try:
        t, meta = safetensors_io.load_np(a.input)
        dts = set(safetensors_io.dtypes(a.input).values())
    except (OSError, safetensors_io.SafetensorsError) as e:
        sys.exit(f"grow_unet: {a.input}: {e}")
    if meta.get("format") != "diffrestore-unet":
        sys.exit(f"grow_unet: {a.input}: not a diffrestore U-Net (format {meta.get('format')!r})")
    try:
        R = int(meta["num_res_blocks"])
        int(meta["base_channels"])
        [int(m) for m in meta["channel_mult"].split(",")]
    except (KeyError, ValueError) as e:
        sys.exit(f"grow_unet: {a.input}: no valid U-Net config in its metadata ({e})")
    if a.res <= R:
        sys.exit(f"grow_unet: {a.input}: --res {a.res} must be more than its num_res_blocks {R}")
    if a.res > 16:
        sys.exit(f"grow_unet: --res {a.res}: at most 16")
    out, m2 = grow(t, meta, a.res, a.seed)
    tmp = a.out + ".tmp"
    try:
        safetensors_io.save_np(tmp, out, m2, dtype="F16" if dts == {"F16"} else "F32")
        os.replace(tmp, a.out)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        sys.exit(f"grow_unet: {a.out}: {e}")
    print(f"{a.out}: num_res_blocks {R} -> {a.res}, {sum(v.size for v in out.values())} parameters "
          f"(from {sum(v.size for v in t.values())})")


if __name__ == "__main__":
    main()
