// Weights into the shared memory: copied into the arena's persistent region
// and packed once per model for the GEMM (k's dk^-1/2 folded into its rows:
// q·(k·s) = (q·s)·k, so this serves the families that scale q as well).
//
// BF16 weights (src/model/bf16.ts) stay BF16: each is widened into transient
// staging a block of rows at a time, packed by the engine (RuntimeKernels.packBf16)
// and narrowed back — exact, since every value came from BF16 — so the persistent
// region holds half the bytes of float32 panels and the GEMM widens per call
// (gemmBf16) to the same float32 operands as a float32 model's. A weight whose
// rows get a scale (k's dk^-1/2) stays BF16 only when the scale is a power of two
// (exact on BF16 values); otherwise it is packed as float32, as before.
import type { ModelSpec } from '../backends/executor.js';
import { errors } from '../errors.js';
import { Bf16Matrix, floatsOf, isBf16 } from '../model/bf16.js';
import type { LinearW } from '../model/weights.js';
import type { Arena } from './arena.js';
import type { RuntimeKernels } from './kernels.js';
import type { Dims, LayerPtrs } from './messages.js';

const F4 = 4;
/** Rows of a BF16 weight staged (widened, packed, narrowed) at a time: a multiple of 8 (panel width). */
const PACK_ROWS = 256;

export interface Packed {
  layers: LayerPtrs[]; dims: Dims; gammas: number[][];
  /** bytes of `wide` scratch one GEMM call on the largest BF16 weight needs (0: no BF16 weights) */
  bf16Scratch: number;
}

const isPow2 = (s: number) => s > 0 && 2 ** Math.round(Math.log2(s)) === s;

