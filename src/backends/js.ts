// The `js` backend: float64 reference of MSR, MLP and RetNet in all three
// forms (docs/architecture.md §1). Clarity over speed; the ground truth for wasm and tfjs.
import {
  activation, applyActivation, layerNorm, linear, rmsNorm, retentionChunkwise, retentionParallel, retentionRecurrent,
  retentionStep, rotary, type ActName, type RetentionFlags, type RetentionState, type Vec,
} from '../reference/ops.js';
import type { Dims } from '../model/config.js';
import { floatsOf } from '../model/bf16.js';
import type { LayerWeights, MLPWeights, MSRWeights } from '../model/weights.js';
import type { ChunkPlan } from '../options.js';

/** q, k, v of one sequence after projection, scaling and rotary:
 *  q, k [L, H·dk], v, g [L, H·dv] (g before its activation). */
export interface Projected { q: Vec; k: Vec; v: Vec; g: Vec }

/** The family's norm (dims.arch.norm or .groupNorm) over rows of n features. */
export function normRows(kind: 'layernorm' | 'rmsnorm', x: Vec, rows: number, n: number, w: { weight: ArrayLike<number>; bias: ArrayLike<number> }, dims: Dims): Vec {
  return kind === 'rmsnorm' ? rmsNorm(x, rows, n, w.weight, dims.normEps) : layerNorm(x, rows, n, w.weight, w.bias, dims.normEps);
}

export function projectMSR(w: MSRWeights, dims: Dims, x: Vec, L: number, pos0: number): Projected {
  const { d, H, dk, dv, dqk, arch } = dims;
  const h = normRows(arch.norm, x, L, d, w.preNorm, dims);
  const q = linear(h, L, d, floatsOf(w.q.W), w.q.b, dqk);
  const k = linear(h, L, d, floatsOf(w.k.W), w.k.b, dqk);
  const scale = 1 / Math.sqrt(dk);
  const scaled = arch.scaled === 'q' ? q : k;
  for (let i = 0; i < scaled.length; i++) scaled[i] *= scale;
  const v = linear(h, L, d, floatsOf(w.v.W), w.v.b, H * dv);
  const g = linear(h, L, d, floatsOf(w.g.W), w.g.b, H * dv);
  const f32 = arch.angleProduct === 'float32';
  rotary(q, L, H, dk, w.angle, pos0, f32);
  rotary(k, L, H, dk, w.angle, pos0, f32);
  return { q, k, v, g };
}

/** Copy head h out of x[L, H·w] into [L, w]. */
export function headOf(x: Vec, L: number, H: number, w: number, h: number): Vec {
  const out = new Float64Array(L * w);
  for (let n = 0; n < L; n++) for (let j = 0; j < w; j++) out[n * w + j] = x[n * H * w + h * w + j];
  return out;
}

export function setHead(x: Vec, L: number, H: number, w: number, h: number, src: Vec): void {
  for (let n = 0; n < L; n++) for (let j = 0; j < w; j++) x[n * H * w + h * w + j] = src[n * w + j];
}

/** One layer's recurrent state: S [H, dk, dv] and z [H, dk]. S's array type is the state's dtype: float64, or
 *  float32 (every update rounded to float32, as stateDtype float32 does in the chunkwise scan); z is float64. */
export interface LayerState { S: Float64Array | Float32Array; z: Float64Array }

export function zeroLayerState(dims: Dims, stateDtype: 'float64' | 'float32' = 'float64'): LayerState {
  const n = dims.H * dims.dk * dims.dv;
  return { S: stateDtype === 'float32' ? new Float32Array(n) : new Float64Array(n), z: new Float64Array(dims.H * dims.dk) };
}

const headState = (st: LayerState, h: number, dk: number, dv: number): RetentionState => ({
  S: st.S.subarray(h * dk * dv, (h + 1) * dk * dv), z: st.z.subarray(h * dk, (h + 1) * dk),
});

/** Step 5 on one head in the requested form. `state`/`pos0` continue a sequence (chunkwise/recurrent). */
export function retentionHead(
  q: Vec, k: Vec, v: Vec, L: number, dk: number, dv: number, gamma: number,
  plan: ChunkPlan, flags: RetentionFlags, state?: RetentionState, pos0 = 0,
): Vec {
  switch (plan.form) {
    case 'parallel':
      if (state && pos0 !== 0) throw new Error('the parallel form cannot continue a sequence');
      return retentionParallel(q, k, v, L, dk, dv, gamma, flags);
    case 'chunkwise': return retentionChunkwise(q, k, v, L, dk, dv, gamma, plan.chunkSize, flags, state, pos0);
    case 'recurrent': return retentionRecurrent(q, k, v, L, dk, dv, gamma, flags, state, pos0);
  }
}

