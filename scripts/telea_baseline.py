#!/usr/bin/env python3
"""Telea inpainting baseline for `diffrestore eval --mode inpaint`.

Usage: telea_baseline.py DIR [--radius R]

The contract with the eval command:
  - below DIR (recursively), every NAME_input.png that has a NAME_mask.png
    beside it is one image to fill;
  - NAME_input.png: the degraded image (8-bit gray or RGB; the hole pixels'
    values are ignored);
  - NAME_mask.png: same size, 1 channel (the first channel of anything else),
    a hole where the value is above half its range (255 = hole, 0 = known);
  - the script writes NAME_telea.png: cv2.inpaint(input, mask, R,
    cv2.INPAINT_TELEA) (Telea 2004), same size and channels, 8-bit; known
    pixels are unchanged. Each file is written to a temporary name and renamed,
    so a failure never leaves a partial file.

Exit codes: 0 all written, 1 some image failed (named on stderr), 2 usage,
3 OpenCV (python3-opencv) missing. Needs only /usr/bin/python3 and
python3-opencv (apt-get install python3-opencv).
"""
import argparse
import os
import sys


def find_pairs(root):
    pairs = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        names = set(files)
        for f in sorted(files):
            if not f.endswith("_input.png"):
                continue
            stem = f[: -len("_input.png")]
            if stem + "_mask.png" in names:
                pairs.append(os.path.join(d, stem))
    return pairs


def main():
    ap = argparse.ArgumentParser(description="OpenCV Telea inpainting of NAME_input.png + NAME_mask.png -> NAME_telea.png")
    ap.add_argument("dir", help="directory walked recursively")
    ap.add_argument("--radius", type=float, default=3.0, help="inpainting radius in pixels (default 3)")
    a = ap.parse_args()
    if not os.path.isdir(a.dir):
        print(f"telea_baseline: {a.dir}: not a directory", file=sys.stderr)
        return 2
    if not a.radius > 0:
        print("telea_baseline: --radius must be positive", file=sys.stderr)
        return 2
    try:
        import cv2
        import numpy as np
    except ImportError as e:
        print(f"telea_baseline: {e}: install python3-opencv", file=sys.stderr)
        return 3

    failed = 0
    for stem in find_pairs(a.dir):
        src, msk, dst = stem + "_input.png", stem + "_mask.png", stem + "_telea.png"
        tmp = stem + "_telea.tmp.png"
        try:
            img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(msk, cv2.IMREAD_UNCHANGED)
            if img is None or mask is None:
                raise ValueError("cannot read " + (src if img is None else msk))
            if img.dtype != np.uint8:
                raise ValueError(f"{src}: 8-bit images only, got {img.dtype}")
            if mask.ndim == 3:
                mask = mask[:, :, 0]
            half = 32767 if mask.dtype == np.uint16 else 127
            mask = np.where(mask > half, 255, 0).astype(np.uint8)
            if mask.shape[:2] != img.shape[:2]:
                raise ValueError(f"{msk} is {mask.shape[1]}x{mask.shape[0]} but {src} is {img.shape[1]}x{img.shape[0]}")
            alpha = None
            if img.ndim == 3 and img.shape[2] == 4:
                alpha, img = img[:, :, 3], img[:, :, :3]
            out = cv2.inpaint(img, mask, a.radius, cv2.INPAINT_TELEA)
            if alpha is not None:
                out = np.dstack([out, alpha])
            if not cv2.imwrite(tmp, out):
                raise ValueError("cannot write " + tmp)
            os.replace(tmp, dst)
        except Exception as e:  # one bad image must not stop the others
            failed += 1
            print(f"telea_baseline: {stem}: {e}", file=sys.stderr)
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
