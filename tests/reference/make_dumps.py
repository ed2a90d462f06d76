#!/usr/bin/python3
"""Write the PyTorch reference dumps the C U-Net is tested against.

    /usr/bin/python3 tests/reference/make_dumps.py [--out tests/data]

For each case (see CASES) writes
    ref_<case>.weights.safetensors  weights + full MODEL.md metadata
    ref_<case>.io.safetensors       x, t, y, target, loss, grad.*, act.*
The reference math is done in float64 with the weights exactly as stored in
the weights file (F32, or F16 for the f16 case), then stored as float32.
If tests/data/c_written.safetensors exists, also writes c_written.io.safetensors.
Everything is seeded; running twice gives byte-identical files.
"""

import argparse
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
from model import UNet, load_unet, save_unet  # noqa: E402

torch.set_num_threads(1)
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "data"))

TINY = dict(in_channels=7, out_channels=3, base_channels=8, channel_mult=[1, 2],
            num_res_blocks=1, attention_levels=[1], groups=4)

CASES = {
    "tiny": dict(cfg=TINY, mode="inpaint", dtype="F32", N=2, H=16, W=16, t=[3, 911], seed=1001),
    "deep": dict(cfg=dict(in_channels=3, out_channels=2, base_channels=8, channel_mult=[1, 2, 2],
                          num_res_blocks=2, attention_levels=[], groups=2),
                 mode="colorize", dtype="F32", N=1, H=16, W=24, t=[500], seed=1002),
    "f16": dict(cfg=dict(TINY, in_channels=6, out_channels=3), mode="superres", dtype="F16",
                N=1, H=16, W=16, t=[250], seed=1003),
    "attn0": dict(cfg=dict(in_channels=3, out_channels=2, base_channels=8, channel_mult=[1, 2],
                           num_res_blocks=1, attention_levels=[0, 1], groups=4),
                  mode="colorize", dtype="F32", N=1, H=8, W=8, t=[10], seed=1004),
}

C_WRITTEN_T = 123.0


def random_init(model, gen):
    """Random init with O(1) activations; GroupNorm affine and all biases randomized too."""
    norm_params = set()
    for m in model.modules():
        if isinstance(m, torch.nn.GroupNorm):
            norm_params.add(id(m.weight))
            norm_params.add(id(m.bias))
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if id(p) in norm_params:
                v = 1.0 + 0.3 * r if name.endswith(".weight") else 0.2 * r
            elif name.endswith(".bias"):
                v = 0.2 * r
            else:
                fan_in = p[0].numel()
                v = r / math.sqrt(fan_in)
            p.copy_(v.to(p.dtype))


def reference_pass(model, x, t, target):
    """float64 forward + backward. Returns dict of float32 tensors for the io file."""
    model = model.double()
    x = x.double().clone().requires_grad_(True)
    t = t.double()
    target = target.double()
    acts = {}
    y = model(x, t, acts)
    loss = ((y - target) ** 2).mean()
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    grads = torch.autograd.grad(loss, params + [x])
    out = {"x": x, "t": t, "y": y, "target": target, "loss": loss.reshape(1)}
    for n, g in zip(names, grads[:-1]):
        out["grad." + n] = g
    out["grad.x"] = grads[-1]
    for k, v in acts.items():
        if not k.startswith("down."):   # act.down.<l> left out to keep tests/data small
            out["act." + k] = v
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}


def make_case(name, spec, outdir, verbose=True):
    gen = torch.Generator().manual_seed(spec["seed"])
    torch.manual_seed(spec["seed"])
    cfg = spec["cfg"]
    model = UNet(cfg)
    random_init(model, gen)
    wpath = os.path.join(outdir, f"ref_{name}.weights.safetensors")
    save_unet(model, wpath, dtype=spec["dtype"], mode=spec["mode"])
    # Compute with the weights exactly as stored (F32, or rounded to F16).
    model, meta = load_unet(wpath)
    N, H, W = spec["N"], spec["H"], spec["W"]
    x = torch.randn((N, cfg["in_channels"], H, W), generator=gen)            # float32 values
    target = torch.randn((N, cfg["out_channels"], H, W), generator=gen)
    t = torch.tensor(spec["t"], dtype=torch.float32)
    io = reference_pass(model, x, t, target)
    iometa = {"case": name, "weights": os.path.basename(wpath), "mode": spec["mode"],
              "weights_dtype": spec["dtype"], "loss": "mean((y - target)^2)",
              "computed_in": "float64"}
    iopath = os.path.join(outdir, f"ref_{name}.io.safetensors")
    safetensors_io.save(iopath, io, iometa, dtype="F32")
    if verbose:
        nparam = sum(p.numel() for p in model.parameters())
        print(f"{name}: {nparam} parameters, loss {io['loss'].item():.6f}, "
              f"|y| std {io['y'].std().item():.3f}")
        for k in sorted(io):
            if k.startswith("act."):
                print(f"    {k:14s} {list(io[k].shape)} std {io[k].std().item():.3f}")
        gn = {k: io[k].abs().max().item() for k in io if k.startswith("grad.")}
        small = [k for k, v in gn.items() if v < 1e-6]
        print(f"    grads: {len(gn)} tensors, min max|g| {min(gn.values()):.2e}"
              + (f"  NEAR-ZERO: {small}" if small else ""))
    return wpath, iopath


def c_written_input(cin, H=16, W=16):
    n = cin * H * W
    return torch.sin(torch.linspace(0.0, 37.0, n, dtype=torch.float64)).mul(0.9) \
        .reshape(1, cin, H, W).to(torch.float32)


def make_c_written(outdir):
    path = os.path.join(outdir, "c_written.safetensors")
    if not os.path.exists(path):
        print(f"note: {path} absent (written later by the C implementation); skipping c_written.io")
        return None
    model, meta = load_unet(path)
    model = model.double()
    x = c_written_input(model.cfg["in_channels"])
    t = torch.tensor([C_WRITTEN_T], dtype=torch.float32)
    with torch.no_grad():
        y = model(x.double(), t.double())
    iopath = os.path.join(outdir, "c_written.io.safetensors")
    safetensors_io.save(iopath, {"x": x, "t": t, "y": y.float()},
                        {"weights": "c_written.safetensors", "computed_in": "float64"})
    print(f"c_written: y {list(y.shape)} std {y.std().item():.3f} -> {iopath}")
    return iopath


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in a.cases.split(","):
        make_case(name, CASES[name], a.out)
    make_c_written(a.out)


if __name__ == "__main__":
    main()
