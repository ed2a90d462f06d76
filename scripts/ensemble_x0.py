"""Would averaging two colorize models help? The val x0 MSE of each model alone
and of the mean of their x0 estimates, on the same crops, t and noise.

Crops of VAL (every image in turn, positions from a fixed seed) are made into
colorize examples as docs/MODEL.md says (cond: Y scaled to -1..1; target: Cb,
Cr as (v - 128) / 127.5; x0 = target_scale * target), one t uniform in 0..999
and one noise per crop. Each model runs through `diffrestore forward` on its
own x_t (its own target_scale; the same t and noise), its x0 estimate is
divided by its target_scale and clipped to -1..1 as the samplers clip it, and
the errors are in target units (so models of different target_scale compare).
Models of one target_scale see the same x_t, so their mean is exactly what a
sampler averaging them would get; with different scales it is what one gets
at the matching signal-to-noise ratio.

Prints, per crop size: the MSE of each model and of each pair's mean, overall
and by fifths of t (band k: t in [200k, 200k + 200)).

    /usr/bin/python3 scripts/ensemble_x0.py [--bin build/diffrestore] [--val DIR]
        [--sizes 64:512,128:256,256:64] A.safetensors B.safetensors [C ...]
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import safetensors_io  # noqa: E402

T = 1000


def alpha_bar_cosine():
    """docs/MODEL.md's cosine schedule (s = 0.008, beta clipped at 0.999)."""
    s = 0.008

    def f(t):
        return np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2

    ab, prod = np.zeros(T), 1.0
    for t in range(T):
        prod *= 1 - min(1 - f(t + 1) / f(t), 0.999)
        ab[t] = prod
    return ab


def info(binary, weights, key):
    out = subprocess.run([binary, "info", weights], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        k, _, v = line.strip().partition(" = ")
        if k == key:
            return v
    return None


def crops(val, size, n, seed):
    """n crops of size x size, image i % len, positions, t and noise from seed."""
    rng = np.random.default_rng(seed)
    paths = sorted(p for p in glob.glob(os.path.join(val, "*")) if p.lower().endswith((".jpg", ".jpeg", ".png")))
    imgs = [cv2.imread(p)[:, :, ::-1].astype(np.float64) for p in paths]
    Y, C, ts, eps = [], [], [], []
    for i in range(n):
        im = imgs[i % len(imgs)]
        h, w = im.shape[:2]
        y0, x0 = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        R, G, B = (im[y0 : y0 + size, x0 : x0 + size, k] for k in range(3))
        y = 0.299 * R + 0.587 * G + 0.114 * B
        cb = 128 - 0.168736 * R - 0.331264 * G + 0.5 * B
        cr = 128 + 0.5 * R - 0.418688 * G - 0.081312 * B
        Y.append((y / 127.5 - 1)[None])
        C.append(np.stack([(cb - 128) / 127.5, (cr - 128) / 127.5]))
        ts.append(rng.integers(0, T))
        eps.append(rng.standard_normal((2, size, size)))
    return np.array(Y), np.array(C), np.array(ts), np.array(eps)


def x0_estimate(binary, weights, tmp, Y, C, ts, eps, ab):
    s = float(info(binary, weights, "target_scale") or 1)
    v_pred = info(binary, weights, "prediction") == "v"
    sa, sb = np.sqrt(ab[ts])[:, None, None, None], np.sqrt(1 - ab[ts])[:, None, None, None]
    xt = sa * s * C + sb * eps
    inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
    safetensors_io.save_np(inp, {"x": np.concatenate([xt, Y], 1), "t": ts.astype(np.float32)})
    subprocess.run([binary, "forward", "-q", "--weights", weights, "-t", "1", inp, out], check=True)
    o = safetensors_io.load_np(out)[0]["y"].astype(np.float64)
    x0 = sa * xt - sb * o if v_pred else (xt - sb * o) / sa
    return np.clip(x0 / s, -1, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/diffrestore")
    ap.add_argument("--val", default="../shared/data/val")
    ap.add_argument("--sizes", default="64:512,128:256,256:64", help="PATCH:CROPS,...")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    ab = alpha_bar_cosine()
    names = [os.path.basename(m).removesuffix(".safetensors") for m in a.models]
    w = max(len(n) for n in names) * 2 + 8
    print(f"{'patch':>5} {'crops':>5}  {'model':{w}} {'x0 MSE':>9}   by fifths of t")
    with tempfile.TemporaryDirectory() as tmp:
        for k, spec in enumerate(a.sizes.split(",")):
            size, n = (int(v) for v in spec.split(":"))
            Y, C, ts, eps = crops(a.val, size, n, 100 + k)
            band = np.minimum(ts // 200, 4)
            pred = [x0_estimate(a.bin, m, tmp, Y, C, ts, eps, ab) for m in a.models]

            def report(name, p):
                e = ((p - C) ** 2).mean(axis=(1, 2, 3))
                bands = " ".join(f"{e[band == b].mean():.5f}" for b in range(5))
                print(f"{size:5d} {n:5d}  {name:{w}} {e.mean():9.6f}   {bands}", flush=True)

            for nm, p in zip(names, pred):
                report(nm, p)
            for i in range(len(pred)):
                for j in range(i + 1, len(pred)):
                    report(f"mean({names[i]}, {names[j]})", (pred[i] + pred[j]) / 2)


if __name__ == "__main__":
    main()
