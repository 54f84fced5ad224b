// A minimal dense tensor: a typed array plus a row-major shape.
import { Rng } from './random.js';
import { errors, kindOf } from './errors.js';
import { checkKnownKeys } from './options.js';

/** Element type of a {@link Tensor}. */
export type DType = 'float32' | 'float64';
/** The typed arrays a {@link Tensor} holds. */
export type FloatArray = Float32Array | Float64Array;

/** A dense row-major tensor: a Float32Array or Float64Array and a shape. */
export class Tensor {
  /** the elements, row-major */
  readonly data: FloatArray;
  /** the shape (frozen) */
  readonly shape: readonly number[];

  constructor(data: FloatArray, shape: readonly number[]) {
    if (!(data instanceof Float32Array || data instanceof Float64Array)) {
      throw errors.input(`Tensor data must be a Float32Array or Float64Array (got ${kindOf(data)}); convert with Float32Array.from(values)`);
    }
    if (!Array.isArray(shape)) throw errors.input('Tensor shape must be an array of non-negative integers');
    const size = shape.reduce((a, b) => a * b, 1);
    if (!shape.every((s) => Number.isInteger(s) && s >= 0)) throw errors.input(`Tensor shape must be non-negative integers (got [${shape.join(', ')}])`);
    if (size !== data.length) throw errors.input(`Tensor data has ${data.length} elements but shape [${shape.join(', ')}] needs ${size}`);
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  /** 'float32' or 'float64', from the array type */
  get dtype(): DType { return this.data instanceof Float64Array ? 'float64' : 'float32'; }
  /** number of elements */
  get size(): number { return this.data.length; }
  /** number of dimensions */
  get rank(): number { return this.shape.length; }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
    if (!Array.isArray(shape) || !shape.every((s) => Number.isInteger(s) && s >= 0)) {
      throw errors.input(`Tensor shape must be an array of non-negative integers (got ${Array.isArray(shape) ? `[${shape.join(', ')}]` : String(shape)})`);
    }
    if (dtype !== 'float32' && dtype !== 'float64') throw errors.option('dtype', "'float32' or 'float64'", dtype);
    const n = shape.reduce((a, b) => a * b, 1);
    try {
      return new Tensor(dtype === 'float64' ? new Float64Array(n) : new Float32Array(n), shape);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw errors.memory(`a ${dtype} tensor of shape [${shape.join(', ')}] (${n} elements, ${(n * (dtype === 'float64' ? 8 : 4) / 2 ** 30).toFixed(1)} GiB) cannot be allocated: ${e.message}`);
    }
  }

  /** Standard normal entries from a seeded generator. */
  static randn(shape: readonly number[], opts: { seed?: number; dtype?: DType } = {}): Tensor {
    checkKnownKeys(opts, ['seed', 'dtype']); // a misspelt { sed } is not ignored
    const t = Tensor.zeros(shape, opts.dtype ?? 'float32');
    const rng = new Rng(opts.seed ?? 0);
    for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal();
    return t;
  }

  /** Integers uniform in [lo, hi), stored as floats (the seed's `torch.randint(..., dtype=float32)`). */
  static randint(lo: number, hi: number, shape: readonly number[], opts: { seed?: number; dtype?: DType } = {}): Tensor {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi <= lo) throw errors.input(`randint needs integers lo < hi (got lo ${lo}, hi ${hi})`);
    const t = Tensor.zeros(shape, opts.dtype ?? 'float32');
    const rng = new Rng(opts.seed ?? 0);
    for (let i = 0; i < t.data.length; i++) t.data[i] = rng.int(lo, hi);
    return t;
  }

  /** A float64 copy. */
  toFloat64(): Tensor { return new Tensor(Float64Array.from(this.data), this.shape); }
  /** A float32 copy (rounded). */
  toFloat32(): Tensor { return new Tensor(Float32Array.from(this.data), this.shape); }

  /** Rows [start, end) along axis `axis` of a copy: `axis` an integer in [0, rank), `start` and `end`
   *  integers with 0 ≤ start ≤ end ≤ shape[axis] (no negative indices); anything else is E_INPUT. */
  slice(axis: number, start: number, end: number): Tensor {
    // checked, because the copy below trusts them: an end past the axis reads the next row's
    // elements (or zeros past the data), a negative start writes before the output row, and an axis
    // past the rank multiplies the shape by undefined (before: silently wrong tensors, no error)
    const rank = this.shape.length;
    if (!Number.isInteger(axis) || axis < 0 || axis >= rank) {
      throw errors.input(`slice axis must be an integer in [0, ${rank}) for a tensor of shape [${this.shape.join(', ')}] (got ${String(axis)})`);
    }
    const dim = this.shape[axis]!;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > dim) {
      throw errors.input(`slice of axis ${axis} needs integers 0 ≤ start ≤ end ≤ ${dim} (got start ${String(start)}, end ${String(end)})`);
    }
    const shape = [...this.shape];
    const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const n = shape[axis];
    shape[axis] = end - start;
    const out = Tensor.zeros(shape, this.dtype);
    for (let o = 0; o < outer; o++) {
      out.data.set(this.data.subarray((o * n + start) * inner, (o * n + end) * inner), o * (end - start) * inner);
    }
    return out;
  }
}

