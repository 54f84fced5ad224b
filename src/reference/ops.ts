// Float64 reference kernels: the ground truth every other backend is checked
// against (docs/architecture.md §1). Written for clarity, not speed. Every array is
// row-major; the shape of each buffer is given in a comment next to it.
//
// Conventions shared with the WASM kernels and the tfjs backend:
//   x      // [rows, n]       activations, one row per token
//   W      // [out, in]       a PyTorch Linear weight (y = x Wᵀ + b)
//   q, k   // [L, dk]         one head's queries / keys (after rotary)
//   v      // [L, dv]         one head's values

export type Vec = Float64Array;
export type Weights = ArrayLike<number>;

export const LN_EPS = 1e-5;

// ---------------------------------------------------------------- activations

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf(x) to about 1e-15 absolute: a positive series for |x| < 3, Lentz's
 *  continued fraction for erfc beyond. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  const s = x < 0 ? -1 : 1;
  if (ax < 3) {
    // erf(x) = 2/sqrt(pi) · exp(-x²) · Σ_n 2^n x^(2n+1) / (1·3·…·(2n+1)); every term positive.
    const x2 = ax * ax;
    let term = ax, sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return s * TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  }
  if (ax > 7) return s; // erfc(7) < 5e-23
  // erfc(x) = exp(-x²)/sqrt(pi) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  const tiny = 1e-300;
  let f = ax, C = ax, D = 0;
  for (let n = 1; n < 300; n++) {
    const a = n / 2;
    D = ax + a * D; if (D === 0) D = tiny; D = 1 / D;
    C = ax + a / C; if (C === 0) C = tiny;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return s * (1 - erfc);
}

/** Activation functions: gelu (exact, erf form), silu, relu, selu, sigmoid. */
export type ActName = 'gelu' | 'silu' | 'relu' | 'selu' | 'sigmoid';
export const ACTIVATIONS: readonly ActName[] = ['gelu', 'silu', 'relu', 'selu', 'sigmoid'];

const SELU_ALPHA = 1.6732632423543772848170429916717;
const SELU_SCALE = 1.0507009873554804934193349852946;

export function activation(name: ActName): (x: number) => number {
  switch (name) {
    case 'gelu': return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'silu': return (x) => x / (1 + Math.exp(-x));
    case 'relu': return (x) => (x > 0 ? x : 0);
    case 'selu': return (x) => SELU_SCALE * (x > 0 ? x : SELU_ALPHA * Math.expm1(x));
    case 'sigmoid': return (x) => 1 / (1 + Math.exp(-x));
  }
}

export function applyActivation(x: Vec, name: ActName): Vec {
  const f = activation(name);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
  return y;
}

// ---------------------------------------------------------------- dense layers

/** y[rows, out] = x[rows, in] · Wᵀ + b. */
export function linear(x: Vec, rows: number, inDim: number, W: Weights, b: Weights | null, outDim: number): Vec {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inDim; i++) acc += x[r * inDim + i] * W[o * inDim + i];
      y[r * outDim + o] = acc;
    }
  }
  return y;
}

/** Row-wise LayerNorm over n features (biased variance, eps inside the sqrt). */
export function layerNorm(x: Vec, rows: number, n: number, gamma: Weights, beta: Weights, eps = LN_EPS): Vec {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let vr = 0;
    for (let i = 0; i < n; i++) { const t = x[r * n + i] - mean; vr += t * t; }
    vr /= n;
    const inv = 1 / Math.sqrt(vr + eps);
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean) * inv * gamma[i] + beta[i];
  }
  return y;
}

/** Row-wise RMSNorm over n features: x · 1/sqrt(mean(x²) + eps) · gamma (no mean, no bias). */
export function rmsNorm(x: Vec, rows: number, n: number, gamma: Weights, eps: number): Vec {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < n; i++) { const t = x[r * n + i]; ss += t * t; }
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) y[r * n + i] = x[r * n + i] * inv * gamma[i];
  }
  return y;
}

// ---------------------------------------------------------------- rotary

/** In place on x[rows, heads·dk]: row r has absolute position pos0 + r.
 *  θ_i = angle[2i] (the buffer repeats each frequency twice).
 *  out[2i] = x[2i]·cos − x[2i+1]·sin, out[2i+1] = x[2i+1]·cos + x[2i]·sin. */