/** Copy weights into the persistent region and pack them for the GEMM. */
export function packModel(spec: ModelSpec, K: RuntimeKernels, A: Arena,
  /** `splitGate`: pack Wg apart from q|k|v (Dims.gSplit; the chunk-parallel runtime at precision 'bf16') */
  opts: { splitGate?: boolean } = {}): Packed {
  const { d, H, dk, dv, dqk, arch, normEps } = spec.dims;
  const gSplit = opts.splitGate === true;
  const Wp = 2 * dqk + (gSplit ? 1 : 2) * H * dv;
  // weights that do not fit: the chunk size and window do not help
  const hint = `the model's weights do not fit the ${K.name} engine's shared memory (float32 weights take 4 bytes a value, BF16 ones 2)`;
  const vec = (src: ArrayLike<number>, what: string) => {
    const off = A.persistent(src.length * F4, what, hint);
    A.f32(off, src.length).set(src);
    return off;
  };
  // Pass 1: allocate every persistent buffer (packed sizes known up front).
  type Job = { rows: LinearW[]; scale: number[]; N: number; K: number; out: number; bf16: boolean; what: string };
  const jobs: Job[] = [];
  let bf16Scratch = 0;
  const packedW = (rows: LinearW[], scale: number[], N: number, Kd: number, what: string): { W: number; bf16: boolean } => {
    const bf16 = rows.every(isBf16) && scale.every(isPow2);
    const out = A.persistent(bf16 ? K.packedBf16Bytes(N, Kd) : K.packedSize(N, Kd) * F4, what, hint);
    if (bf16) bf16Scratch = Math.max(bf16Scratch, K.bf16ScratchBytes(N, Kd));
    jobs.push({ rows, scale, N, K: Kd, out, bf16, what });
    return { W: out, bf16 };
  };
  const kScale = 1 / Math.sqrt(dk);
  const layers: LayerPtrs[] = spec.layers.map((lw, l) => {
    const m = lw.msr;
    const bias = new Float32Array(Wp);
    bias.set(m.q.b ?? [], 0);
    if (m.k.b) for (let i = 0; i < dqk; i++) bias[dqk + i] = m.k.b[i] * kScale;
    bias.set(m.v.b ?? [], 2 * dqk);
    if (!gSplit) bias.set(m.g.b ?? [], 2 * dqk + H * dv);
    const qkvg = gSplit
      ? packedW([m.q.W, m.k.W, m.v.W], [1, kScale, 1], Wp, d, `layer ${l} q/k/v weights`)
      : packedW([m.q.W, m.k.W, m.v.W, m.g.W], [1, kScale, 1, 1], Wp, d, `layer ${l} q/k/v/g weights`);
    const g = gSplit ? packedW([m.g.W], [1], H * dv, d, `layer ${l} g weights`) : { W: 0, bf16: false };
    const o = packedW([m.o.W], [1], d, H * dv, 'weights');
    return {
      preNormW: vec(m.preNorm.weight, 'weights'), preNormB: vec(m.preNorm.bias, 'weights'),
      qkvgW: qkvg.W, qkvgBf16: qkvg.bf16,
      qkvgB: vec(bias, 'weights'),
      gW: g.W, gBf16: g.bf16, gB: gSplit && m.g.b ? vec(m.g.b, 'weights') : 0,
      oW: o.W, oBf16: o.bf16, oB: m.o.b ? vec(m.o.b, 'weights') : 0,
      normW: vec(m.norm.weight, 'weights'), normB: vec(m.norm.bias, 'weights'),
      mlpNormW: vec(lw.mlp.norm.weight, 'weights'), mlpNormB: vec(lw.mlp.norm.bias, 'weights'),
      mlp: lw.mlp.linears.map((li) => {
        const p = packedW([li.W], [1], li.outDim, li.inDim, 'weights');
        return { W: p.W, bf16: p.bf16, b: li.b ? vec(li.b, 'weights') : 0, inDim: li.inDim, outDim: li.outDim };
      }),
      angle: Array.from(m.angle), gamma: Array.from(m.decay, (x) => Math.exp(x)), pow: 0,
    };
  });
  // Pass 2: stage each weight in transient memory and pack it.
  for (const j of jobs) {
    if (K.packWhole && j.bf16 && j.scale.every((x) => x === 1)) { packBf16Whole(j, K, A); continue; }
    if (j.bf16 && !K.packWhole) { packBf16Weight(j, K, A); continue; }
    const tmp = A.transient(j.N * j.K * F4, 'weight staging');
    const view = A.f32(tmp, j.N * j.K);
    // BF16 rows: their bits staged here and widened by the engine's kernel into place (exact), not widened
    // into a new JavaScript array (for the 1.3B's q|k|v|g, 2.4 GB of fresh pages). The stepper's bf16 packing
    // of the 1.3B shape on oneDNN: 8.6 / 11.6 s against 17.1 / 17.7 s (2026-12-07 04:15 and 04:10 UTC, scratch
    // timings); the packed bytes are the same (step and prefill log-probs hashed before and after, equal)
    const most16 = Math.max(0, ...j.rows.map((w0) => (w0 instanceof Bf16Matrix ? w0.rows * w0.cols : 0)));
    const u16 = most16 ? A.transient(most16 * 2, 'weight staging') : 0;
    let o = 0;
    j.rows.forEach((w0, i) => {
      const s = j.scale[i];
      if (w0 instanceof Bf16Matrix) {
        const bits = w0.bits(), n = bits.length;
        new Uint16Array(A.memory.buffer, u16, n).set(bits);
        K.widenBf16(u16, n, tmp + o * F4);
        if (s !== 1) scaleStaged(K, A, tmp + o * F4, n, s);
        o += n;
        return;
      }
      const w = floatsOf(w0);
      if (s === 1) view.set(w, o); else for (let e = 0; e < w.length; e++) view[o + e] = w[e] * s;
      o += w.length;
    });
    // a BF16 weight scaled by a power of two is staged widened (exact) and packed as float32 values
    if (K.packWhole) K.packWhole(tmp, 'f32', j.N, j.K, j.out); else K.pack(tmp, j.N, j.K, j.out);
    A.reset();
  }
  // widest MLP intermediate (every Linear but the last writes one; swiglu's first is gate|up, 2I wide)
  const maxHidden = Math.max(1, ...spec.layers.flatMap((lw) => lw.mlp.linears.slice(0, -1).map((li) => li.outDim)));
  const p: Packed = {
    layers, gammas: layers.map((l) => l.gamma), bf16Scratch,
    dims: {
      d, H, dk, dv, dqk, Wp, maxHidden, gSplit,
      normRms: arch.norm === 'rmsnorm', groupRms: arch.groupNorm === 'rmsnorm', eps: normEps,
      swiglu: arch.mlp === 'swiglu', angleF32: arch.angleProduct === 'float32',
    },
  };
  return p;
}

