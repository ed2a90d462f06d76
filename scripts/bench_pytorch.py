#!/usr/bin/python3
"""PyTorch side of the side-by-side benchmark (docs/PERFORMANCE.md).

Runs the reference U-Net of tests/reference/model.py (the MODEL.md
architecture, the same one the C tests are checked against) for the same
config, size, batch and threads as `diffrestore bench`, and prints the median
time of a forward (torch.inference_mode) or of a training step (forward, MSE
backward, AdamW).

    /usr/bin/python3 scripts/bench_pytorch.py --size 256 --threads 2 --json
    /usr/bin/python3 scripts/bench_pytorch.py --size 64 --batch 16 --train --json
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from model import UNet  # noqa: E402

MODES = {"colorize": (3, 2), "inpaint": (7, 3), "superres": (6, 3)}


def parse_config(spec):
    cfg = dict(base_channels=32, channel_mult=[1, 2, 2, 4], num_res_blocks=2, attention_levels=[3], groups=8)
    keys = {"base": "base_channels", "mult": "channel_mult", "res": "num_res_blocks",
            "attn": "attention_levels", "groups": "groups"}
    if spec:
        cur = None
        for part in spec.split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                cur = keys[k]
                if cur in ("channel_mult", "attention_levels"):
                    cfg[cur] = [int(v)] if v else []
                else:
                    cfg[cur] = int(v)
            else:
                cfg[cur].append(int(part))
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="")
    ap.add_argument("--mode", default="superres", choices=sorted(MODES))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = parse_config(a.config)
    cfg["in_channels"], cfg["out_channels"] = MODES[a.mode]
    model = UNet(cfg)
    x = torch.randn(a.batch, cfg["in_channels"], a.size, a.size)
    t = torch.randint(0, 1000, (a.batch,)).float()
    times = []
    if a.train:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        target = torch.randn(a.batch, cfg["out_channels"], a.size, a.size)
        for it in range(a.iters + 1):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = torch.mean((model(x, t) - target) ** 2)
            loss.backward()
            opt.step()
            dt = time.perf_counter() - t0
            if it:
                times.append(dt * 1e3)
    else:
        model.eval()
        with torch.inference_mode():
            for it in range(a.iters + 1):
                t0 = time.perf_counter()
                model(x, t)
                dt = time.perf_counter() - t0
                if it:
                    times.append(dt * 1e3)
    res = dict(what="train_step" if a.train else "forward", impl="pytorch " + torch.__version__,
               height=a.size, width=a.size, batch=a.batch, threads=torch.get_num_threads(), iters=a.iters,
               ms_median=statistics.median(times), ms_min=min(times), ms_max=max(times),
               mkldnn=torch.backends.mkldnn.is_available(),
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{res['what']} {a.size}x{a.size} batch {a.batch}, {res['threads']} threads: "
              f"median {res['ms_median']:.2f} ms (min {res['ms_min']:.2f}, max {res['ms_max']:.2f}), "
              f"{res['impl']}, mkldnn={res['mkldnn']}")


if __name__ == "__main__":
    main()