export function rotary(x: Vec, rows: number, heads: number, dk: number, angle: Weights, pos0: number, f32Product = false): void {
  const width = heads * dk;
  for (let r = 0; r < rows; r++) {
    const n = pos0 + r;
    for (let i = 0; i < dk / 2; i++) {
      // f32Product: t·θ rounded to float32 first, as a model trained with float32 angles saw it
      const t = f32Product ? Math.fround(n * angle[2 * i]) : n * angle[2 * i];
      const c = Math.cos(t), s = Math.sin(t);
      for (let h = 0; h < heads; h++) {
        const o = r * width + h * dk + 2 * i;
        const a = x[o], b = x[o + 1];
        x[o] = a * c - b * s;
        x[o + 1] = b * c + a * s;
      }
    }
  }
}

/** The default rotary angle buffer for key width dk: [dk], each frequency twice. */
export function defaultAngle(dk: number): Float64Array {
  const half = dk / 2;
  const a = new Float64Array(dk);
  for (let i = 0; i < half; i++) {
    const th = half === 1 ? 1 : Math.pow(10000, -i / (half - 1));
    a[2 * i] = th; a[2 * i + 1] = th;
  }
  return a;
}

/** The default decay buffer: decay[h] = log(1 − 2^(−5−h)); γ_h = exp(decay[h]). */
export function defaultDecay(heads: number): Float64Array {
  const d = new Float64Array(heads);
  for (let h = 0; h < heads; h++) d[h] = Math.log(1 - Math.pow(2, -5 - h));
  return d;
}

// ---------------------------------------------------------------- retention

export interface RetentionFlags { normalizeAttn: boolean; normalizeRetn: boolean }

/** c_n = Σ_{m≤n} γ^(n−m) = (1 − γ^(n+1)) / (1 − γ): the normalizeAttn row scale is 1/sqrt(c_n). */
export function decaySum(gamma: number, n: number): number {
  return gamma === 1 ? n + 1 : -Math.expm1((n + 1) * Math.log(gamma)) / (1 - gamma);
}

/** Divide row i (absolute position pos0 + i) of o[n, dv] and its row sum by
 *  sqrt(c) (normalizeAttn), then by max(1, |row sum|) (normalizeRetn). In place. */
export function normalizeRows(o: Vec, rowSum: Vec, n: number, dv: number, gamma: number, pos0: number, flags: RetentionFlags): void {
  for (let i = 0; i < n; i++) {
    let scale = 1;
    let r = rowSum[i];
    if (flags.normalizeAttn) {
      const inv = 1 / Math.sqrt(decaySum(gamma, pos0 + i));
      scale *= inv; r *= inv;
    }
    if (flags.normalizeRetn) scale /= Math.max(1, Math.abs(r));
    rowSum[i] = r;
    for (let j = 0; j < dv; j++) o[i * dv + j] *= scale;
  }
}

/** Parallel form: o = ((q kᵀ) ⊙ D̃) v, with the row normalisations. q,k [L,dk], v [L,dv] → o [L,dv]. */
export function retentionParallel(q: Vec, k: Vec, v: Vec, L: number, dk: number, dv: number, gamma: number, flags: RetentionFlags): Vec {
  const o = new Float64Array(L * dv);
  const rowSum = new Float64Array(L);
  for (let n = 0; n < L; n++) {
    for (let m = 0; m <= n; m++) {
      let s = 0;
      for (let t = 0; t < dk; t++) s += q[n * dk + t] * k[m * dk + t];
      s *= Math.pow(gamma, n - m);
      rowSum[n] += s;
      for (let j = 0; j < dv; j++) o[n * dv + j] += s * v[m * dv + j];
    }
  }
  normalizeRows(o, rowSum, L, dv, gamma, 0, flags);
  return o;
}

/** Chunk state carried between chunks: S [dk, dv], z [dk]. */
/** S: float64, or float32 (each update rounded on store) */
export interface RetentionState { S: Vec | Float32Array; z: Vec }

export function zeroState(dk: number, dv: number): RetentionState {
  return { S: new Float64Array(dk * dv), z: new Float64Array(dk) };
}

/** Intra-chunk: I[i,:] = Σ_{j≤i} (q_i·k_j) γ^(i−j) v_j and r_i = Σ_{j≤i} (q_i·k_j) γ^(i−j).
 *  q,k [n,dk], v [n,dv] → { o [n,dv], rowSum [n] }. */
export function intraChunk(q: Vec, k: Vec, v: Vec, n: number, dk: number, dv: number, gamma: number): { o: Vec; rowSum: Vec } {
  const o = new Float64Array(n * dv);
  const rowSum = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let t = 0; t < dk; t++) s += q[i * dk + t] * k[j * dk + t];
      s *= Math.pow(gamma, i - j);
      rowSum[i] += s;
      for (let c = 0; c < dv; c++) o[i * dv + c] += s * v[j * dv + c];
    }
  }
  return { o, rowSum };
}

