"""Independent PyTorch reference of the diffrestore U-Net (docs/MODEL.md).

`UNet(cfg).state_dict()` has exactly the parameter names of MODEL.md, so a
weights file written by `save_unet` loads in the C tool and vice versa.

cfg = dict(in_channels, out_channels, base_channels, channel_mult=[...],
           num_res_blocks, attention_levels=[...], groups)
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

GN_EPS = 1e-5
# Fixed provenance date so that the reference dumps are byte-for-byte reproducible.
FIXED_CREATED = "2000-01-01T00:00:00Z"
CONFIG_KEYS = ("in_channels", "out_channels", "base_channels", "channel_mult",
               "num_res_blocks", "attention_levels", "groups")


def group_norm(c, groups):
    return nn.GroupNorm(groups, c, eps=GN_EPS, affine=True)


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=True)


class TimeEmbed(nn.Module):
    """emb = lin2(silu(lin1(sin_emb(t)))), sin_emb = [cos(t f), sin(t f)]."""

    def __init__(self, c):
        super().__init__()
        assert c % 2 == 0, "base_channels must be even for the sinusoidal embedding"
        self.c = c
        self.lin1 = nn.Linear(c, 4 * c)
        self.lin2 = nn.Linear(4 * c, 4 * c)

    def sin_emb(self, t):
        h = self.c // 2
        i = torch.arange(h, dtype=self.lin1.weight.dtype)
        f = torch.exp(-math.log(10000.0) * i / h)
        a = t.to(f.dtype)[:, None] * f[None, :]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=1)

    def forward(self, t):
        return self.lin2(F.silu(self.lin1(self.sin_emb(t))))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb_ch, groups):
        super().__init__()
        self.norm1 = group_norm(cin, groups)
        self.conv1 = conv3x3(cin, cout)
        self.temb = nn.Linear(temb_ch, cout)
        self.norm2 = group_norm(cout, groups)
        self.conv2 = conv3x3(cout, cout)
        if cin != cout:
            self.skip = nn.Conv2d(cin, cout, 1)
        else:
            self.skip = None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        s = x if self.skip is None else self.skip(x)
        return s + h


class AttnBlock(nn.Module):
    """Single head over the H*W positions, written out with explicit matmuls."""

    def __init__(self, c, groups):
        super().__init__()
        self.c = c
        self.norm = group_norm(c, groups)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, hh, ww = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3 * c, hh * ww)
        q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]          # [N, c, P] each
        logits = torch.matmul(q.transpose(1, 2), k) / math.sqrt(c)     # [N, P_query, P_key]
        logits = logits - logits.max(dim=2, keepdim=True).values
        e = torch.exp(logits)
        a = e / e.sum(dim=2, keepdim=True)                              # softmax over keys
        o = torch.matmul(v, a.transpose(1, 2))                          # v a^T: [N, c, P_query]
        return x + self.proj(o.reshape(n, c, hh, ww))


class Level(nn.Module):
    """down.{l} / up.{l}: `res` list, optional `attn` list, optional down/upsample."""

    def __init__(self):
        super().__init__()


class Mid(nn.Module):
    def __init__(self, c, temb_ch, groups):
        super().__init__()
        self.res1 = ResBlock(c, c, temb_ch, groups)
        self.attn = AttnBlock(c, groups)
        self.res2 = ResBlock(c, c, temb_ch, groups)


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = normalize_config(cfg)
        self.cfg = cfg
        C = cfg["base_channels"]
        mult = cfg["channel_mult"]
        R = cfg["num_res_blocks"]
        G = cfg["groups"]
        att = set(cfg["attention_levels"])
        L = len(mult)
        self.L, self.R, self.att = L, R, att
        temb_ch = 4 * C

        self.time_embed = TimeEmbed(C)
        self.in_conv = conv3x3(cfg["in_channels"], C)

        skip_ch = [C]
        ch = C
        self.down = nn.ModuleList()
        for l in range(L):
            lev = Level()
            lev.res = nn.ModuleList()
            if l in att:
                lev.attn = nn.ModuleList()
            cout = C * mult[l]
            for k in range(R):
                lev.res.append(ResBlock(ch, cout, temb_ch, G))
                ch = cout
                if l in att:
                    lev.attn.append(AttnBlock(ch, G))
                skip_ch.append(ch)
            if l < L - 1:
                lev.downsample = conv3x3(ch, ch, stride=2)
                skip_ch.append(ch)
            self.down.append(lev)

        self.mid = Mid(ch, temb_ch, G)

        ups = [None] * L
        for l in reversed(range(L)):
            lev = Level()
            lev.res = nn.ModuleList()
            if l in att:
                lev.attn = nn.ModuleList()
            cout = C * mult[l]
            for k in range(R + 1):
                lev.res.append(ResBlock(ch + skip_ch.pop(), cout, temb_ch, G))
                ch = cout
                if l in att:
                    lev.attn.append(AttnBlock(ch, G))
            if l > 0:
                lev.upsample = conv3x3(ch, ch)
            ups[l] = lev
        assert not skip_ch
        self.up = nn.ModuleList(ups)          # indexed by level: up.{l}

        self.out_norm = group_norm(ch, G)
        self.out_conv = conv3x3(ch, cfg["out_channels"])

    def forward(self, x, t, acts=None):
        """x: [N, in, H, W], t: [N] float timestep indices.

        If `acts` is a dict it receives intermediate activations:
        temb, in_conv, down.<l>, mid, up.<l> (see tests/reference/README.md).
        """
        L, R = self.L, self.R
        if x.shape[2] % (1 << (L - 1)) or x.shape[3] % (1 << (L - 1)):
            raise ValueError(f"H, W must be multiples of {1 << (L - 1)}")
        emb = self.time_embed(t)
        if acts is not None:
            acts["temb"] = emb
        h = self.in_conv(x)
        if acts is not None:
            acts["in_conv"] = h
        hs = [h]
        for l in range(L):
            lev = self.down[l]
            for k in range(R):
                h = lev.res[k](h, emb)
                if l in self.att:
                    h = lev.attn[k](h)
                hs.append(h)
            if acts is not None:
                acts[f"down.{l}"] = h
            if l < L - 1:
                h = lev.downsample(h)
                hs.append(h)
        h = self.mid.res1(h, emb)
        h = self.mid.attn(h)
        h = self.mid.res2(h, emb)
        if acts is not None:
            acts["mid"] = h
        for l in reversed(range(L)):
            lev = self.up[l]
            for k in range(R + 1):
                h = torch.cat([h, hs.pop()], dim=1)
                h = lev.res[k](h, emb)
                if l in self.att:
                    h = lev.attn[k](h)
            if acts is not None:
                acts[f"up.{l}"] = h
            if l > 0:
                h = lev.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        assert not hs
        return self.out_conv(F.silu(self.out_norm(h)))


# ---------------------------------------------------------------- config / metadata

def normalize_config(cfg):
    c = {k: cfg[k] for k in CONFIG_KEYS}
    for k in ("in_channels", "out_channels", "base_channels", "num_res_blocks", "groups"):
        c[k] = int(c[k])
    c["channel_mult"] = [int(m) for m in c["channel_mult"]]
    c["attention_levels"] = sorted(int(a) for a in c["attention_levels"])
    L = len(c["channel_mult"])
    if L < 1 or c["num_res_blocks"] < 1 or c["base_channels"] % 2:
        raise ValueError(f"bad config {c}")
    if any(not 0 <= a < L for a in c["attention_levels"]):
        raise ValueError(f"attention level out of range in {c}")
    return c


def _int_list(s):
    s = s.strip()
    return [int(v) for v in s.split(",")] if s else []


def config_from_metadata(meta):
    if meta.get("format") != "diffrestore-unet":
        raise ValueError(f"not a diffrestore-unet file (format={meta.get('format')!r})")
    if meta.get("format_version") != "1":
        raise ValueError(f"unsupported format_version {meta.get('format_version')!r}")
    return normalize_config({
        "in_channels": meta["in_channels"],
        "out_channels": meta["out_channels"],
        "base_channels": meta["base_channels"],
        "channel_mult": _int_list(meta["channel_mult"]),
        "num_res_blocks": meta["num_res_blocks"],
        "attention_levels": _int_list(meta["attention_levels"]),
        "groups": meta["groups"],
    })


def metadata_from_config(cfg, mode, prediction="eps", target_scale="1", timesteps="1000",
                         schedule="cosine", train_steps="0",
                         train_data="random init (tests/reference)", created=FIXED_CREATED,
                         scale_min="2", scale_max="4"):
    cfg = normalize_config(cfg)
    if mode not in ("colorize", "inpaint", "superres"):
        raise ValueError(f"unknown mode {mode!r}")
    meta = {
        "format": "diffrestore-unet",
        "format_version": "1",
        "mode": mode,
        "in_channels": str(cfg["in_channels"]),
        "out_channels": str(cfg["out_channels"]),
        "base_channels": str(cfg["base_channels"]),
        "channel_mult": ",".join(str(m) for m in cfg["channel_mult"]),
        "num_res_blocks": str(cfg["num_res_blocks"]),
        "attention_levels": ",".join(str(a) for a in cfg["attention_levels"]),
        "groups": str(cfg["groups"]),
        "timesteps": str(timesteps),
        "schedule": schedule,
        "prediction": prediction,
        "target_scale": str(target_scale),
        "train_steps": str(train_steps),
        "train_data": train_data,
        "created": created,
    }
    if mode == "superres":
        meta["scale_min"] = str(scale_min)
        meta["scale_max"] = str(scale_max)
    return meta


def load_unet(path, dtype=torch.float32):
    """Load a weights file; returns (model, metadata). Strict: names and shapes must match."""
    tensors, meta = safetensors_io.load(path)
    model = UNet(config_from_metadata(meta))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: missing tensors {missing}, extra tensors {extra}")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"{path}: tensor {k!r} has shape {list(tensors[k].shape)}, "
                             f"config wants {list(v.shape)}")
    model.load_state_dict(tensors, strict=True)
    return model.to(dtype), meta


def save_unet(model, path, dtype="F32", meta=None, mode=None, **meta_kw):
    """Save `model` with full metadata (either `meta`, or built from `mode` + kwargs)."""
    if meta is None:
        meta = metadata_from_config(model.cfg, mode, **meta_kw)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    safetensors_io.save(path, sd, meta, dtype=dtype)
