#!/usr/bin/python3
"""Self-consistency check of the reference dumps in tests/data.

    /usr/bin/python3 tests/reference/check_dumps.py [--data tests/data] [--no-gradcheck]

For every ref_<case>: checks the byte layout and metadata of both files, that
the io file holds grad.<name> for exactly the model's parameters, then reruns
a fresh float32 forward/backward of the reference on the dumped x, t, target
and compares y, loss, act.* and grads with the float64 dump.  Also cross-checks
the attention and time embedding against independent formulations, a small
loader-rejection test, and (unless --no-gradcheck) finite-difference gradient
checks in float64 on the tiny case.  Exits non-zero on any mismatch.
"""

import argparse
import json
import math
import os
import struct
import sys
import tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
from make_dumps import CASES, DEFAULT_OUT, C_WRITTEN_T, c_written_input  # noqa: E402
from model import UNet, AttnBlock, TimeEmbed, load_unet, metadata_from_config  # noqa: E402

torch.set_num_threads(1)
FAILS = []


def check(cond, msg):
    print(("  ok   " if cond else "  FAIL ") + msg)
    if not cond:
        FAILS.append(msg)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def check_layout(path, expect_dtype=None):
    """Byte layout as promised: padded header, sorted contiguous tensors, no trailing bytes."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    raw = buf[8:8 + n]
    hdr = json.loads(raw.decode("utf-8"))
    ok = (8 + n) % 8 == 0 and raw.rstrip(b" ").endswith(b"}")     # padded with spaces
    hdr.pop("__metadata__", None)
    off = 0
    for name in sorted(hdr):
        e = hdr[name]
        ok = ok and e["data_offsets"][0] == off
        off = e["data_offsets"][1]
        if expect_dtype:
            ok = ok and e["dtype"] == expect_dtype
    ok = ok and off == len(buf) - 8 - n
    check(ok, f"{os.path.basename(path)}: layout (8-aligned header, sorted, contiguous, "
              f"dtype {expect_dtype or 'any'})")


def check_case(name, spec, data):
    print(f"[{name}]")
    wpath = os.path.join(data, f"ref_{name}.weights.safetensors")
    iopath = os.path.join(data, f"ref_{name}.io.safetensors")
    check_layout(wpath, spec["dtype"])
    check_layout(iopath, "F32")
    model, meta = load_unet(wpath)
    check(meta == metadata_from_config(spec["cfg"], spec["mode"]),
          f"metadata complete and equal to metadata_from_config ({len(meta)} keys)")
    io, _ = safetensors_io.load(iopath)
    pnames = [n for n, _ in model.named_parameters()]
    gnames = sorted(k[5:] for k in io if k.startswith("grad.") and k != "grad.x")
    check(gnames == sorted(pnames) and "grad.x" in io,
          f"grad.<name> for exactly the {len(pnames)} parameters, plus grad.x")
    check(model.cfg == UNet(spec["cfg"]).cfg, "config from metadata matches the case")

    x = io["x"].clone().requires_grad_(True)
    acts = {}
    y = model(x, io["t"], acts)
    loss = ((y - io["target"]) ** 2).mean()
    grads = torch.autograd.grad(loss, [p for _, p in model.named_parameters()] + [x])
    ey = (y.detach() - io["y"]).abs().max().item()
    el = abs(loss.item() - io["loss"].item()) / io["loss"].item()
    print(f"    max|y32 - y64| = {ey:.3e} (|y| max {io['y'].abs().max().item():.3f}), "
          f"loss rel err {el:.3e}")
    check(ey < 1e-4 and el < 1e-5, "y and loss: fresh float32 forward matches the dump")
    worst_a = max(rel_err(acts[k[4:]].detach(), io[k]) for k in io if k.startswith("act."))
    check(worst_a < 1e-4, f"act.* match (worst rel err {worst_a:.2e})")
    errs = {n: rel_err(g, io["grad." + n]) for n, g in zip(pnames + ["x"], grads)}
    worst = max(errs, key=errs.get)
    check(errs[worst] < 1e-3, f"grads match (worst rel err {errs[worst]:.2e} at grad.{worst})")
    return model, io


def cross_check_blocks():
    print("[independent formulations]")
    g = torch.Generator().manual_seed(7)
    blk = AttnBlock(16, 4).double()
    with torch.no_grad():
        for p in blk.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    x = torch.randn(2, 16, 4, 6, generator=g, dtype=torch.float64)
    h = blk.norm(x)
    w = blk.qkv.weight[:, :, 0, 0]
    q = torch.einsum("oc,nchw->nohw", w[:16], h) + blk.qkv.bias[:16, None, None]
    k = torch.einsum("oc,nchw->nohw", w[16:32], h) + blk.qkv.bias[16:32, None, None]
    v = torch.einsum("oc,nchw->nohw", w[32:], h) + blk.qkv.bias[32:, None, None]
    s = torch.einsum("ncij,nckl->nijkl", q, k) / 4.0        # [n, query(i,j), key(k,l)]
    a = F.softmax(s.reshape(2, 24, 24), dim=-1).reshape(2, 4, 6, 4, 6)
    o = torch.einsum("nckl,nijkl->ncij", v, a)
    ref = x + torch.einsum("oc,nchw->nohw", blk.proj.weight[:, :, 0, 0], o) \
        + blk.proj.bias[:, None, None]
    check(rel_err(blk(x), ref) < 1e-12, "AttnBlock == einsum/softmax formulation")

    te = TimeEmbed(8).double()
    t = torch.tensor([0.0, 37.0, 999.0], dtype=torch.float64)
    se = te.sin_emb(t)
    ok = True
    for n in range(3):
        for i in range(4):
            f = math.exp(-math.log(10000.0) * i / 4)
            ok &= abs(se[n, i].item() - math.cos(t[n].item() * f)) < 1e-12
            ok &= abs(se[n, 4 + i].item() - math.sin(t[n].item() * f)) < 1e-12
    check(ok, "sin_emb == [cos(t f_i), sin(t f_i)], f_i = exp(-ln(1e4) i / h)")


def loader_rejects():
    print("[loader validation]")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.safetensors")
        safetensors_io.save(p, {"a": torch.ones(2, 3), "b": torch.zeros(4)}, {"k": "v"}, "F16")
        t, m = safetensors_io.load(p)
        check(t["a"].dtype == torch.float32 and t["a"].sum().item() == 6 and m == {"k": "v"},
              "F16 round trip to float32")
        buf = open(p, "rb").read()
        (n,) = struct.unpack("<Q", buf[:8])
        hdr = json.loads(buf[8:8 + n])

        def rejects(newbuf, what):
            open(p, "wb").write(newbuf)
            try:
                safetensors_io.load(p)
                check(False, f"rejects {what}")
            except safetensors_io.SafetensorsError as e:
                check(True, f"rejects {what}: {e}")

        def with_header(h):
            j = json.dumps(h).encode()
            return struct.pack("<Q", len(j)) + j + buf[8 + n:]
        rejects(struct.pack("<Q", len(buf)) + buf[8:], "N larger than the file")
        rejects(struct.pack("<Q", n) + b"x" + buf[9:], "invalid JSON")
        h = json.loads(json.dumps(hdr)); h["b"]["data_offsets"] = [8, 16]
        rejects(with_header(h), "overlapping offsets")
        h = json.loads(json.dumps(hdr)); h["b"]["data_offsets"] = [12, 22]
        rejects(with_header(h), "out-of-range offsets")
        h = json.loads(json.dumps(hdr)); h["b"]["shape"] = [5]
        rejects(with_header(h), "size not matching dtype x shape")

        # load_unet: a missing or extra tensor, or a shape that does not match the config
        from model import save_unet
        m = UNet(CASES["tiny"]["cfg"])
        meta = metadata_from_config(m.cfg, "inpaint")
        sd = {k: v.detach() for k, v in m.state_dict().items()}
        for what, bad in [("a missing tensor", {k: v for k, v in sd.items() if k != "mid.attn.proj.bias"}),
                          ("an extra tensor", dict(sd, **{"mid.attn.extra": torch.zeros(1)})),
                          ("a shape not matching the config", dict(sd, **{"out_conv.bias": torch.zeros(4)}))]:
            safetensors_io.save(p, bad, meta)
            try:
                load_unet(p)
                check(False, f"load_unet rejects {what}")
            except ValueError as e:
                check(True, f"load_unet rejects {what}: {str(e)[len(p) + 2:][:70]}")
        save_unet(m, p, mode="inpaint")
        check(load_unet(p)[1] == meta, "save_unet/load_unet round trip")


def finite_diff_check(model, io):
    """Central differences (float64) of the loss vs autograd and vs the dumped grads."""
    print("[finite-difference gradient check, tiny, float64]")
    model = model.double()
    x = io["x"].double()
    t = io["t"].double()
    tgt = io["target"].double()
    params = dict(model.named_parameters())

    def loss_fn():
        return ((model(x, t) - tgt) ** 2).mean()

    names = ["time_embed.lin1.weight", "time_embed.lin2.bias", "in_conv.bias",
             "down.0.res.0.norm1.weight", "down.0.res.0.norm1.bias", "down.0.res.0.temb.weight",
             "down.0.downsample.weight", "down.1.res.0.skip.weight", "down.1.attn.0.qkv.weight",
             "down.1.attn.0.qkv.bias", "down.1.attn.0.proj.weight", "mid.attn.norm.bias",
             "mid.res2.conv2.bias", "up.1.res.1.norm2.weight", "up.1.attn.1.qkv.weight",
             "up.1.upsample.weight", "up.0.res.0.skip.bias", "out_norm.weight",
             "out_norm.bias", "out_conv.weight"]
    g = torch.Generator().manual_seed(3)
    worst_auto = worst_dump = 0.0
    hstep = 1e-6
    for nm in names:
        p = params[nm]
        with torch.no_grad():
            l0 = loss_fn()
        (ga,) = torch.autograd.grad(loss_fn(), [p])
        gd = io["grad." + nm].double()
        scale = gd.abs().max().item()
        for _ in range(2):
            idx = int(torch.randint(p.numel(), (1,), generator=g))
            with torch.no_grad():
                flat = p.view(-1)
                old = flat[idx].item()
                flat[idx] = old + hstep
                lp = loss_fn().item()
                flat[idx] = old - hstep
                lm = loss_fn().item()
                flat[idx] = old
            fd = (lp - lm) / (2 * hstep)
            worst_auto = max(worst_auto, abs(fd - ga.view(-1)[idx].item()) / scale)
            worst_dump = max(worst_dump, abs(fd - gd.view(-1)[idx].item()) / scale)
        del l0
    xg = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(((model(xg, t) - tgt) ** 2).mean(), [xg])
    for idx in (0, 1234, 3583):
        with torch.no_grad():
            xp = x.clone(); xp.view(-1)[idx] += hstep
            xm = x.clone(); xm.view(-1)[idx] -= hstep
            fd = ((((model(xp, t) - tgt) ** 2).mean() - ((model(xm, t) - tgt) ** 2).mean())
                  / (2 * hstep)).item()
        sc = gx.abs().max().item()
        worst_auto = max(worst_auto, abs(fd - gx.view(-1)[idx].item()) / sc)
        worst_dump = max(worst_dump, abs(fd - io["grad.x"].double().view(-1)[idx].item()) / sc)
    print(f"    {2 * len(names) + 3} elements: max |fd - autograd| / max|g| = {worst_auto:.2e}, "
          f"max |fd - dump| / max|g| = {worst_dump:.2e}")
    check(worst_auto < 1e-6, "finite differences agree with autograd (float64)")
    check(worst_dump < 1e-5, "finite differences agree with the dumped float32 grads")

    # torch.autograd.gradcheck (full Jacobian of y, fast mode) on a few small parameters.
    from torch.nn.utils.stateless import functional_call
    base = {k: v.detach() for k, v in model.named_parameters()}
    for nm in ["mid.attn.qkv.bias", "out_norm.bias", "down.0.res.0.norm2.weight",
               "time_embed.lin1.bias"]:
        def f(w, nm=nm):
            return functional_call(model, dict(base, **{nm: w}), (x, t))
        ok = torch.autograd.gradcheck(f, (base[nm].clone().requires_grad_(True),),
                                      eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True,
                                      raise_exception=False)
        check(ok, f"torch.autograd.gradcheck(y wrt {nm})")


def check_c_written(data):
    path = os.path.join(data, "c_written.safetensors")
    iopath = os.path.join(data, "c_written.io.safetensors")
    if not os.path.exists(path):
        print("note: c_written.safetensors absent; skipped")
        return
    print("[c_written]")
    check(os.path.exists(iopath), "c_written.io.safetensors exists (run make_dumps.py)")
    if not os.path.exists(iopath):
        return
    model, _ = load_unet(path)
    io, _ = safetensors_io.load(iopath)
    x = c_written_input(model.cfg["in_channels"])
    check(torch.equal(x, io["x"]) and io["t"].tolist() == [C_WRITTEN_T], "x and t as documented")
    with torch.no_grad():
        y = model(io["x"], io["t"])
    e = (y - io["y"]).abs().max().item()
    check(e < 1e-4, f"y: fresh float32 forward matches (max err {e:.2e})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DEFAULT_OUT)
    ap.add_argument("--no-gradcheck", action="store_true")
    a = ap.parse_args()
    tiny = None
    for name, spec in CASES.items():
        r = check_case(name, spec, a.data)
        if name == "tiny":
            tiny = r
    cross_check_blocks()
    loader_rejects()
    if not a.no_gradcheck:
        finite_diff_check(*tiny)
    check_c_written(a.data)
    if FAILS:
        print(f"{len(FAILS)} FAILED:\n  " + "\n  ".join(FAILS))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