/** Retention of all heads: q,k [L, H·dk], v [L, H·dv] → o [L, H·dv] (before the group norm). */
export function retentionAllHeads(
  p: { q: Vec; k: Vec; v: Vec }, L: number, dims: Dims, decay: ArrayLike<number>,
  plan: ChunkPlan, flags: RetentionFlags, state?: LayerState, pos0 = 0,
): Vec {
  const { H, dk, dv } = dims;
  const o = new Float64Array(L * H * dv);
  for (let h = 0; h < H; h++) {
    const oh = retentionHead(
      headOf(p.q, L, H, dk, h), headOf(p.k, L, H, dk, h), headOf(p.v, L, H, dv, h), L, dk, dv,
      Math.exp(decay[h]), plan, flags, state ? headState(state, h, dk, dv) : undefined, pos0,
    );
    setHead(o, L, H, dv, h, oh);
  }
  return o;
}

/** Step 6: group norm per head (shared affine), gate, output projection. o [L, H·dv] → y [L, d]. */
export function msrOutput(w: MSRWeights, dims: Dims, o: Vec, g: Vec, L: number, gateFn: ActName): Vec {
  const { d, H, dv } = dims;
  const normed = normRows(dims.arch.groupNorm, o, L * H, dv, w.norm, dims);
  const gate = applyActivation(g, gateFn);
  for (let i = 0; i < normed.length; i++) normed[i] *= gate[i];
  return linear(normed, L, H * dv, floatsOf(w.o.W), w.o.b, d);
}

/** MSR on one sequence x [L, d] → y [L, d] (no residual). */
export function msrForward(
  w: MSRWeights, dims: Dims, gateFn: ActName, x: Vec, L: number, plan: ChunkPlan, flags: RetentionFlags,
  state?: LayerState, pos0 = 0,
): Vec {
  const p = projectMSR(w, dims, x, L, pos0);
  const o = retentionAllHeads(p, L, dims, w.decay, plan, flags, state, pos0);
  return msrOutput(w, dims, o, p.g, L, gateFn);
}

/** MLP on x [L, d] → [L, d] (no residual; no activation after the last Linear). */
export function mlpForward(w: MLPWeights, dims: Dims, act: ActName, x: Vec, L: number): Vec {
  let h = normRows(dims.arch.norm, x, L, dims.d, w.norm, dims);
  if (dims.arch.mlp === 'swiglu') {
    // linears[0] = [gate; up] [2I, d], linears[1] = down [d, I]: down(act(gate·h) ⊙ up·h)
    const [gu, down] = w.linears;
    const I = gu.outDim / 2;
    const z = linear(h, L, gu.inDim, floatsOf(gu.W), gu.b, gu.outDim);
    const f = activation(act);
    const m = new Float64Array(L * I);
    for (let r = 0; r < L; r++) for (let j = 0; j < I; j++) m[r * I + j] = f(z[r * 2 * I + j]) * z[r * 2 * I + I + j];
    return linear(m, L, I, floatsOf(down.W), down.b, down.outDim);
  }
  w.linears.forEach((lin, i) => {
    h = linear(h, L, lin.inDim, floatsOf(lin.W), lin.b, lin.outDim);
    if (i + 1 < w.linears.length) h = applyActivation(h, act);
  });
  return h;
}

/** RetNet on one sequence: numLayer × (x ← MSR(x) + x; x ← MLP(x) + x). */
export function retnetForward(
  layers: LayerWeights[], dims: Dims, acts: { msr: ActName; mlp: ActName }, x0: Vec, L: number,
  plan: ChunkPlan, flags: RetentionFlags, states?: LayerState[], pos0 = 0,
): Vec {
  let x = Float64Array.from(x0);
  layers.forEach((lw, l) => {
    const y = msrForward(lw.msr, dims, acts.msr, x, L, plan, flags, states?.[l], pos0);
    for (let i = 0; i < x.length; i++) x[i] += y[i];
    const m = mlpForward(lw.mlp, dims, acts.mlp, x, L);
    for (let i = 0; i < x.length; i++) x[i] += m[i];
  });
  return x;
}

/** One recurrent MSR step for one token x [d] at absolute position `pos`; updates `state`. */
export function msrStep(w: MSRWeights, dims: Dims, gateFn: ActName, x: Vec, pos: number, state: LayerState, flags: RetentionFlags): Vec {
  const { H, dk, dv } = dims;
  const p = projectMSR(w, dims, x, 1, pos);
  const o = new Float64Array(H * dv);
  for (let h = 0; h < H; h++) {
    const oh = retentionStep(
      p.q.subarray(h * dk, (h + 1) * dk), p.k.subarray(h * dk, (h + 1) * dk), p.v.subarray(h * dv, (h + 1) * dv),
      dk, dv, Math.exp(w.decay[h]), headState(state, h, dk, dv), pos, flags,
    );
    o.set(oh, h * dv);
  }
  return msrOutput(w, dims, o, p.g, 1, gateFn);
}
