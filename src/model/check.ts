// Weight values are checked once, when a model is built from them: every value
// finite and inside float32's range (the wasm and tfjs backends compute in
// float32, where a float64 value beyond ±3.4028235e38 becomes ±Infinity), and
// every decay giving a retention factor γ = exp(decay) strictly inside (0, 1)
// (γ ≥ 1 makes the state grow without bound; γ ≤ 0 is not a decay). A bad
// value is an E_WEIGHTS error naming the tensor and the first bad index.
// Cost: one pass over the weights (README, "Errors", gives the seed model's time).
import { errors } from '../errors.js';

/** Largest finite float32. */
export const F32_MAX = 3.4028234663852886e38;

/** Index of the first value that is NaN, ±Infinity or beyond float32's range; −1 if none. */
export function firstBadValue(a: ArrayLike<number>): number {
  // One monomorphic loop per array type keeps the pass at memory speed.
  if (a instanceof Float32Array) return firstBad32(a);
  if (a instanceof Float64Array) return firstBad64(a);
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]) <= F32_MAX)) return i;
  return -1;
}

function firstBad32(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]) <= F32_MAX)) return i;
  return -1;
}

function firstBad64(a: Float64Array): number {
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]) <= F32_MAX)) return i;
  return -1;
}

/** Flat index → `[i, j, …]` for a row-major shape. */
export function indexOf(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) { idx[a] = flat % shape[a]; flat = Math.floor(flat / shape[a]); }
  return idx;
}

/** `v` at `at` described for a message: "a non-finite value NaN at [2, 5]" or
 *  "the value 1e+39 at [2, 5], beyond float32's range (±3.4028235e38) <where>". */
export function describeBad(v: number, at: string, where: string): string {
  return Number.isFinite(v) ? `the value ${v} at ${at}, beyond float32's range (±3.4028235e38) ${where}` : `a non-finite value ${v} at ${at}`;
}

/** Throw E_WEIGHTS if `data` (shape `shape`) holds a bad value; `extra` adds context for an index. */
export function checkWeightValues(label: string, name: string, data: ArrayLike<number>, shape: readonly number[], extra?: (idx: number[]) => string): void {
  const i = firstBadValue(data);
  if (i < 0) return;
  throwBadWeight(label, name, data[i]!, i, shape, extra);
}

/** E_WEIGHTS for the bad value `v` at flat index `i` of a weight of `shape` (checkWeightValues' message,
 *  for callers that found the value themselves, e.g. in BF16 bits). */
export function throwBadWeight(label: string, name: string, v: number, i: number, shape: readonly number[], extra?: (idx: number[]) => string): never {
  const idx = indexOf(i, shape);
  throw errors.weights(`${label}: weight ${name} has ${describeBad(v, `[${idx.join(', ')}]`, 'in which the wasm and tfjs backends compute')}${extra ? ` (${extra(idx)})` : ''}`);
}

/** Throw E_WEIGHTS unless every γ_h = exp(decay[h]) is in (0, 1). */
export function checkDecay(label: string, name: string, decay: ArrayLike<number>): void {
  for (let h = 0; h < decay.length; h++) {
    const g = Math.exp(decay[h]);
    if (!(g > 0 && g < 1)) {
      throw errors.weights(`${label}: weight ${name} has ${decay[h]} at [${h}], which gives the retention factor γ = exp(decay) = ${g}; ` +
        'retention needs 0 < γ < 1 (a decay below 0 and above about −745)');
    }
  }
}

/** Weights already checked (built by this package, or checked at load): not checked again. */
const checked = new WeakSet<object>();
export const markChecked = <T extends object>(o: T): T => { checked.add(o); return o; };
export const isChecked = (o: object): boolean => checked.has(o);

// ---------------------------------------------------------------- overflow bound
//
// Finite weights can still overflow float32 arithmetic (one weight of 4.9e36
// in an MLP gives Infinity, then NaN scores). The rule, checked for every
// layer (the first one included) when a model is built: the worst-case
// magnitude of each linear layer's output must stay within float32's range,
//   fanIn · B_in · max|W| + max|b| ≤ 3.4028235e38,
// where B_in bounds the layer's input. The inputs of q, k, v, g and the MLP's
// first matrix are LayerNorm outputs, |x_i| ≤ sqrt(d) · max|γ| + max|β| (a
// normalized element is at most sqrt(d − 1) in size); each later MLP matrix
// takes the previous one's bound (the gate activations gelu, silu/swish and
// relu never grow a value: |act(y)| ≤ |y|). The retention output projection
// is not bounded this way (its input comes from the GroupNorm'd retention).

const maxAbs = (a: ArrayLike<number>): { v: number; i: number } => {
  let v = 0, at = -1;
  for (let i = 0; i < a.length; i++) { const m = Math.abs(a[i]); if (m > v) { v = m; at = i; } }
  return { v, i: at };
};

export interface BoundLinear { name: string; W: ArrayLike<number>; b: ArrayLike<number> | null; inDim: number; outDim: number }

/** E_WEIGHTS when a linear layer fed by an input bounded by `bIn` can produce a value beyond float32's range; returns its output bound. */
export function boundLinear(label: string, L: BoundLinear, bIn: number): number {
  const w = maxAbs(L.W), b = L.b ? maxAbs(L.b).v : 0;
  const out = L.inDim * bIn * w.v + b;
  if (!(out <= F32_MAX)) {
    const idx = indexOf(w.i, [L.outDim, L.inDim]);
    throw errors.weights(`${label}: weight ${L.name} has the value ${Number(L.W[w.i].toPrecision(7))} at [${idx.join(', ')}], which can overflow float32 arithmetic: ` +
      `on a worst-case input (|x| ≤ ${bIn.toPrecision(3)}) the layer's output reaches ${out.toPrecision(3)}, beyond float32's range (±3.4028235e38) ` +
      'in which the wasm and tfjs backends compute (rule: fan-in · max|input| · max|weight| + max|bias| ≤ 3.4e38)');
  }
  return out;
}

/** Bound of a LayerNorm's output over `d` features. */
export const layerNormBound = (d: number, gain: ArrayLike<number>, bias: ArrayLike<number>): number => Math.sqrt(d) * maxAbs(gain).v + maxAbs(bias).v;

/** The overflow rule above for one layer: `msr` (q, k, v, g after the pre-norm) and `mlp` (its linears in order after its norm). */
export function checkOverflowBound(label: string, d: number, msrNormBound: number, msr: BoundLinear[], mlpNormBound: number, mlp: BoundLinear[]): void {
  for (const L of msr) boundLinear(label, L, msrNormBound);
  let b = mlpNormBound;
  for (const L of mlp) b = boundLinear(label, L, b);
  void d;
}
