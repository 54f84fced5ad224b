// Shared test plumbing for the WASM kernel tests: one shared memory, both
// module variants instantiated over it, an arena, a seeded PRNG, and a
// comparison that names the index, the sizes, got and want.
import { createMemory, loadKernelsSync, type Kernels, type Variant } from '../../src/wasm/loader.js';
import { Arena } from './arena.js';

export const U = 2 ** -24; // unit roundoff of float32

export const memory = createMemory(1024);
export const arena = new Arena(memory);
export const VARIANTS: Variant[] = ['simd', 'relaxed'];
const cache = new Map<Variant, Kernels>();
export function kernels(v: Variant): Kernels {
  let k = cache.get(v);
  if (!k) { k = loadKernelsSync({ memory, variant: v }); cache.set(v, k); }
  return k;
}

/** mulberry32: a small seeded PRNG; uniform(lo, hi) values are rounded to float32 so JS and WASM see the same inputs. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    uniform: (n: number, lo = -1, hi = 1): Float64Array => {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.fround(lo + (hi - lo) * next());
      return out;
    },
  };
}

/** Copies data into a fresh float32 buffer in the arena; returns its byte offset. */
export function putF32(data: ArrayLike<number>): number {
  const { ptr, view } = arena.f32(Math.max(data.length, 1));
  for (let i = 0; i < data.length; i++) view[i] = data[i];
  return ptr;
}
export function putF64(data: ArrayLike<number>): number {
  const { ptr, view } = arena.f64(Math.max(data.length, 1));
  view.set(data);
  return ptr;
}
export function getF32(ptr: number, n: number): Float64Array {
  return Float64Array.from(new Float32Array(memory.buffer, ptr, n));
}
export function getF64(ptr: number, n: number): Float64Array {
  return Float64Array.from(new Float64Array(memory.buffer, ptr, n));
}

/** Dense [rows, cols] from a strided [rows, ld] buffer starting at column offset off. */
export function unstride(a: ArrayLike<number>, rows: number, cols: number, ld: number, off = 0): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = a[r * ld + off + c];
  return out;
}

/** Throws on the first element with |got − want| > tol(i) (or NaN), naming the index, sizes, got and want. */
export function expectClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number, sizes: string): void {
  if (got.length !== want.length) throw new Error(`${what} [${sizes}]: length ${got.length} != ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const t = tol(i);
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= t)) {
      throw new Error(`${what} [${sizes}] index ${i}: got ${got[i]}, want ${want[i]} (|err| ${err.toExponential(3)} > tol ${t.toExponential(3)})`);
    }
  }
}

/** Elementwise tolerance for single-rounding kernels: max(1e-5, 1e-6·|ref|). */
export const elementwiseTol = (want: ArrayLike<number>) => (i: number) => Math.max(1e-5, 1e-6 * Math.abs(want[i]));

export const ACT_NAMES = ['gelu', 'silu', 'relu', 'selu', 'sigmoid'] as const; // codes 1..5
