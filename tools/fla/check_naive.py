#!/usr/bin/python3
"""Check the float64 transcription's retention (tools/fla/reference.py) against
independent float64 re-implementations of the formulas of fla's naive kernels:

  - fla/ops/retention/naive.py (naive_retention): [B,H,T,D] layout, per-head
    log2(1 - 2^(-5-h)), decay matrix exp2((i-j)*s) masked to i >= j, q scaled by
    D^-0.5, two einsums.
  - fla/ops/simple_gla/naive.py, the recurrent form (S = exp(g) S + k^T v,
    o = scale q S, g = log gamma every step) and the chunked form (cumulative
    log-decay within chunks of 16, inter-chunk state carried across chunks).

fla's own naive code runs in float32; here everything is float64. Also checks
RoPE against a complex-number rotation and the GQA head mapping.

Usage: /usr/bin/python3 tools/fla/check_naive.py   (exit status 1 if any error > 1e-12)
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

F64 = torch.float64
TOL = 1e-12


def naive_retention_like(q, k, v):
    """Formula of fla's naive_retention, inputs [B,H,T,D], float64."""
    _, H, T, D = q.shape
    s = torch.log2(1 - torch.pow(torch.tensor(2.0, dtype=F64), -5.0 - torch.arange(H, dtype=F64)))
    n = torch.arange(T, dtype=F64)
    rel = n[:, None] - n[None, :]
    decay = torch.exp2(rel[None] * s[:, None, None]) * (rel >= 0)[None]
    scores = torch.einsum("bhqd,bhkd,hqk->bhqk", q * D ** -0.5, k, decay)
    return torch.einsum("bhqk,bhkd->bhqd", scores, v)


def simple_gla_recurrent_like(q, k, v, g, scale):
    """Recurrent simple-GLA formula, inputs [B,T,H,D], g [B,T,H] (log decay)."""
    B, T, H, K = q.shape
    S = torch.zeros(B, H, K, v.shape[-1], dtype=F64)
    o = torch.zeros(B, T, H, v.shape[-1], dtype=F64)
    for i in range(T):
        S = S * g[:, i].exp()[..., None, None] + k[:, i, :, :, None] * v[:, i, :, None, :]
        o[:, i] = ((q[:, i] * scale)[..., None] * S).sum(-2)
    return o


