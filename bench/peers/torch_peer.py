#!/usr/bin/python3
"""Float32 PyTorch RetNet (DESIGN.md section 1), a peer for `npm run bench:peers`.

The same model as retnet's: weights from a retnet safetensors checkpoint (the
seed's state_dict names, config in __metadata__.config), chunkwise retention
with both normalisations off (the library's defaults), computed the way a
PyTorch user would write it: projections over the whole sequence, the
intra-chunk retention batched over heads and chunks, and the cross-chunk
state from one matmul with the chunk-decay matrix.

  /usr/bin/python3 bench/peers/torch_peer.py --model M.safetensors --input X.f32 \
      --length L --chunk 512 --threads 2 --reps 3 [--check Y.f32] [--onnx out.onnx] [--serve]

Prints one JSON line: times (s), median, tokens/s, the check against the
project's output, and the ONNX export (when asked). Exit 1 on a failed check.
With --serve: after the warm-up, check and export it prints {"ready": ...}
and then times one forward per "run" line on stdin ({"t": seconds}) until
"quit" or end of input, so a driver can interleave the peers' runs.
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {'F32': np.float32, 'F64': np.float64, 'F16': np.float16}


def read_safetensors(path):
    """name -> float32 tensor, and the __metadata__ strings."""
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop('__metadata__', {}) or {}
    out = {}
    for name, t in header.items():
        a, b = t['data_offsets']
        arr = np.frombuffer(data[a:b], dtype=DTYPES[t['dtype']]).reshape(t['shape'])
        out[name] = torch.from_numpy(arr.astype(np.float32))
    return out, meta


ACTS = {
    'gelu': lambda t: F.gelu(t),
    'silu': F.silu,
    'relu': F.relu,
    'selu': F.selu,
    'sigmoid': torch.sigmoid,
}


class RetNetTorch(torch.nn.Module):
    def __init__(self, sd, cfg, chunk):
        super().__init__()
        self.cfg = cfg
        self.H = cfg['num_heads']
        self.d = cfg['dim_model']
        self.dk = self.d // self.H
        self.dv = self.d * cfg['value_factor'] // self.H
        self.C = chunk
        self.num_layer = cfg['num_layer']
        self.msr_act = ACTS[cfg['msr_gate_fn']]
        self.mlp_act = ACTS[cfg['mlp_gate_fn']]
        for name, t in sd.items():
            self.register_buffer(name.replace('.', '_'), t)
        self.sd = {name: getattr(self, name.replace('.', '_')) for name in sd}
        # per layer: decay tables (float64, rounded once to float32 as the project does)
        C = chunk
        i = torch.arange(C, dtype=torch.float64)
        for l in range(self.num_layer):
            gamma = torch.exp(self.sd[f'layers.{l}.0.decay'].double())          # [H]
            diff = i[:, None] - i[None, :]                                       # [C, C]
            D = torch.where(diff >= 0, gamma[:, None, None] ** diff.clamp(min=0), torch.zeros(()))  # [H, C, C]
            self.register_buffer(f'D{l}', D.float())
            self.register_buffer(f'xi{l}', (gamma[:, None] ** (i + 1)).float())  # [H, C]: γ^(i+1)
            self.register_buffer(f'zeta{l}', (gamma[:, None] ** (C - 1 - i)).float())  # [H, C]: γ^(C-1-j)
            self.register_buffer(f'gC{l}', (gamma ** C))                         # [H] float64, for the scan matrix

    def rotary_tables(self, l, L):
        angle = self.sd[f'layers.{l}.0.angle'].reshape(-1).double()             # [dk]
        pos = torch.arange(L, dtype=torch.float64)[:, None] * angle[None, :]    # [L, dk]
        return torch.cos(pos).float(), torch.sin(pos).float()

    @staticmethod
    def rot(x):
        # rot(x)[2i] = -x[2i+1], rot(x)[2i+1] = x[2i]
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((-x2, x1), dim=-1).flatten(-2)

    def msr(self, x, l):
        sd, H, dk, dv, C = self.sd, self.H, self.dk, self.dv, self.C
        B, L, d = x.shape
        nC = L // C
        p = f'layers.{l}.0'
        h = F.layer_norm(x, (d,), sd[f'{p}.pre_norm.weight'], sd[f'{p}.pre_norm.bias'], 1e-5)
        q = F.linear(h, sd[f'{p}.q_proj.weight'], sd[f'{p}.q_proj.bias'])
        k = F.linear(h, sd[f'{p}.k_proj.weight'], sd[f'{p}.k_proj.bias']) * (dk ** -0.5)
        v = F.linear(h, sd[f'{p}.v_proj.weight'], sd[f'{p}.v_proj.bias'])
        g = F.linear(h, sd[f'{p}.g_proj.weight'], sd[f'{p}.g_proj.bias'])
        q = q.view(B, L, H, dk).transpose(1, 2)                                # [B, H, L, dk]
        k = k.view(B, L, H, dk).transpose(1, 2)
        v = v.view(B, L, H, dv).transpose(1, 2)                                # [B, H, L, dv]
        cos, sin = self.rotary_tables(l, L)
        q = q * cos + self.rot(q) * sin
        k = k * cos + self.rot(k) * sin
        qc = q.reshape(B, H, nC, C, dk)
        kc = k.reshape(B, H, nC, C, dk)
        vc = v.reshape(B, H, nC, C, dv)
        D = getattr(self, f'D{l}')[None, :, None]                              # [1, H, 1, C, C]
        inner = ((qc @ kc.transpose(-1, -2)) * D) @ vc                         # [B, H, nC, C, dv]
        zeta = getattr(self, f'zeta{l}')[None, :, None, :, None]               # [1, H, 1, C, 1]
        dS = (kc * zeta).transpose(-1, -2) @ vc                                # [B, H, nC, dk, dv]
        # incoming state of chunk c: sum over c' < c of γ^(C·(c−1−c')) ΔS_c'
        c = torch.arange(nC, dtype=torch.float64)
        e = c[:, None] - 1 - c[None, :]                                        # [nC, nC]
        gC = getattr(self, f'gC{l}')
        M = torch.where(e >= 0, gC[:, None, None] ** e.clamp(min=0), torch.zeros((), dtype=torch.float64)).float()  # [H, nC, nC]
        S_in = (M[None] @ dS.reshape(B, H, nC, dk * dv)).reshape(B, H, nC, dk, dv)
        xi = getattr(self, f'xi{l}')[None, :, None, :, None]                   # [1, H, 1, C, 1]
        o = inner + (qc * xi) @ S_in                                           # [B, H, nC, C, dv]
        o = o.reshape(B, H, L, dv).transpose(1, 2)                             # [B, L, H, dv]
        o = F.layer_norm(o, (dv,), sd[f'{p}.norm.weight'], sd[f'{p}.norm.bias'], 1e-5)
        o = self.msr_act(g) * o.reshape(B, L, H * dv)
        return F.linear(o, sd[f'{p}.o_proj.weight'], sd[f'{p}.o_proj.bias'])

    def mlp(self, x, l):
        sd = self.sd
        p = f'layers.{l}.1.net'
        h = F.layer_norm(x, (self.d,), sd[f'{p}.0.weight'], sd[f'{p}.0.bias'], 1e-5)
        i = 1
        while f'{p}.{i + 1}.1.weight' in sd:
            h = self.mlp_act(F.linear(h, sd[f'{p}.{i}.1.weight'], sd.get(f'{p}.{i}.1.bias')))
            i += 1
        return F.linear(h, sd[f'{p}.{i}.1.weight'], sd.get(f'{p}.{i}.1.bias'))

    def forward(self, x):
        for l in range(self.num_layer):
            x = x + self.msr(x, l)
            x = x + self.mlp(x, l)
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--input', required=True, help='raw float32 [1, L, d]')
    ap.add_argument('--length', type=int, required=True)
    ap.add_argument('--chunk', type=int, default=512)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--check', help="raw float32 [1, L, d]: the project's output for this input")
    ap.add_argument('--check-tol', type=float, default=1e-4)
    ap.add_argument('--onnx', help='also export the model for this length to ONNX here')
    ap.add_argument('--serve', action='store_true', help='time one forward per "run" line on stdin')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    sd, meta = read_safetensors(a.model)
    cfg = json.loads(meta['config'])
    d, L = cfg['dim_model'], a.length
    if L % a.chunk:
        raise SystemExit(f'torch_peer: length {L} must be a multiple of the chunk {a.chunk}')
    model = RetNetTorch(sd, cfg, a.chunk).eval()
    x = torch.from_numpy(np.fromfile(a.input, dtype=np.float32).reshape(1, L, d))
    result = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'length': L, 'chunk': a.chunk}
    with torch.inference_mode():
        y = model(x)  # warm-up, and the output checked below
        if a.check:
            ref = torch.from_numpy(np.fromfile(a.check, dtype=np.float32).reshape(1, L, d))
            # scale-free, on the model's increment y − x (the residual x would hide errors in it)
            dy, dref = (y - x).double(), (ref - x).double()
            rel = float((dy - dref).abs().max() / dref.abs().max())
            result['check'] = {'relErr': rel, 'tol': a.check_tol, 'ok': bool(rel <= a.check_tol)}
            if not rel <= a.check_tol:
                print(json.dumps(result))
                sys.exit(1)
        times = []
        for _ in range(0 if a.serve else a.reps):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    if times:
        med = sorted(times)[len(times) // 2]
        result.update({'times': times, 'median': med, 'tokensPerSec': L / med})
    if a.onnx:
        t0 = time.perf_counter()
        with torch.no_grad():
            torch.onnx.export(model, (x,), a.onnx, input_names=['x'], output_names=['y'], opset_version=17,
                              do_constant_folding=True)
        result['onnx'] = {'path': a.onnx, 'exportSeconds': time.perf_counter() - t0, 'opset': 17}
    if a.serve:
        print(json.dumps({'ready': True, **result}), flush=True)
        with torch.inference_mode():
            while sys.stdin.readline().strip() == 'run':
                t0 = time.perf_counter()
                model(x)
                print(json.dumps({'t': time.perf_counter() - t0}), flush=True)
        return
    print(json.dumps(result))


if __name__ == '__main__':
    main()
