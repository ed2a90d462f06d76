"""Reference of guided upsampling (src/imgproc/imgproc_guided.h), written
independently of the C code: the guided filter's window statistics by explicit
loops over each clipped window (no summed-area tables), in float64, and the
bilinear upsampling by PyTorch's interpolate(mode="bilinear",
align_corners=False).

Fast guided filter (He & Sun 2015) on guided filter (He, Sun & Tang 2010):
    a = cov(I, p) / (var(I) + eps),  b = mean(p) - a mean(I)   (low resolution)
    A, B = window means of a, b
    q = up(A) * I_full + up(B)

Writes tests/data/guided_ref.safetensors: for each case K, the inputs
K.g_lo [h, w], K.p_lo [C, h, w], K.g [H, W] and the expected K.q [C, H, W];
metadata K.radius, K.eps. Deterministic (closed-form test images, no RNG).

    /usr/bin/python3 tests/reference/guided_upsample.py [--out FILE]
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

torch.set_num_threads(1)


def window_mean(x, r):
    """Mean over the (2r+1)^2 window clipped to the image, by explicit loops."""
    h, w = x.shape
    out = np.empty_like(x)
    for y in range(h):
        y0, y1 = max(0, y - r), min(h - 1, y + r)
        for xx in range(w):
            x0, x1 = max(0, xx - r), min(w - 1, xx + r)
            out[y, xx] = x[y0:y1 + 1, x0:x1 + 1].mean()
    return out


def guided_upsample(g_lo, p_lo, g, r, eps):
    g_lo = g_lo.astype(np.float64)
    mI = window_mean(g_lo, r)
    vI = window_mean(g_lo * g_lo, r) - mI * mI
    H, W = g.shape
    q = np.empty((p_lo.shape[0], H, W))
    for c in range(p_lo.shape[0]):
        p = p_lo[c].astype(np.float64)
        mp = window_mean(p, r)
        cov = window_mean(g_lo * p, r) - mI * mp
        a = cov / (vI + eps)
        b = mp - a * mI
        ab = torch.from_numpy(np.stack([window_mean(a, r), window_mean(b, r)])[None])
        up = torch.nn.functional.interpolate(ab, size=(H, W), mode="bilinear", align_corners=False)[0].numpy()
        q[c] = up[0] * g.astype(np.float64) + up[1]
    return q


def area_down(x, h, w):
    t = torch.from_numpy(x.astype(np.float64))[None, None]
    return torch.nn.functional.interpolate(t, size=(h, w), mode="area")[0, 0].numpy()


def make_case(H, W, h, w, phase):
    """A luma with smooth shading, a sharp diagonal edge and fine texture; the
    chroma at low resolution follows the edge (as colour does) plus a slow
    gradient, so the coefficients a, b vary over the image."""
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    edge = (xx + 0.6 * yy > 0.55 * W).astype(np.float64)
    g = (-0.6 + 0.9 * edge + 0.25 * np.sin(0.31 * xx + phase) * np.cos(0.23 * yy)
         + 0.05 * np.sin(1.7 * xx + 2.3 * yy))
    g = np.clip(g, -1, 1)
    g = g.astype(np.float32)
    g_lo = area_down(g, h, w).astype(np.float32)
    ly, lx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    edge_lo = area_down(edge, h, w)
    cb = 0.3 * edge_lo - 0.15 + 0.1 * np.sin(0.2 * lx + phase)
    cr = -0.25 * edge_lo + 0.05 * np.cos(0.3 * ly) + 0.2 * g_lo
    p_lo = np.stack([cb, cr]).astype(np.float32)
    return g_lo, p_lo, g


CASES = [  # name, H, W, h, w, radius, eps
    ("a", 40, 53, 12, 17, 2, 1e-3),
    ("b", 23, 16, 9, 5, 1, 1e-2),
    ("c", 30, 30, 30, 30, 3, 1e-4),  # same size: the plain guided filter
]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "data", "guided_ref.safetensors"))
    args = ap.parse_args()
    tensors, meta = {}, {"what": "guided upsampling reference (tests/reference/guided_upsample.py)"}
    for k, (name, H, W, h, w, r, eps) in enumerate(CASES):
        g_lo, p_lo, g = make_case(H, W, h, w, 0.7 * k)
        q = guided_upsample(g_lo, p_lo, g, r, eps)
        for key, v in (("g_lo", g_lo), ("p_lo", p_lo), ("g", g), ("q", q)):
            tensors[f"{name}.{key}"] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        meta[f"{name}.radius"] = str(r)
        meta[f"{name}.eps"] = repr(eps)
        print(f"case {name}: {w}x{h} -> {W}x{H}, r {r}, eps {eps}, |q| max {np.abs(q).max():.4f}")
    safetensors_io.save(args.out, tensors, meta)
    print("wrote", os.path.normpath(args.out))


if __name__ == "__main__":
    main()
