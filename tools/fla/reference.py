#!/usr/bin/python3
"""Float64 reference forward of fla's RetNet (fla-org/flash-linear-attention,
fla/models/retnet + fla/layers/multiscale_retention.py), Hugging Face layout.

No cache, no padding mask, full sequences only. Everything is computed in
float64 except what fla itself pins to float32 and which changes the numbers
systematically: RoPE's inverse frequencies and the angles t*inv_freq (fla's
RotaryEmbedding builds both in float32; cos/sin of those float32 angles are
then taken here in float64).

Usage:
  /usr/bin/python3 tools/fla/reference.py MODEL_DIR            # summary of a forward on golden ids
  /usr/bin/python3 tools/fla/reference.py MODEL_DIR --check     # recompute golden.safetensors and compare
"""

from __future__ import annotations

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st import read_hf_folder, read_safetensors  # noqa: E402

F64 = torch.float64

# Config keys fla's RetNetConfig understands that change nothing in a cache-less
# inference forward (training / kernel choice / generation only).
INERT_KEYS = {
    "attn_mode", "conv_size", "max_position_embeddings", "use_cache", "pad_token_id",
    "bos_token_id", "eos_token_id", "initializer_range", "fuse_swiglu", "fuse_cross_entropy",
    "fuse_linear_cross_entropy", "use_l2warp", "architectures", "torch_dtype", "dtype",
    "transformers_version", "model_type", "_name_or_path", "auto_map", "keys_to_ignore_at_inference",
}


# --------------------------------------------------------------------------- config

