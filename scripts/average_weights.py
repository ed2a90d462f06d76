"""Average the weights of several diffrestore models of one lineage into one file.

Snapshots of one training run (the EMA exported at steps s1 < s2 < ... < sn)
averaged uniformly are an EMA with a longer, flat window: where a run's x0
error wanders from one validation to the next at a constant learning rate,
their mean sits near the centre of the wander (stochastic weight averaging,
Izmailov et al. 2018, applied to the EMA snapshots). This is a weights file
like any other: `restore`, `eval` and `train --validate` read it unchanged.

Every input must have the same tensor names and shapes and the same U-Net and
diffusion metadata (docs/MODEL.md: mode, channels, config, schedule,
prediction, target_scale); the script refuses otherwise. The output takes the
metadata of the LAST input (the newest snapshot: its train_steps, and its
guidance and render_size if it was exported with them), adds `averaged_from`
(the inputs' train_steps), and is written as F16, the shipped precision,
through OUT.tmp and a rename; an existing OUT is replaced only with --overwrite. The
mean is taken in float64 over the inputs as stored, then rounded to float32
and from there to F16 (round to nearest even), as the C writer rounds.

    /usr/bin/python3 scripts/average_weights.py [--overwrite] -o OUT.safetensors A.safetensors B.safetensors [...]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import safetensors_io  # noqa: E402

# metadata that must agree for the weights to mean the same thing
SAME = ("format", "format_version", "mode", "in_channels", "out_channels", "base_channels", "channel_mult",
        "num_res_blocks", "attention_levels", "groups", "timesteps", "schedule", "prediction", "target_scale")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", required=True, help="output safetensors (must not be an input)")
    ap.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    ap.add_argument("inputs", nargs="+", help="weights files, oldest first")
    a = ap.parse_args()
    if len(a.inputs) < 2:
        ap.error("need at least two inputs")
    if any(os.path.abspath(a.out) == os.path.abspath(p) for p in a.inputs):
        ap.error(f"{a.out}: the output is also an input")
    if os.path.lexists(a.out) and not a.overwrite:
        sys.exit(f"average_weights: {a.out}: exists (--overwrite replaces it)")

    total, ref, metas = None, None, []
    for p in a.inputs:
        try:
            t, m = safetensors_io.load_np(p)
        except (OSError, safetensors_io.SafetensorsError) as e:
            sys.exit(f"average_weights: {p}: {e}")
        if ref is None:
            ref = (p, {k: v.shape for k, v in t.items()}, {k: m.get(k) for k in SAME})
            total = {k: v.astype(np.float64) for k, v in t.items()}
        else:
            shapes = {k: v.shape for k, v in t.items()}
            if shapes != ref[1]:
                diff = sorted(set(shapes.items()) ^ set(ref[1].items()))[:3]
                sys.exit(f"average_weights: {p}: tensors differ from {ref[0]}'s, e.g. {diff}")
            for k in SAME:
                if m.get(k) != ref[2][k]:
                    sys.exit(f"average_weights: {p}: metadata {k} = {m.get(k)!r}, {ref[0]} has {ref[2][k]!r}")
            for k, v in t.items():
                total[k] += v
        metas.append(m)

    meta = dict(metas[-1])
    meta["averaged_from"] = "train_steps " + " ".join(m.get("train_steps", "?") for m in metas)
    n = len(a.inputs)
    tmp = a.out + ".tmp"
    try:
        safetensors_io.save_np(tmp, {k: (v / n).astype(np.float32) for k, v in total.items()}, meta, dtype="F16")
        os.replace(tmp, a.out)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        sys.exit(f"average_weights: {a.out}: {e}")
    print(f"{a.out}: mean of {n} models ({meta['averaged_from']})")


if __name__ == "__main__":
    main()
