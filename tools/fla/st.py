"""Minimal safetensors reader/writer on top of torch (no `safetensors` package).

Format: 8-byte little-endian header length N, N bytes of JSON header
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}),
then the raw little-endian data; offsets are relative to the end of the header.
"""

from __future__ import annotations

import json
import os
import struct

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return ({name: tensor in its stored dtype}, metadata).

    Each tensor is read straight into its own storage, one at a time: the peak memory is the
    tensors, never a second copy of the file (what a user's mmap-based loader would hold).
    """
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        meta = header.pop("__metadata__", {}) or {}
        base = 8 + n
        for name, info in header.items():
            dtype = DTYPES[info["dtype"]]
            b, e = info["data_offsets"]
            shape = list(info["shape"])
            numel = 1
            for s in shape:
                numel *= s
            t = torch.empty(numel, dtype=dtype)
            if numel:
                view = t.view(torch.uint8).numpy()
                if view.nbytes != e - b:
                    raise ValueError(f"{path}: tensor {name} holds {e - b} bytes, its shape and dtype need {view.nbytes}")
                f.seek(base + b)
                if f.readinto(view) != e - b:
                    raise ValueError(f"{path}: tensor {name} ends past the end of the file")
            out[name] = t.reshape(shape)
    return out, meta


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.to(torch.uint8).numpy().tobytes()


def write_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> int:
    """Write tensors (in their own dtypes, in the given order). Returns the data byte count."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    off = 0
    for name, t in tensors.items():
        data = _tensor_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - (8 + len(hj)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for c in chunks:
            f.write(c)
    return off


def read_hf_folder(folder: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """config.json plus all weights of an HF-layout folder (single file or index + shards)."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(folder, "model.safetensors.index.json")
    tensors: dict[str, torch.Tensor] = {}
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        for shard in sorted(set(weight_map.values())):
            part, _ = read_safetensors(os.path.join(folder, shard))
            for name, t in part.items():
                if weight_map.get(name) != shard:
                    raise ValueError(f"{shard}: tensor {name} is not mapped to this shard in the index")
                if name in tensors:
                    raise ValueError(f"duplicate tensor {name}")
                tensors[name] = t
        missing = set(weight_map) - set(tensors)
        if missing:
            raise ValueError(f"index names tensors absent from the shards: {sorted(missing)[:5]}")
    else:
        tensors, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    return config, tensors