// ---------------------------------------------------------------- comparisons
// Scale-free errors: every numeric comparison in the project uses one of these.

/** What the comparisons take: an array of numbers, a Tensor, or an object holding one in `data` (what
 *  readSafetensors gives per tensor). */
type Numeric = ArrayLike<number> | Tensor | { data: ArrayLike<number> };
const isArrayLike = (v: unknown): v is ArrayLike<number> =>
  // BigInt arrays hold no numbers to compare (before: a TypeError mid-comparison)
  !(v instanceof BigInt64Array || v instanceof BigUint64Array) &&
  ((ArrayBuffer.isView(v) && !(v instanceof DataView)) || Array.isArray(v) ||
  (typeof v === 'object' && v !== null && typeof (v as { length?: unknown }).length === 'number'));
const arr = (x: Numeric): ArrayLike<number> => {
  if (x instanceof Tensor) return x.data;
  if (isArrayLike(x)) return x;
  const d = (x as { data?: unknown } | null)?.data;
  if (isArrayLike(d)) return d;
  // before: an object without a numeric length compared as empty — "no difference" for anything
  throw errors.input(`cannot compare ${x === null ? 'null' : typeof x === 'object' ? 'an object without a numeric array in data' : typeof x}: give an array of numbers, a typed array, a Tensor or { data }`);
};

/** Two arrays to compare element by element: E_INPUT unless their lengths match. */
function arrPair(x: Numeric, y: Numeric): [ArrayLike<number>, ArrayLike<number>] {
  const a = arr(x), b = arr(y);
  if (a.length !== b.length) throw errors.input(`cannot compare arrays of ${a.length} and ${b.length} elements`);
  return [a, b];
}

/** max |x| over all elements (NaN if any element is NaN). */
export function maxAbs(x: Numeric): number {
  const a = arr(x); let m = 0;
  for (let i = 0; i < a.length; i++) { const v = Math.abs(a[i]); if (v > m || Number.isNaN(v)) m = v; }
  return m;
}

/** max |x − ref| over all elements. */
export function maxAbsDiff(x: Numeric, ref: Numeric): number {
  const [a, b] = arrPair(x, ref);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** max |x − ref| / max |ref|: the error relative to the reference's scale (max |x − ref| itself when
 *  ref is all zeros, so an exact match of zeros is 0, not NaN). */
export function relMaxError(x: Numeric, ref: Numeric): number {
  const s = maxAbs(ref);
  const d = maxAbsDiff(x, ref);
  return s === 0 ? d : d / s;
}

/** Normalised mean squared error Σ(x − ref)² / Σ ref² (Σ(x − ref)² when ref is all zeros). */
export function nmse(x: Numeric, ref: Numeric): number {
  const [a, b] = arrPair(x, ref);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; num += d * d; den += b[i] * b[i]; }
  return den === 0 ? num : num / den;
}

/** NumPy's (and torch's) allclose: |x − y| ≤ atol + rtol·|y| everywhere, where infinities are close
 *  only to an infinity of the same sign and a NaN is close to nothing. Arrays of different lengths are
 *  E_INPUT, as in the other comparisons. */
export function allclose(x: Numeric, y: Numeric, opts: { rtol?: number; atol?: number } = {}): boolean {
  checkKnownKeys(opts, ['rtol', 'atol']); // a misspelt { rtl } is not ignored
  const rtol = opts.rtol ?? 1e-5, atol = opts.atol ?? 1e-8;
  const [a, b] = arrPair(x, y); // a length mismatch: before, a silent false, which hid a shape bug in the caller
  for (let i = 0; i < a.length; i++) {
    const u = a[i], v = b[i];
    if (Number.isFinite(u) && Number.isFinite(v)) {
      if (!(Math.abs(u - v) <= atol + rtol * Math.abs(v))) return false;
    } else if (u !== v) {
      // NumPy's rule off the finite numbers: equal infinities are close (∞ − ∞ is NaN, so the formula
      // alone said no), a finite value is not close to an infinity (the formula's rtol·∞ said yes),
      // and NaN !== NaN
      return false;
    }
  }
  return true;
}