/** Chunk summary: ΔS = kᵀ (v ⊙ ζ), Δz = Σ_j ζ_j k_j with ζ_j = γ^(n−1−j). */
export function chunkSummary(k: Vec, v: Vec, n: number, dk: number, dv: number, gamma: number): RetentionState {
  const S = new Float64Array(dk * dv);
  const z = new Float64Array(dk);
  for (let j = 0; j < n; j++) {
    const zeta = Math.pow(gamma, n - 1 - j);
    for (let a = 0; a < dk; a++) {
      const kz = k[j * dk + a] * zeta;
      z[a] += kz;
      for (let c = 0; c < dv; c++) S[a * dv + c] += kz * v[j * dv + c];
    }
  }
  return { S, z };
}

/** Carry: state ← γ^n · state + summary (in place on `state`). */
export function carryState(state: RetentionState, summary: RetentionState, n: number, gamma: number): void {
  const g = Math.pow(gamma, n);
  for (let i = 0; i < state.S.length; i++) state.S[i] = g * state.S[i] + summary.S[i];
  for (let i = 0; i < state.z.length; i++) state.z[i] = g * state.z[i] + summary.z[i];
}

/** Cross-chunk: o[i,:] += (q_i ξ_i) S and rowSum[i] += (q_i ξ_i)·z with ξ_i = γ^(i+1). In place. */
export function crossChunk(q: Vec, n: number, dk: number, dv: number, gamma: number, state: RetentionState, o: Vec, rowSum: Vec): void {
  for (let i = 0; i < n; i++) {
    const xi = Math.pow(gamma, i + 1);
    for (let a = 0; a < dk; a++) {
      const qa = q[i * dk + a] * xi;
      rowSum[i] += qa * state.z[a];
      for (let c = 0; c < dv; c++) o[i * dv + c] += qa * state.S[a * dv + c];
    }
  }
}

/** Chunkwise form with chunk size C (last chunk may be shorter). Starts from
 *  `state` (zero if omitted) at absolute position pos0, and leaves the final
 *  state in `state` when one is passed. */
export function retentionChunkwise(
  q: Vec, k: Vec, v: Vec, L: number, dk: number, dv: number, gamma: number, C: number,
  flags: RetentionFlags, state: RetentionState = zeroState(dk, dv), pos0 = 0,
): Vec {
  const o = new Float64Array(L * dv);
  for (let s = 0; s < L; s += C) {
    const n = Math.min(C, L - s);
    const qc = q.subarray(s * dk, (s + n) * dk);
    const kc = k.subarray(s * dk, (s + n) * dk);
    const vc = v.subarray(s * dv, (s + n) * dv);
    const inner = intraChunk(qc, kc, vc, n, dk, dv, gamma);
    crossChunk(qc, n, dk, dv, gamma, state, inner.o, inner.rowSum);
    normalizeRows(inner.o, inner.rowSum, n, dv, gamma, pos0 + s, flags);
    o.set(inner.o, s * dv);
    carryState(state, chunkSummary(kc, vc, n, dk, dv, gamma), n, gamma);
  }
  return o;
}

/** One recurrent step (chunk size 1): S ← γS + k_nᵀ v_n, z ← γz + k_n, o_n = q_n S, row sum q_n·z.
 *  Returns o [dv]; updates `state` in place. `pos` is the token's absolute position. */
export function retentionStep(q: Vec, k: Vec, v: Vec, dk: number, dv: number, gamma: number, state: RetentionState, pos: number, flags: RetentionFlags): Vec {
  const { S, z } = state;
  for (let a = 0; a < dk; a++) {
    z[a] = gamma * z[a] + k[a];
    for (let c = 0; c < dv; c++) S[a * dv + c] = gamma * S[a * dv + c] + k[a] * v[c];
  }
  const o = new Float64Array(dv);
  const rowSum = new Float64Array(1);
  for (let a = 0; a < dk; a++) {
    rowSum[0] += q[a] * z[a];
    for (let c = 0; c < dv; c++) o[c] += q[a] * S[a * dv + c];
  }
  normalizeRows(o, rowSum, 1, dv, gamma, pos, flags);
  return o;
}

/** Fully recurrent form: one step per token. */
export function retentionRecurrent(
  q: Vec, k: Vec, v: Vec, L: number, dk: number, dv: number, gamma: number, flags: RetentionFlags,
  state: RetentionState = zeroState(dk, dv), pos0 = 0,
): Vec {
  const o = new Float64Array(L * dv);
  for (let n = 0; n < L; n++) {
    const on = retentionStep(q.subarray(n * dk, (n + 1) * dk), k.subarray(n * dk, (n + 1) * dk), v.subarray(n * dv, (n + 1) * dv), dk, dv, gamma, state, pos0 + n, flags);
    o.set(on, n * dv);
  }
  return o;
}
