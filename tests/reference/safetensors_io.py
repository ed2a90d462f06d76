"""Minimal pure-python safetensors reader/writer (no `safetensors` package needed).

Byte layout (docs/MODEL.md, "Weights file: safetensors"):

    u64 little-endian N | N bytes of UTF-8 JSON header | data

The header maps every tensor name to
``{"dtype": "F32"|"F16", "shape": [...], "data_offsets": [begin, end]}`` with
offsets relative to the start of the data, and may hold ``"__metadata__"``, a
string -> string map.  This writer lays tensors out contiguously, in the order
of the sorted key names, little-endian, and pads the JSON header with spaces so
that the data starts at a multiple of 8 bytes.  The loader converts F16 to F32
and validates the header (JSON, N, dtypes, sizes, offset ranges, overlaps).

`save_np` / `load_np` take and return numpy arrays and need only numpy (the
scripts in scripts/ use them); `save` / `load` are the same for torch tensors
(the reference tests), and import torch only when called.
"""

import json
import struct

import numpy as np

_NP_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2")}


class SafetensorsError(ValueError):
    pass


def save_np(path, tensors, metadata=None, dtype="F32"):
    """Write `tensors` (name -> array-like) to `path`, all stored as `dtype`.

    Values are first converted to float32 then (for F16) rounded to nearest
    half precision, i.e. the same rounding the C writer uses.
    """
    if dtype not in _NP_DTYPES:
        raise SafetensorsError(f"{path}: unsupported dtype {dtype!r}")
    npdt = _NP_DTYPES[dtype]
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise SafetensorsError(f"{path}: metadata must be str -> str, got {k!r}: {v!r}")

    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise SafetensorsError(f"{path}: '__metadata__' is not a valid tensor name")
        arr = np.asarray(tensors[name], dtype=np.float32)
        arr = np.ascontiguousarray(arr.astype(npdt))  # F32 -> F16: round to nearest even
        raw = arr.tobytes(order="C")
        header[name] = {
            "dtype": dtype,
            "shape": [int(s) for s in arr.shape],
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)

    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    pad = (-(8 + len(hjson))) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def read_header(path):
    """Return (header dict, data start offset, file bytes) after validating N and JSON."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise SafetensorsError(f"{path}: file too short ({len(buf)} bytes) for the header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise SafetensorsError(f"{path}: header length {n} larger than the file ({len(buf)} bytes)")
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    return header, 8 + n, buf


def load_np(path):
    """Return ({name: float32 numpy array}, {metadata str: str})."""
    header, start, buf = read_header(path)
    data_len = len(buf) - start
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SafetensorsError(f"{path}: __metadata__ must be an object of strings")
    tensors = {}
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"{path}: tensor {name!r}: malformed entry {info!r}")
        dt = info["dtype"]
        if dt not in _NP_DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r}: unsupported dtype {dt!r}")
        shape = info["shape"]
        offs = info["data_offsets"]
        if (not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape)):
            raise SafetensorsError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)):
            raise SafetensorsError(f"{path}: tensor {name!r}: bad data_offsets {offs!r}")
        b, e = offs
        if not (0 <= b <= e <= data_len):
            raise SafetensorsError(
                f"{path}: tensor {name!r}: data_offsets [{b}, {e}] outside the data ({data_len} bytes)")
        count = 1
        for s in shape:
            count *= s
        itemsize = _NP_DTYPES[dt].itemsize
        if e - b != count * itemsize:
            raise SafetensorsError(
                f"{path}: tensor {name!r}: {e - b} bytes do not match {dt} x {shape} = {count * itemsize}")
        spans.append((b, e, name))
        arr = np.frombuffer(buf, dtype=_NP_DTYPES[dt], count=count, offset=start + b)
        tensors[name] = arr.astype(np.float32).reshape(shape)
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: tensors {n0!r} and {n1!r} overlap")
    return tensors, dict(metadata)


def save(path, tensors, metadata=None, dtype="F32"):
    """save_np for name -> torch.Tensor (converted to float32 on the CPU first)."""
    import torch

    arrays = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        arrays[name] = t.detach().cpu().to(torch.float32).contiguous().numpy()
    save_np(path, arrays, metadata, dtype)


def load(path):
    """Return ({name: float32 torch.Tensor}, {metadata str: str})."""
    import torch

    tensors, metadata = load_np(path)
    return {k: torch.from_numpy(v) for k, v in tensors.items()}, metadata


def dtypes(path):
    """name -> dtype string, as stored in the header (for tests)."""
    header, _, _ = read_header(path)
    header.pop("__metadata__", None)
    return {k: v["dtype"] for k, v in header.items()}
