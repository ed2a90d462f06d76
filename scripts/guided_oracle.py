"""How much chroma survives a round trip through a working resolution, with the
model taken out: the ground truth's CbCr is downscaled with its luma to a long
side of R (antialiased bicubic), then brought back to full size either by plain
bicubic upsampling or by guided upsampling on the full-resolution luma (the
fast guided filter of src/imgproc/imgproc_guided.c, radius r and eps on unit
values). Prints the chroma PSNR (peak 255, over Cb and Cr) of each against the
ground truth: the ceiling a perfect colorizer would reach at that R, and which
r, eps lose the least. Used to choose IP_GUIDED_RADIUS / IP_GUIDED_EPS
(docs/TUNING.md).

    /usr/bin/python3 scripts/guided_oracle.py [DIR] [--sizes 192,256,384]
"""

import argparse
import glob
import math
import os

import numpy as np
import torch
from PIL import Image

torch.set_num_threads(1)
F = torch.nn.functional


def box_mean(x, r):
    """Mean over the (2r+1)^2 window clipped to the image (cumulative sums)."""
    h, w = x.shape
    s = np.zeros((h + 1, w + 1))
    s[1:, 1:] = x.cumsum(0).cumsum(1)
    y0 = np.clip(np.arange(h) - r, 0, h - 1)
    y1 = np.clip(np.arange(h) + r, 0, h - 1) + 1
    x0 = np.clip(np.arange(w) - r, 0, w - 1)
    x1 = np.clip(np.arange(w) + r, 0, w - 1) + 1
    tot = s[y1][:, x1] - s[y0][:, x1] - s[y1][:, x0] + s[y0][:, x0]
    return tot / np.outer(y1 - y0, x1 - x0)


def guided(g_lo, p_lo, g, r, eps):
    mI = box_mean(g_lo, r)
    vI = box_mean(g_lo * g_lo, r) - mI * mI
    out = []
    for p in p_lo:
        mp = box_mean(p, r)
        a = (box_mean(g_lo * p, r) - mI * mp) / (vI + eps)
        b = mp - a * mI
        ab = torch.from_numpy(np.stack([box_mean(a, r), box_mean(b, r)])[None])
        up = F.interpolate(ab, size=g.shape, mode="bilinear", align_corners=False)[0].numpy()
        out.append(up[0] * g + up[1])
    return np.stack(out)


def resize(x, size):
    t = torch.from_numpy(x[None])
    down = size[0] < x.shape[1]
    return F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=down)[0].numpy()


def psnr(a, b):
    mse = np.mean(((a - b) * 127.5) ** 2)
    return 10 * math.log10(255 ** 2 / mse) if mse > 0 else 99.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "val"))
    ap.add_argument("--sizes", default="192,256,384")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.dir, "*.jpg")) + glob.glob(os.path.join(args.dir, "*.png")))
    sizes = [int(s) for s in args.sizes.split(",")]
    configs = [("bicubic", None, None)] + [("guided", r, e) for r in (1, 2, 4) for e in (1e-4, 1e-3, 1e-2)]
    res = {(R, c): [] for R in sizes for c in configs}
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 127.5 - 1
        R_, G_, B_ = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        y = 0.299 * R_ + 0.587 * G_ + 0.114 * B_
        cb = -0.168736 * R_ - 0.331264 * G_ + 0.5 * B_
        cr = 0.5 * R_ - 0.418688 * G_ - 0.081312 * B_
        H, W = y.shape
        full = np.stack([y, cb, cr])
        for R in sizes:
            s = R / max(H, W)
            size = (max(1, round(H * s)), max(1, round(W * s)))
            lo = resize(full, size)
            for c in configs:
                if c[0] == "bicubic":
                    q = resize(lo[1:], (H, W))
                else:
                    q = guided(lo[0], lo[1:], y, c[1], c[2])
                res[(R, c)].append(psnr(q, full[1:]))
    print(f"{len(files)} photos from {os.path.normpath(args.dir)}: mean chroma PSNR (dB) of GT chroma through R")
    print("| upsampling | " + " | ".join(f"R {R}" for R in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for c in configs:
        name = "bicubic" if c[0] == "bicubic" else f"guided r {c[1]}, eps {c[2]:g}"
        print(f"| {name} | " + " | ".join(f"{np.mean(res[(R, c)]):.2f}" for R in sizes) + " |")


if __name__ == "__main__":
    main()
