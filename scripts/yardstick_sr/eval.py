#!/usr/bin/python3
"""Yardstick accuracy at x4: for each photo in VAL_DIR, the centred 256x256 crop
is downscaled x4 (Pillow's antialiased bicubic, an approximation of diffrestore
eval's ip_resize), upscaled by upscale.mjs, and scored: PSNR over R, G, B (peak
255, 8-bit) and HF ratio = mean |grad Y| output over ground truth (BT.601 Y,
forward differences).   usage: eval.py [VAL_DIR] [THREADS]"""
import os, subprocess, sys, tempfile
import numpy as np
from PIL import Image
here = os.path.dirname(os.path.abspath(__file__))
val = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, '../../../shared/data/val')
threads = sys.argv[2] if len(sys.argv) > 2 else '2'
def grad(a):
    y = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    return (np.abs(np.diff(y, axis=1)).sum() + np.abs(np.diff(y, axis=0)).sum()) / y.size
ps, hs = [], []
tmp = tempfile.mkdtemp()
for n in sorted(os.listdir(val)):
    im = Image.open(os.path.join(val, n)).convert('RGB')
    w, h = im.size; c = 256; l, t = (w - c) // 2, (h - c) // 2
    gt = im.crop((l, t, l + c, t + c))
    gt.resize((c // 4, c // 4), Image.BICUBIC).save(f'{tmp}/lr.png')
    subprocess.run(['node', f'{here}/upscale.mjs', f'{tmp}/lr.png', f'{tmp}/sr.png', threads], check=True, stderr=subprocess.DEVNULL)
    sr = np.asarray(Image.open(f'{tmp}/sr.png').convert('RGB'), dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    mse = ((sr - g) ** 2).mean()
    p = min(99.0, 10 * np.log10(255 ** 2 / mse)) if mse > 0 else 99.0
    hf = grad(sr) / grad(g)
    ps.append(p); hs.append(hf)
    print(f'{n}\tPSNR {p:.2f}\tHF {hf:.3f}', flush=True)
print(f'mean\tPSNR {np.mean(ps):.2f}\tHF {np.mean(hs):.3f}\t({len(ps)} photos)')