/** n staged float32 values at byte offset x times a power of two s, in place: the engine's kernel where it
 *  has one, else in JavaScript (the same values: the exact product, rounded once either way). */
function scaleStaged(K: RuntimeKernels, A: Arena, x: number, n: number, s: number): void {
  if (K.scaleF32) { K.scaleF32(x, n, s); return; }
  const v = A.f32(x, n);
  for (let e = 0; e < n; e++) v[e] = v[e] * s;
}

/** One BF16 weight (rows of several matrices stacked, no scales) staged whole as BF16 bits and packed by
 *  an engine with packWhole (oneDNN's layout is not written in row blocks). */
function packBf16Whole(j: { rows: LinearW[]; N: number; K: number; out: number }, K: RuntimeKernels, A: Arena): void {
  const u16 = A.transient(j.N * j.K * 2, 'weight staging');
  const stage = new Uint16Array(A.memory.buffer, u16, j.N * j.K);
  let o = 0;
  for (const w of j.rows) { const b = (w as Bf16Matrix).bits(); stage.set(b, o); o += b.length; }
  K.packWhole!(u16, 'bf16', j.N, j.K, j.out);
  A.reset();
}

/** One BF16 weight (rows of several matrices stacked, each part scaled by a power of two) packed
 *  PACK_ROWS rows at a time: BF16 bits → staging, widened, scaled, packed and narrowed by the engine. */
export function packBf16Weight(j: { rows: LinearW[]; scale: number[]; N: number; K: number; out: number; what: string }, K: RuntimeKernels, A: Arena): void {
  const Kd = j.K;
  // a file-backed matrix that reads rows alone is read block by block into the staging (reading it whole
  // left a copy, up to the 1.3B shape's 125 MiB head, for the collector)
  const parts = j.rows.map((w, i) => {
    const m = w as Bf16Matrix;
    return { m, bits: m.resident || !m.readsRows ? m.bits() : null, rows: m.rows, scale: j.scale[i] };
  });
  const nbMax = Math.min(PACK_ROWS, j.N);
  const u16 = A.transient(nbMax * Kd * 2, 'weight staging');
  const f32 = A.transient(K.packedSize(nbMax, Kd) * F4, 'weight staging');
  const tmp = A.transient(K.packedSize(nbMax, Kd) * F4, 'weight staging');
  for (let n0 = 0; n0 < j.N; n0 += PACK_ROWS) {
    const nb = Math.min(PACK_ROWS, j.N - n0);
    const stage = new Uint16Array(A.memory.buffer, u16, nb * Kd);
    const scaled: [number, number, number][] = []; // (first row in block, rows, scale)
    // rows [n0, n0 + nb) of the stacked parts
    let r = n0, base = 0;
    for (const p of parts) {
      const lo = Math.max(r, base), hi = Math.min(n0 + nb, base + p.rows);
      if (lo < hi) {
        const dst = stage.subarray((lo - n0) * Kd, (hi - n0) * Kd);
        if (p.bits) dst.set(p.bits.subarray((lo - base) * Kd, (hi - base) * Kd));
        else p.m.rowBits(lo - base, hi - lo, dst);
        if (p.scale !== 1) scaled.push([lo - n0, hi - lo, p.scale]);
        r = hi;
      }
      base += p.rows;
    }
    // no scaled rows in the block: packed from the bits as they are (the same bytes as widening them first)
    if (!scaled.length && K.packBf16Bits) { K.packBf16Bits(u16, nb, Kd, j.out + n0 * Kd * 2); continue; }
    K.widenBf16(u16, nb * Kd, f32);
    for (const [r0, n, s] of scaled) scaleStaged(K, A, f32 + r0 * Kd * F4, n * Kd, s);
    if (!K.packBf16(f32, nb, Kd, j.out + n0 * Kd * 2, tmp)) {
      throw errors.weights(`${j.what}: a BF16 value times its scale is not a BF16 value (a subnormal weight); it cannot be packed exactly as BF16`);
    }
  }
  A.reset();
}
