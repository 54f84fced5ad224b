#!/usr/bin/python3
"""Write tiny random fla-format RetNets and their float64 golden logits into
test/fixtures/fla/<name>/ (config.json, weights, golden.safetensors).

The golden logits come from tools/fla/reference.py run on the folder as written
(weights re-read from disk, so F32/BF16 rounding is part of the model).
Deterministic: fixed seeds, CPU torch, float64 draws rounded to the stored dtype.

Usage: /usr/bin/python3 tools/fla/make_fixtures.py [OUT_DIR]   (default test/fixtures/fla)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as ref  # noqa: E402
from st import write_safetensors, read_safetensors  # noqa: E402

F64 = torch.float64
B, T = 2, 67


def config(**over) -> dict:
    """config.json as fla's RetNetConfig serialises it (keys sorted like HF's save_pretrained)."""
    c = {
        "architectures": ["RetNetForCausalLM"],
        "attn": None,
        "attn_mode": "chunk",
        "bos_token_id": 1,
        "conv_size": 4,
        "elementwise_affine": True,
        "eos_token_id": 2,
        "expand_k": 1,
        "expand_v": 2,
        "feature_map": None,
        "fuse_cross_entropy": True,
        "fuse_norm": True,
        "fuse_swiglu": True,
        "hidden_act": "swish",
        "hidden_ratio": 2,
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": None,
        "max_position_embeddings": 2048,
        "model_type": "retnet",
        "norm_eps": 1e-06,
        "num_heads": 4,
        "num_hidden_layers": 2,
        "num_kv_heads": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.48.2",
        "use_cache": True,
        "use_output_gate": True,
        "use_short_conv": False,
        "vocab_size": 128,
    }
    for k, v in over.items():
        if v is ...:
            c.pop(k, None)
        else:
            c[k] = v
    return dict(sorted(c.items()))


def random_weights(rc: dict, legacy: bool, gen: torch.Generator, emb_std: float = 1.0) -> dict[str, torch.Tensor]:
    """float64 weights, drawn in expected_names order. Scales keep activations O(1), logits O(1-10)."""
    d = rc["d"]
    W = {}
    for name, shape in ref.expected_shapes(rc, legacy).items():
        if name.endswith("norm.weight") or name.endswith("norm_swish_gate.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=F64)
        elif name == "model.embeddings.weight":
            t = emb_std * torch.randn(shape, generator=gen, dtype=F64)
        elif name == "lm_head.weight":
            t = (2.0 / math.sqrt(d)) * torch.randn(shape, generator=gen, dtype=F64)
        else:  # [out, in] projections: std 1/sqrt(in)
            t = torch.randn(shape, generator=gen, dtype=F64) / math.sqrt(shape[1])
        W[name] = t
    return W


def write_model(folder: str, cfg: dict, W: dict[str, torch.Tensor], dtype: torch.dtype, shards: int = 1) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    stored = {n: t.to(dtype) for n, t in W.items()}
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), stored, {"format": "pt"})
        return ["model.safetensors"]
    # split in name order into `shards` parts of roughly equal bytes
    names = list(stored)
    sizes = [stored[n].numel() * stored[n].element_size() for n in names]
    total = sum(sizes)
    parts: list[list[str]] = [[] for _ in range(shards)]
    acc = 0
    for n, s in zip(names, sizes):
        i = min(shards - 1, int(acc * shards / total))
        parts[i].append(n)
        acc += s
    assert all(parts), "empty shard"
    files, weight_map = [], {}
    for i, part in enumerate(parts):
        fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(folder, fn), {n: stored[n] for n in part}, {"format": "pt"})
        files.append(fn)
        weight_map.update({n: fn for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")
    return files + ["model.safetensors.index.json"]


def make_ids(V: int, gen: torch.Generator) -> torch.Tensor:
    ids = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    ids[:, 0] = 1  # BOS, as the fla-hub models were trained
    return ids.to(torch.int32)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def sensitivity(rc, W, ids) -> dict[str, float]:
    """Relative max change of the logits under plausible implementation slips."""
    base = ref.forward(rc, W, ids)
    return {
        "no_q_scale": rel(ref.forward(rc, W, ids, q_scale=False), base),
        "gnorm_eps_1e-6": rel(ref.forward(rc, W, ids, gnorm_eps=1e-6), base) if rc["eps"] != 1e-6 else 0.0,
        "gnorm_eps_x10": rel(ref.forward(rc, W, ids, gnorm_eps=rc["eps"] * 10), base),
        "exact_rope_angles": rel(ref.forward(rc, W, ids, exact_angles=True), base),
        "recurrent_vs_parallel": rel(ref.forward(rc, W, ids, retention="recurrent"), base),
    }


def retention_ms(rc, W, ids) -> list[float]:
    got = []
    ref.forward(rc, W, ids, collect=got)
    return [o.pow(2).mean().item() for o in got]


# --------------------------------------------------------------------------- fixtures

def fx_f32():
    cfg = config(hidden_size=64, num_heads=4, intermediate_size=128, vocab_size=128, torch_dtype="float32")
    return cfg, torch.float32, 1, {}


def fx_bf16_sharded():
    cfg = config(hidden_size=48, num_heads=3, intermediate_size=96, vocab_size=100, torch_dtype="bfloat16")
    return cfg, torch.bfloat16, 3, {}


def fx_legacy_mlp():
    # a 2024-era fla checkpoint: fused gate_proj [2I, d] (gate = first I rows, up = last I rows),
    # fuse_norm false (-> attn.g_norm.weight), no fuse_swiglu / attn keys yet, intermediate_size from hidden_ratio
    cfg = config(hidden_size=32, num_heads=2, intermediate_size=None, hidden_ratio=2, vocab_size=120,
                 fuse_norm=False, fuse_swiglu=..., attn=..., torch_dtype="float32", transformers_version="4.39.3")
    return cfg, torch.float32, 1, {"legacy": True}


def fx_tied():
    cfg = config(hidden_size=32, num_heads=4, intermediate_size=64, vocab_size=112, tie_word_embeddings=True)
    return cfg, torch.float32, 1, {"emb_std": 0.4}


def fx_gqa():
    cfg = config(hidden_size=64, num_heads=4, num_kv_heads=2, expand_k=0.5, expand_v=1.5,
                 intermediate_size=96, vocab_size=128)
    return cfg, torch.float32, 1, {}


def fx_small_o():
    cfg = config(hidden_size=48, num_heads=4, intermediate_size=96, vocab_size=128, norm_eps=1e-3)
    return cfg, torch.float32, 1, {"small_o": True}


FIXTURES = {
    "f32": fx_f32,
    "bf16-sharded": fx_bf16_sharded,
    "legacy-mlp": fx_legacy_mlp,
    "tied": fx_tied,
    "gqa": fx_gqa,
    "small-o": fx_small_o,
}


def build(name: str, out_root: str, seed: int) -> dict:
    cfg, dtype, shards, extra = FIXTURES[name]()
    rc = ref.resolve_config(cfg)
    legacy = bool(extra.get("legacy"))
    rc["legacy_mlp"] = legacy
    gen = torch.Generator().manual_seed(seed)
    W = random_weights(rc, legacy, gen, emb_std=extra.get("emb_std", 1.0))
    ids = make_ids(rc["V"], gen)
    if extra.get("small_o"):
        # scale each layer's v_proj so that mean(o^2) of the raw retention output is ~norm_eps
        for l in range(rc["L"]):
            Wr = {n: t.to(dtype).to(F64) for n, t in W.items()}
            ms = retention_ms(rc, Wr, ids)[l]
            W[f"model.layers.{l}.attn.v_proj.weight"] *= math.sqrt(rc["eps"] / ms)
    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    files = write_model(folder, cfg, W, dtype, shards)

    # golden from the folder as stored
    _, rc2, W2 = ref.load(folder)
    assert rc2["legacy_mlp"] == legacy
    logits = ref.forward(rc2, W2, ids)
    write_safetensors(os.path.join(folder, "golden.safetensors"),
                      {"input_ids": ids, "logits": logits.contiguous()},
                      {"format": "pt", "generator": "tools/fla/make_fixtures.py", "seed": str(seed)})
    files.append("golden.safetensors")
    # re-read the golden file and recheck against a recurrent-retention forward
    g, _ = read_safetensors(os.path.join(folder, "golden.safetensors"))
    assert torch.equal(g["input_ids"], ids) and torch.equal(g["logits"], logits)
    sens = sensitivity(rc2, W2, ids)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in files) + os.path.getsize(os.path.join(folder, "config.json"))
    return {
        "name": name, "folder": folder, "files": files, "bytes": size, "rc": rc2,
        "ntensors": len([n for n in W2 if not (rc2["tie"] and n == "lm_head.weight")]),
        "params": sum(t.numel() for n, t in W2.items() if not (rc2["tie"] and n == "lm_head.weight")),
        "logits_absmax": logits.abs().max().item(), "logits_std": logits.std().item(),
        "ret_ms": retention_ms(rc2, W2, ids), "sens": sens,
    }


def main(argv):
    out_root = argv[0] if argv else os.path.join(HERE, "..", "..", "test", "fixtures", "fla")
    out_root = os.path.normpath(out_root)
    os.makedirs(out_root, exist_ok=True)
    total = 0
    for i, name in enumerate(FIXTURES):
        r = build(name, out_root, seed=20240 + i)
        rc = r["rc"]
        total += r["bytes"]
        print(f"{name}: d={rc['d']} L={rc['L']} H={rc['H']} Hkv={rc['Hkv']} dk={rc['dk']} dv={rc['dv']} "
              f"I={rc['I']} V={rc['V']} eps={rc['eps']:g} tie={rc['tie']} gnorm={rc['gnorm']} "
              f"legacy_mlp={rc['legacy_mlp']}")
        print(f"  files {r['files']}  {r['bytes']:,} bytes, {r['ntensors']} tensors, {r['params']:,} params")
        print(f"  logits max|.| {r['logits_absmax']:.3f} std {r['logits_std']:.3f}; "
              f"mean(o^2) per layer {', '.join(f'{m:.3e}' for m in r['ret_ms'])}")
        print("  logits rel. change: " + ", ".join(f"{k} {v:.3e}" for k, v in r["sens"].items()))
    print(f"total {total:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
