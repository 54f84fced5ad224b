#!/usr/bin/python3
"""PyTorch fla RetNet, chunkwise, float32 or bfloat16: the PyTorch peer for `npm run bench:fla`.

The model of fla-org/flash-linear-attention's RetNet (docs/architecture.md section 7) as a
PyTorch user without fla's Triton kernels would run it on a CPU: weights of a
Hugging Face folder widened to float32 (BF16 exactly), projections over the
whole sequence, retention chunkwise (intra-chunk A = (q kT) * D batched over
heads, the cross-chunk state carried from chunk to chunk), the head applied to
blocks of positions, log-softmax, and the negative log-likelihood of each next
token. Written from the formulas of tools/fla/reference.py (the float64
transcription the golden fixtures come from).

--dtype bfloat16 runs it as a PyTorch user who casts the model to bfloat16
would: weights and activations bfloat16 (PyTorch's bf16 matrix products
accumulate in float32 and round their outputs), RMSNorm computed in float32
and cast back, decay tables from float64, log-softmax in float64.

  /usr/bin/python3 bench/peers/torch_fla_peer.py --check test/fixtures/fla [--dtype bfloat16]
      every fixture's golden logits within 3e-5 of max|logit| (float32), or
      within 2^-4 (bfloat16: its residual stream is bfloat16 too, so twice the
      8u-per-layer first-order bound of retnet's bf16 precision on 2 layers)
  /usr/bin/python3 bench/peers/torch_fla_peer.py --model DIR --length L [--chunk 512]
      [--threads 2] [--reps 1] [--seed 0] [--dtype float32|bfloat16]
      scores L random ids (BOS first); prints one JSON line: times, tokens/s, nll,
      peak RSS (getrusage), threads.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tools', 'fla'))
from st import read_hf_folder, read_safetensors  # noqa: E402

F32 = torch.float32
DT = F32  # the compute dtype (--dtype)


def load(folder):
    cfg, raw = read_hf_folder(folder)
    d = cfg['hidden_size']
    H = cfg['num_heads']
    Hkv = cfg.get('num_kv_heads') or H
    dk = int(d * cfg.get('expand_k', 1)) // H
    dv = int(d * cfg.get('expand_v', 2)) // H
    W = {}
    for name in list(raw):
        W[name] = raw.pop(name).to(DT)  # one tensor at a time (BF16 → float32 is exact)
    if cfg.get('tie_word_embeddings', False):
        W['lm_head.weight'] = W['model.embeddings.weight']
    legacy = 'model.layers.0.mlp.up_proj.weight' not in W
    for l in range(cfg['num_hidden_layers']):
        p = f'model.layers.{l}.mlp.'
        if legacy:  # fused [2I, d]: gate rows first, then up
            gu = W.pop(p + 'gate_proj.weight')
            W[p + 'gate_proj.weight'], W[p + 'up_proj.weight'] = gu.chunk(2, 0)
    fused = cfg.get('fuse_norm', True) and cfg.get('hidden_act', 'swish') == 'swish'
    rc = dict(L=cfg['num_hidden_layers'], d=d, H=H, Hkv=Hkv, dk=dk, dv=dv, eps=cfg.get('norm_eps', 1e-6),
              gnorm='g_norm_swish_gate' if fused else 'g_norm')
    return rc, W


def rms(x, w, eps):
    if x.dtype == F32:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def retention_chunkwise(q, k, v, gam, C):
    """q, k [H, T, dk] (q scaled), v [H, T, dv]; gam [H] float64 -> o [H, T, dv] float32."""
    H, T, dk = q.shape
    dv = v.shape[-1]
    S = torch.zeros(H, dk, dv, dtype=DT)
    o = torch.empty(H, T, dv, dtype=DT)
    n = torch.arange(C, dtype=torch.float64)
    lg = torch.log(gam)[:, None]
    for s in range(0, T, C):
        c = min(C, T - s)
        nn = n[:c]
        diff = nn[:, None] - nn[None, :]
        D = torch.where(diff >= 0, torch.exp(diff.clamp(min=0)[None] * lg[:, :, None]), torch.zeros((), dtype=torch.float64)).to(DT)
        xi = torch.exp((nn + 1)[None] * lg).to(DT)[:, :, None]          # gamma^(i+1)
        zeta = torch.exp((c - 1 - nn)[None] * lg).to(DT)[:, :, None]    # gamma^(c-1-j)
        qc, kc, vc = q[:, s:s + c], k[:, s:s + c], v[:, s:s + c]
        A = torch.bmm(qc, kc.transpose(1, 2)) * D
        o[:, s:s + c] = torch.bmm(A, vc) + torch.bmm(qc * xi, S)
        S = S * torch.exp(c * lg).to(DT)[:, :, None] + torch.bmm((kc * zeta).transpose(1, 2), vc)
    return o


def forward_nll(rc, W, ids, C, head_block=512, logits_out=None):
    """Sum of -ln p(ids[t+1] | ids[..t]) over t (and, with logits_out, the logits [T, V])."""
    T = ids.shape[0]
    H, dk, dv, g = rc['H'], rc['dk'], rc['dv'], rc['H'] // rc['Hkv']
    eps = rc['eps']
    inv = 1.0 / (10000.0 ** (torch.arange(0, dk, 2, dtype=F32) / dk))
    ang = torch.outer(torch.arange(T, dtype=F32), inv)
    cos, sin = torch.cos(ang)[:, None, :].to(DT), torch.sin(ang)[:, None, :].to(DT)
    gam = 1.0 - torch.pow(torch.tensor(2.0, dtype=torch.float64), -5.0 - torch.arange(H, dtype=torch.float64))
    x = W['model.embeddings.weight'][ids]
    for l in range(rc['L']):
        p = f'model.layers.{l}.'
        h = rms(x, W[p + 'attn_norm.weight'], eps)
        a = p + 'attn.'
        q = rope((h @ W[a + 'q_proj.weight'].T).view(T, H, dk), cos, sin) * dk ** -0.5
        k = rope((h @ W[a + 'k_proj.weight'].T).view(T, -1, dk), cos, sin)
        v = (h @ W[a + 'v_proj.weight'].T).view(T, -1, dv)
        if g > 1:
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        o = retention_chunkwise(q.transpose(0, 1).contiguous(), k.transpose(0, 1).contiguous(), v.transpose(0, 1).contiguous(), gam, C)
        o = rms(o.transpose(0, 1), W[a + rc['gnorm'] + '.weight'], eps).reshape(T, H * dv)
        gate = h @ W[a + 'g_proj.weight'].T
        x = x + (o * gate * torch.sigmoid(gate)) @ W[a + 'o_proj.weight'].T
        m = p + 'mlp.'
        h = rms(x, W[p + 'mlp_norm.weight'], eps)
        gt = h @ W[m + 'gate_proj.weight'].T
        x = x + ((gt * torch.sigmoid(gt)) * (h @ W[m + 'up_proj.weight'].T)) @ W[m + 'down_proj.weight'].T
    x = rms(x, W['model.norm.weight'], eps)
    nll = 0.0
    for s in range(0, T, head_block):
        z = x[s:s + head_block] @ W['lm_head.weight'].T
        if logits_out is not None:
            logits_out[s:s + z.shape[0]] = z
        lp = torch.log_softmax(z.double(), dim=-1)
        tgt = ids[s + 1:s + 1 + z.shape[0]]
        nll -= lp[torch.arange(tgt.shape[0]), tgt].sum().item()
    return nll


def check(root):
    worst = 0.0
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.exists(os.path.join(folder, 'golden.safetensors')):
            continue
        rc, W = load(folder)
        g, _ = read_safetensors(os.path.join(folder, 'golden.safetensors'))
        ids, want = g['input_ids'].long(), g['logits']
        for b in range(ids.shape[0]):
            for C in (7, 64):
                out = torch.empty(ids.shape[1], want.shape[2], dtype=DT)
                forward_nll(rc, W, ids[b], C, head_block=16, logits_out=out)
                err = ((out.double() - want[b]).abs().max() / want.abs().max()).item()
                worst = max(worst, err)
        print(f'{name}: max|dlogit|/max|logit| = {worst:.2e} (running max)', file=sys.stderr)
    tol = 3e-5 if DT == F32 else 2.0 ** -4
    ok = worst <= tol
    print(json.dumps({'check': 'fla goldens', 'dtype': str(DT).replace('torch.', ''), 'worst': worst, 'tolerance': tol, 'ok': ok}))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--check')
    ap.add_argument('--model')
    ap.add_argument('--length', type=int, default=2048)
    ap.add_argument('--chunk', type=int, default=512)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=1)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--dtype', choices=['float32', 'bfloat16'], default='float32')
    a = ap.parse_args()
    global DT
    DT = torch.bfloat16 if a.dtype == 'bfloat16' else F32
    torch.set_num_threads(a.threads)
    if a.check:
        return check(a.check)
    t0 = time.perf_counter()
    rc, W = load(a.model)
    load_s = time.perf_counter() - t0
    V = W['lm_head.weight'].shape[0]
    gen = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(3, V, (a.length,), generator=gen)
    ids[0] = 1
    times, nll = [], None
    with torch.no_grad():
        for _ in range(a.reps):
            t = time.perf_counter()
            nll = forward_nll(rc, W, ids, a.chunk)
            times.append(time.perf_counter() - t)
    med = sorted(times)[len(times) // 2]
    print(json.dumps({'peer': f'torch-{a.dtype}', 'dtype': a.dtype, 'torch': torch.__version__, 'threads': a.threads, 'length': a.length, 'chunk': a.chunk,
                      'load_s': load_s, 'times': times, 'median_s': med, 'tokens_per_s': a.length / med, 'nll': nll,
                      'maxrss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
