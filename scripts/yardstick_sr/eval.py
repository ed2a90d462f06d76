#!/usr/bin/python3
"""Yardstick accuracy at x4: for each photo in VAL_DIR, the centred 256x256 crop
is downscaled x4 (Pillow's antialiased bicubic, an approximation of diffrestore
eval's ip_resize), upscaled by upscale.mjs, and scored: PSNR over R, G, B (peak
255, 8-bit) and HF ratio = mean |grad Y| output over ground truth (BT.601 Y,
forward differences). The same metrics for Pillow's bicubic upscale of the same
input, so the yardstick is read against bicubic as diffrestore eval's table is.
usage: eval.py [VAL_DIR] [THREADS]"""
import os, subprocess, sys, tempfile
import numpy as np
from PIL import Image
here = os.path.dirname(os.path.abspath(__file__))
val = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, '../../../shared/data/val')
threads = sys.argv[2] if len(sys.argv) > 2 else '2'
def grad(a):
    y = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    return (np.abs(np.diff(y, axis=1)).sum() + np.abs(np.diff(y, axis=0)).sum()) / y.size
ps, hs, bps, bhs = [], [], [], []
def score(sr, g):
    mse = ((sr - g) ** 2).mean()
    return (min(99.0, 10 * np.log10(255 ** 2 / mse)) if mse > 0 else 99.0), grad(sr) / grad(g)
tmp = tempfile.mkdtemp()
for n in sorted(os.listdir(val)):
    im = Image.open(os.path.join(val, n)).convert('RGB')
    w, h = im.size; c = 256; l, t = (w - c) // 2, (h - c) // 2
    gt = im.crop((l, t, l + c, t + c))
    gt.resize((c // 4, c // 4), Image.BICUBIC).save(f'{tmp}/lr.png')
    subprocess.run(['node', f'{here}/upscale.mjs', f'{tmp}/lr.png', f'{tmp}/sr.png', threads], check=True, stderr=subprocess.DEVNULL)
    sr = np.asarray(Image.open(f'{tmp}/sr.png').convert('RGB'), dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    p, hf = score(sr, g)
    bic = np.asarray(Image.open(f'{tmp}/lr.png').resize((c, c), Image.BICUBIC), dtype=np.float64)
    bp, bhf = score(bic, g)
    ps.append(p); hs.append(hf); bps.append(bp); bhs.append(bhf)
    print(f'{n}\tPSNR {p:.2f} (bicubic {bp:.2f})\tHF {hf:.3f} (bicubic {bhf:.3f})', flush=True)
print(f'mean\tPSNR {np.mean(ps):.2f} (bicubic {np.mean(bps):.2f})\tHF {np.mean(hs):.3f} (bicubic {np.mean(bhs):.3f})\t({len(ps)} photos)')
