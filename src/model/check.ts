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
  const idx = indexOf(i, shape);
  throw errors.weights(`${label}: weight ${name} has ${describeBad(data[i], `[${idx.join(', ')}]`, 'in which the wasm and tfjs backends compute')}${extra ? ` (${extra(idx)})` : ''}`);
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
