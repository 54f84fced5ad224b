// Weights into the shared memory: copied into the arena's persistent region
// and packed once per model for the GEMM (k's dk^-1/2 folded into its rows:
// q·(k·s) = (q·s)·k, so this serves the families that scale q as well).
import type { ModelSpec } from '../backends/executor.js';
import type { WArray } from '../model/weights.js';
import type { Arena } from './arena.js';
import type { RuntimeKernels } from './kernels.js';
import type { Dims, LayerPtrs } from './messages.js';

const F4 = 4;

export interface Packed { layers: LayerPtrs[]; dims: Dims; gammas: number[][] }

/** Copy weights into the persistent region and pack them for the GEMM. */
export function packModel(spec: ModelSpec, K: RuntimeKernels, A: Arena): Packed {
  const { d, H, dk, dv, dqk, arch, normEps } = spec.dims;
  const Wp = 2 * dqk + 2 * H * dv;
  const vec = (src: ArrayLike<number>, what: string) => {
    const off = A.persistent(src.length * F4, what);
    A.f32(off, src.length).set(src);
    return off;
  };
  // Pass 1: allocate every persistent buffer (packed sizes known up front).
  const jobs: { rows: WArray[]; scale: number[]; N: number; K: number; out: number }[] = [];
  const packedW = (rows: WArray[], scale: number[], N: number, Kd: number, what: string) => {
    const out = A.persistent(K.packedSize(N, Kd) * F4, what);
    jobs.push({ rows, scale, N, K: Kd, out });
    return out;
  };
  const kScale = 1 / Math.sqrt(dk);
  const layers: LayerPtrs[] = spec.layers.map((lw, l) => {
    const m = lw.msr;
    const bias = new Float32Array(Wp);
    bias.set(m.q.b ?? [], 0);
    if (m.k.b) for (let i = 0; i < dqk; i++) bias[dqk + i] = m.k.b[i] * kScale;
    bias.set(m.v.b ?? [], 2 * dqk);
    bias.set(m.g.b ?? [], 2 * dqk + H * dv);
    return {
      preNormW: vec(m.preNorm.weight, 'weights'), preNormB: vec(m.preNorm.bias, 'weights'),
      qkvgW: packedW([m.q.W, m.k.W, m.v.W, m.g.W], [1, kScale, 1, 1], Wp, d, `layer ${l} q/k/v/g weights`),
      qkvgB: vec(bias, 'weights'),
      oW: packedW([m.o.W], [1], d, H * dv, 'weights'), oB: m.o.b ? vec(m.o.b, 'weights') : 0,
      normW: vec(m.norm.weight, 'weights'), normB: vec(m.norm.bias, 'weights'),
      mlpNormW: vec(lw.mlp.norm.weight, 'weights'), mlpNormB: vec(lw.mlp.norm.bias, 'weights'),
      mlp: lw.mlp.linears.map((li) => ({ W: packedW([li.W], [1], li.outDim, li.inDim, 'weights'), b: li.b ? vec(li.b, 'weights') : 0, inDim: li.inDim, outDim: li.outDim })),
      angle: Array.from(m.angle), gamma: Array.from(m.decay, (x) => Math.exp(x)), pow: 0,
    };
  });
  // Pass 2: stage each weight in transient memory and pack it.
  for (const j of jobs) {
    const tmp = A.transient(j.N * j.K * F4, 'weight staging');
    const view = A.f32(tmp, j.N * j.K);
    let o = 0;
    j.rows.forEach((w, i) => {
      const s = j.scale[i];
      if (s === 1) view.set(w, o); else for (let e = 0; e < w.length; e++) view[o + e] = w[e] * s;
      o += w.length;
    });
    K.pack(tmp, j.N, j.K, j.out);
    A.reset();
  }
  // widest MLP intermediate (every Linear but the last writes one; swiglu's first is gate|up, 2I wide)
  const maxHidden = Math.max(1, ...spec.layers.flatMap((lw) => lw.mlp.linears.slice(0, -1).map((li) => li.outDim)));
  const p: Packed = {
    layers, gammas: layers.map((l) => l.gamma),
    dims: {
      d, H, dk, dv, dqk, Wp, maxHidden,
      normRms: arch.norm === 'rmsnorm', groupRms: arch.groupNorm === 'rmsnorm', eps: normEps,
      swiglu: arch.mlp === 'swiglu', angleF32: arch.angleProduct === 'float32',
    },
  };
  return p;
}