def resolve_config(cfg: dict) -> dict:
    """Derived sizes and switches from an fla RetNetConfig-style config.json."""
    if cfg.get("model_type", "retnet") != "retnet":
        raise ValueError(f"model_type {cfg.get('model_type')!r} is not 'retnet'")
    for key in ("feature_map", "attn", "attnres_block_size"):
        if cfg.get(key) is not None:
            raise ValueError(f"unsupported fla RetNet option {key}={cfg[key]!r}")
    if cfg.get("use_short_conv", False):
        raise ValueError("unsupported fla RetNet option use_short_conv=true")
    act = cfg.get("hidden_act", "swish")
    if act != "swish":
        raise ValueError(f"unsupported hidden_act {act!r} (only 'swish')")

    d = int(cfg.get("hidden_size", 2048))
    H = int(cfg.get("num_heads", 8))
    Hkv = cfg.get("num_kv_heads")
    Hkv = H if Hkv is None else int(Hkv)
    if H % Hkv:
        raise ValueError("num_heads must be a multiple of num_kv_heads")
    groups = H // Hkv
    key_dim = int(d * cfg.get("expand_k", 1.0))
    value_dim = int(d * cfg.get("expand_v", 2.0))
    if key_dim % H or value_dim % H:
        raise ValueError("key_dim and value_dim must be divisible by num_heads")
    dk, dv = key_dim // H, value_dim // H
    if dk % 2:
        raise ValueError("head_k_dim must be even for rotate-half RoPE")
    I = cfg.get("intermediate_size")
    if I is None:
        ratio = cfg.get("hidden_ratio", 2)
        ratio = 4 if ratio is None else ratio
        I = int(d * ratio * 2 / 3)
        I = 256 * ((I + 256 - 1) // 256)
    fuse_norm = bool(cfg.get("fuse_norm", True))
    use_gate = bool(cfg.get("use_output_gate", True))
    return {
        "d": d, "L": int(cfg.get("num_hidden_layers", 24)), "H": H, "Hkv": Hkv, "groups": groups,
        "key_dim": key_dim, "value_dim": value_dim, "dk": dk, "dv": dv, "I": int(I),
        "V": int(cfg.get("vocab_size", 32000)), "eps": float(cfg.get("norm_eps", 1e-6)),
        "tie": bool(cfg.get("tie_word_embeddings", False)), "use_gate": use_gate,
        "elementwise_affine": cfg.get("elementwise_affine", True) is not False,
        # FusedRMSNormGated only when gate_fn == 'swish' and fuse_norm and use_output_gate
        "gnorm": "g_norm_swish_gate" if (act == "swish" and fuse_norm and use_gate) else "g_norm",
    }


def expected_names(rc: dict, legacy_mlp: bool) -> list[str]:
    names = ["model.embeddings.weight"]
    for l in range(rc["L"]):
        p = f"model.layers.{l}."
        names.append(p + "attn_norm.weight")
        names += [p + f"attn.{x}_proj.weight" for x in ("q", "k", "v")]
        if rc["use_gate"]:
            names.append(p + "attn.g_proj.weight")
        names.append(p + "attn.o_proj.weight")
        if rc["elementwise_affine"]:
            names.append(p + f"attn.{rc['gnorm']}.weight")
        names.append(p + "mlp_norm.weight")
        names += [p + "mlp.gate_proj.weight"] + ([] if legacy_mlp else [p + "mlp.up_proj.weight"])
        names.append(p + "mlp.down_proj.weight")
    names.append("model.norm.weight")
    if not rc["tie"]:
        names.append("lm_head.weight")
    return names


def expected_shapes(rc: dict, legacy_mlp: bool) -> dict[str, tuple]:
    d, I = rc["d"], rc["I"]
    g = rc["groups"]
    shapes = {}
    for n in expected_names(rc, legacy_mlp):
        leaf = n.split(".", 3)[-1] if n.startswith("model.layers.") else n
        if n in ("model.embeddings.weight", "lm_head.weight"):
            s = (rc["V"], d)
        elif n.endswith("norm.weight") and ".attn." not in n:
            s = (d,)
        elif ".attn." in n and "norm" in n:
            s = (rc["dv"],)
        elif leaf.endswith("q_proj.weight"):
            s = (rc["key_dim"], d)
        elif leaf.endswith("k_proj.weight"):
            s = (rc["key_dim"] // g, d)
        elif leaf.endswith("v_proj.weight"):
            s = (rc["value_dim"] // g, d)
        elif leaf.endswith("g_proj.weight"):
            s = (rc["value_dim"], d)
        elif leaf.endswith("o_proj.weight"):
            s = (d, rc["value_dim"])
        elif leaf.endswith("gate_proj.weight"):
            s = (2 * I if legacy_mlp else I, d)
        elif leaf.endswith("up_proj.weight"):
            s = (I, d)
        elif leaf.endswith("down_proj.weight"):
            s = (d, I)
        else:
            raise AssertionError(n)
        shapes[n] = s
    return shapes


def load(folder: str) -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """(config, resolved config, float64 weights) of an fla RetNet HF folder; names and shapes checked."""
    cfg, raw = read_hf_folder(folder)
    rc = resolve_config(cfg)
    legacy = "model.layers.0.mlp.up_proj.weight" not in raw
    rc["legacy_mlp"] = legacy
    shapes = expected_shapes(rc, legacy)
    present = set(raw)
    if rc["tie"]:
        present.discard("lm_head.weight")  # a tied checkpoint may still carry it; it is ignored
    missing = [n for n in shapes if n not in present]
    extra = sorted(present - set(shapes))
    if missing or extra:
        raise ValueError(f"tensor names do not match: missing {missing[:6]}, unexpected {extra[:6]}")
    W = {}
    for n, s in shapes.items():
        t = raw[n]
        if tuple(t.shape) != s:
            raise ValueError(f"{n}: shape {tuple(t.shape)}, expected {s}")
        W[n] = t.to(F64)
    if rc["tie"]:
        W["lm_head.weight"] = W["model.embeddings.weight"]
    return cfg, rc, W


# --------------------------------------------------------------------------- pieces

def rms_norm(x: torch.Tensor, w: torch.Tensor | None, eps: float) -> torch.Tensor:
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if w is None else y * w


def silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def rope_cos_sin(T: int, dk: int, base: float = 10000.0, exact_angles: bool = False):
    """cos, sin [T, dk/2] in float64. fla: inv_freq = 1/base**(arange(0,dk,2)/dk) and
    t*inv_freq (torch.outer) both in float32. exact_angles=True does it all in float64."""
    if exact_angles:
        inv = 1.0 / (base ** (torch.arange(0, dk, 2, dtype=F64) / dk))
        ang = torch.outer(torch.arange(T, dtype=F64), inv)
    else:
        inv = 1.0 / (base ** (torch.arange(0, dk, 2, dtype=torch.float32) / dk))
        ang = torch.outer(torch.arange(T, dtype=torch.float32), inv).to(F64)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half (GPT-NeoX) RoPE over the whole last dim. x [B, T, h, dk]."""
    half = x.shape[-1] // 2
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


def gammas(H: int) -> torch.Tensor:
    """Per-head decay gamma_h = 1 - 2^(-5-h), h = 0..H-1 (query heads)."""
    return 1.0 - torch.pow(torch.tensor(2.0, dtype=F64), -5.0 - torch.arange(H, dtype=F64))


def retention_parallel(q, k, v, gamma, scale):
    """o_t = sum_{s<=t} gamma^(t-s) (q_t . k_s) scale v_s. q,k [B,T,H,dk], v [B,T,H,dv]."""
    T = q.shape[1]
    n = torch.arange(T, dtype=F64)
    diff = n[:, None] - n[None, :]
    mask = diff >= 0
    D = torch.where(mask[None], torch.exp(diff.clamp(min=0)[None] * torch.log(gamma)[:, None, None]),
                    torch.zeros((), dtype=F64))  # [H, T, T]
    A = torch.einsum("bthd,bshd->bhts", q, k) * scale * D[None]
    return torch.einsum("bhts,bshd->bthd", A, v)


def retention_recurrent(q, k, v, gamma, scale):
    """S_t = gamma S_{t-1} + k_t^T v_t; o_t = scale q_t S_t."""
    B, T, H, dk = q.shape
    S = torch.zeros(B, H, dk, v.shape[-1], dtype=F64)
    out = torch.empty(B, T, H, v.shape[-1], dtype=F64)
    g = gamma[None, :, None, None]
    for t in range(T):
        S = g * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        out[:, t] = torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S)
    return out


# --------------------------------------------------------------------------- layers

def msr(h, W, l, rc, opts):
    p = f"model.layers.{l}.attn."
    B, T, _ = h.shape
    H, Hkv, dk, dv, g = rc["H"], rc["Hkv"], rc["dk"], rc["dv"], rc["groups"]
    q = (h @ W[p + "q_proj.weight"].T).reshape(B, T, H, dk)
    k = (h @ W[p + "k_proj.weight"].T).reshape(B, T, Hkv, dk)
    v = (h @ W[p + "v_proj.weight"].T).reshape(B, T, Hkv, dv)
    cos, sin = rope_cos_sin(T, dk, exact_angles=opts.get("exact_angles", False))
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    if g > 1:  # query head i reads kv head i // g (einops '... h d -> ... (h g) d')
        k = k.repeat_interleave(g, dim=2)
        v = v.repeat_interleave(g, dim=2)
    scale = dk ** -0.5 if opts.get("q_scale", True) else 1.0
    ret = retention_recurrent if opts.get("retention") == "recurrent" else retention_parallel
    o = ret(q, k, v, gammas(H), scale)  # [B, T, H, dv]
    if opts.get("collect") is not None:
        opts["collect"].append(o)
    eps = opts.get("gnorm_eps", rc["eps"])
    wn = W.get(p + rc["gnorm"] + ".weight")
    o = rms_norm(o, wn, eps).reshape(B, T, H * dv)
    if rc["use_gate"]:
        o = o * silu(h @ W[p + "g_proj.weight"].T)
    return o @ W[p + "o_proj.weight"].T


def mlp(h, W, l, rc):
    p = f"model.layers.{l}.mlp."
    if rc["legacy_mlp"]:  # fused gate_proj [2I, d]: first I rows gate, last I rows up (.chunk(2, -1))
        gu = h @ W[p + "gate_proj.weight"].T
        gate, up = gu[..., :rc["I"]], gu[..., rc["I"]:]
    else:
        gate, up = h @ W[p + "gate_proj.weight"].T, h @ W[p + "up_proj.weight"].T
    return (silu(gate) * up) @ W[p + "down_proj.weight"].T


def forward(rc: dict, W: dict, ids: torch.Tensor, **opts) -> torch.Tensor:
    """Logits [B, T, V] float64. opts: q_scale (True), gnorm_eps (norm_eps), exact_angles (False),
    retention ('parallel' | 'recurrent'), collect (list receiving each layer's raw retention output)."""
    eps = rc["eps"]
    x = W["model.embeddings.weight"][ids.long()]
    for l in range(rc["L"]):
        p = f"model.layers.{l}."
        x = x + msr(rms_norm(x, W[p + "attn_norm.weight"], eps), W, l, rc, opts)
        x = x + mlp(rms_norm(x, W[p + "mlp_norm.weight"], eps), W, l, rc)
    x = rms_norm(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].T


def run_folder(folder: str, ids: torch.Tensor, **opts) -> torch.Tensor:
    _, rc, W = load(folder)
    return forward(rc, W, ids, **opts)


def _main(argv):
    if not argv:
        print(__doc__)
        return 2
    folder = argv[0]
    golden, _ = read_safetensors(os.path.join(folder, "golden.safetensors"))
    ids = golden["input_ids"]
    _, rc, W = load(folder)
    logits = forward(rc, W, ids)
    print(f"{folder}: ids {tuple(ids.shape)} logits {tuple(logits.shape)} "
          f"max|logit| {logits.abs().max().item():.4f} std {logits.std().item():.4f}")
    if "--check" in argv:
        ref = golden["logits"]
        err = ((logits - ref).abs().max() / ref.abs().max()).item()
        print(f"  vs golden: max abs diff / max |golden| = {err:.3e}")
        return 0 if err < 1e-12 else 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