def simple_gla_chunk_like(q, k, v, g, scale, C=16):
    """Chunked simple-GLA formula, inputs [B,T,H,D], g [B,T,H]; T padded to a multiple of C."""
    B, T, H, K = q.shape
    Vd = v.shape[-1]
    pad = (C - T % C) % C
    tr = lambda x: x.transpose(1, 2)  # -> [B,H,T,...]
    qh, kh, vh, gh = tr(q) * scale, tr(k), tr(v), g.transpose(1, 2)
    if pad:
        qh = torch.cat([qh, qh.new_zeros(B, H, pad, K)], 2)
        kh = torch.cat([kh, kh.new_zeros(B, H, pad, K)], 2)
        vh = torch.cat([vh, vh.new_zeros(B, H, pad, Vd)], 2)
        gh = torch.cat([gh, gh.new_zeros(B, H, pad)], 2)
    n = qh.shape[2] // C
    qh, kh, vh = (x.reshape(B, H, n, C, -1) for x in (qh, kh, vh))
    cg = gh.reshape(B, H, n, C).cumsum(-1)
    S = torch.zeros(B, H, K, Vd, dtype=F64)
    o = torch.zeros(B, H, n, C, Vd, dtype=F64)
    tri = torch.ones(C, C, dtype=torch.bool).tril()
    for c in range(n):
        b = cg[:, :, c]
        L = torch.where(tri, (b[..., :, None] - b[..., None, :]).masked_fill(~tri, 0).exp(), torch.zeros((), dtype=F64))
        intra = (qh[:, :, c] @ kh[:, :, c].transpose(-1, -2) * L) @ vh[:, :, c]
        inter = (qh[:, :, c] * b[..., None].exp()) @ S
        o[:, :, c] = intra + inter
        S = S * b[..., -1, None, None].exp() + (kh[:, :, c] * (b[..., -1:] - b).exp()[..., None]).transpose(-1, -2) @ vh[:, :, c]
    return o.reshape(B, H, n * C, Vd)[:, :, :T].transpose(1, 2)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def main():
    worst = 0.0
    gen = torch.Generator().manual_seed(1234)
    print("retention, transcription vs re-implemented naive formulas (max abs err / max |ref|):")
    for (B, T, H, dk, dv) in [(2, 67, 4, 16, 32), (1, 200, 8, 8, 24), (3, 5, 2, 6, 4), (1, 1, 3, 4, 4)]:
        q = torch.randn(B, T, H, dk, generator=gen, dtype=F64)
        k = torch.randn(B, T, H, dk, generator=gen, dtype=F64)
        v = torch.randn(B, T, H, dv, generator=gen, dtype=F64)
        gam = ref.gammas(H)
        scale = dk ** -0.5
        par = ref.retention_parallel(q, k, v, gam, scale)
        rec = ref.retention_recurrent(q, k, v, gam, scale)
        naive = naive_retention_like(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
        g = torch.log(gam)[None, None, :].expand(B, T, H)
        sg_rec = simple_gla_recurrent_like(q, k, v, g, scale)
        sg_chk = simple_gla_chunk_like(q, k, v, g, scale)
        errs = {
            "parallel vs naive_retention": rel(par, naive),
            "recurrent vs naive_retention": rel(rec, naive),
            "parallel vs simple_gla recurrent": rel(par, sg_rec),
            "recurrent vs simple_gla recurrent": rel(rec, sg_rec),
            "parallel vs simple_gla chunk(16)": rel(par, sg_chk),
        }
        print(f"  B={B} T={T} H={H} dk={dk} dv={dv}")
        for name, e in errs.items():
            print(f"    {name:36s} {e:.3e}")
            worst = max(worst, e)

    # RoPE: rotate-half == complex rotation of (x[j], x[j+half]) by t*inv_freq[j]
    T, dk = 67, 16
    x = torch.randn(2, T, 3, dk, generator=gen, dtype=F64)
    cos, sin = ref.rope_cos_sin(T, dk)
    got = ref.apply_rope(x, cos, sin)
    inv = 1.0 / (10000.0 ** (torch.arange(0, dk, 2, dtype=torch.float32) / dk))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv).to(F64)
    z = torch.complex(x[..., : dk // 2], x[..., dk // 2:]) * torch.polar(torch.ones_like(ang), ang)[None, :, None, :]
    want = torch.cat([z.real, z.imag], -1)
    e = rel(got, want)
    worst = max(worst, e)
    print(f"RoPE rotate-half vs complex rotation: {e:.3e}")
    cos64, sin64 = ref.rope_cos_sin(T, dk, exact_angles=True)
    print(f"RoPE float32 angles vs float64 angles (T={T}, dk={dk}): max |cos diff| "
          f"{(cos - cos64).abs().max().item():.3e}, max |sin diff| {(sin - sin64).abs().max().item():.3e}")

    # GQA mapping: repeat_interleave == einops '... h d -> ... (h g) d'
    kv = torch.randn(2, 5, 2, 4, generator=gen, dtype=F64)
    rep = kv.repeat_interleave(2, dim=2)
    ok = all(torch.equal(rep[:, :, i], kv[:, :, i // 2]) for i in range(4))
    print(f"GQA: query head i uses kv head i // groups: {ok}")

    print(f"worst retention/RoPE error: {worst:.3e} (tolerance {TOL:g})")
    return 0 if worst < TOL and ok else 1


if __name__ == "__main__":
    sys.exit(main())
