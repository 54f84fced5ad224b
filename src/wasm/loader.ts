// Loads the AssemblyScript kernels (dist/wasm/retnet.{simd,relaxed}.wasm) over a
// shared WebAssembly.Memory created by JS. Usable in the main thread and in
// worker threads; workers should call loadKernelsSync once at start-up (or
// instantiateKernels with a WebAssembly.Module received by postMessage).
//
// Relaxed SIMD on Node 20 needs V8's --experimental-wasm-relaxed-simd before
// any module is compiled: importing this file sets it in the main thread
// (worker threads inherit it; a Worker's execArgv may not carry it).
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isMainThread } from 'node:worker_threads';
import v8 from 'node:v8';
import { envValue } from '../env.js';
import { errors } from '../errors.js';
import { adviseHugePages } from './huge-pages.js';

if (isMainThread) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

/** Bytes below this offset belong to the module (static data: none today); JS allocates above it. */
export const ARENA_BASE = 1 << 20;
/** The memory the module imports: {initial ≥ MIN_PAGES, maximum: MAX_PAGES, shared: true}. */
export const MIN_PAGES = ARENA_BASE >>> 16;
export const MAX_PAGES = 65536;

export type Variant = 'simd' | 'relaxed';
export type VariantRequest = Variant | 'auto';

/** Activation codes shared by GEMM's epilogue, f32_act, f32_gate. */
export const ACT = { none: 0, gelu: 1, silu: 2, relu: 3, selu: 4, sigmoid: 5 } as const;
export type ActCode = (typeof ACT)[keyof typeof ACT];

type Ptr = number; // byte offset into the shared memory (0 = null where a pointer is nullable)

/** The module's exports. Sizes and strides are in elements, pointers in bytes. */
export interface KernelExports {
  data_end(): number;
  is_relaxed(): number;
  exp64(x: number): number;
  erf64(x: number): number;
  act64(x: number, act: number): number;
  /** Bytes for W [N, K] packed into 8-column panels. */
  f32_gemm_packed_size(N: number, K: number): number;
  /** packed[p][k][j] = W[8p+j, k] (0 past N); W [N, K] with row stride ldw. */
  f32_gemm_pack_8(N: number, K: number, w: Ptr, ldw: number, packed: Ptr): void;
  /** Bytes of scratch f32_gemm_4x8__wasmsimd uses to pack x (per calling thread). */
  f32_gemm_scratch_size(): number;
  /** y[M,N] (=|+=) act(x[M,K] · Wᵀ + bias); bias 0 = none; accumulate 0|1; scratch 0 = read x in place (slower). */
  f32_gemm_4x8__wasmsimd(M: number, N: number, K: number, x: Ptr, ldx: number, packed: Ptr, bias: Ptr, y: Ptr, ldy: number, act: number, accumulate: number, scratch: Ptr): void;
  /** y[1, N] (=|+=) act(x · Wᵀ + bias) on BF16 8-column panels: bit for bit f32_gemm_4x8__wasmsimd (M = 1) on the widened panels. */
  f32_gemv_bf16__wasmsimd(N: number, K: number, x: Ptr, packed: Ptr, bias: Ptr, y: Ptr, act: number, accumulate: number): void;
  bf16_pack_8__wasmsimd(N: number, K: number, src: Ptr, dst: Ptr): void;
  bf16_pack_8__scalar(N: number, K: number, src: Ptr, dst: Ptr): void;
  f32_scale__wasmsimd(n: number, x: Ptr, s: number): void;
  f32_gemm__scalar(M: number, N: number, K: number, x: Ptr, ldx: number, packed: Ptr, bias: Ptr, y: Ptr, ldy: number, act: number, accumulate: number, scratch: Ptr): void;
  /** y[r,:] = LayerNorm(x[r,:]) · gamma + beta; y may equal x. */
  f32_layernorm__wasmsimd(rows: number, n: number, x: Ptr, ldx: number, gamma: Ptr, beta: Ptr, y: Ptr, ldy: number, eps: number): void;
  f32_layernorm__scalar(rows: number, n: number, x: Ptr, ldx: number, gamma: Ptr, beta: Ptr, y: Ptr, ldy: number, eps: number): void;
  f32_rmsnorm__wasmsimd(rows: number, n: number, x: Ptr, ldx: number, gamma: Ptr, y: Ptr, ldy: number, eps: number): void;
  f32_rmsnorm__scalar(rows: number, n: number, x: Ptr, ldx: number, gamma: Ptr, y: Ptr, ldy: number, eps: number): void;
  /** incoming[e] = f32(state[e]); state[e] = g·state[e] + delta[e] for e < n (state float64, delta and incoming float32). */
  f64_scan_step__wasmsimd(n: number, g: number, state: Ptr, delta: Ptr, incoming: Ptr): void;
  f64_scan_step__scalar(n: number, g: number, state: Ptr, delta: Ptr, incoming: Ptr): void;
  /** out[r] (float64) = log Σ_j exp(z[r, j]) over rows of n float32 values (row stride ldz). */
  f64_logsumexp__wasmsimd(rows: number, n: number, z: Ptr, ldz: number, out: Ptr): void;
  f64_logsumexp__scalar(rows: number, n: number, z: Ptr, ldz: number, out: Ptr): void;
  /** x = act(x) in place. */
  f32_act__wasmsimd(rows: number, cols: number, x: Ptr, ldx: number, act: number): void;
  f32_act__scalar(rows: number, cols: number, x: Ptr, ldx: number, act: number): void;
  /** The former f32_act__wasmsimd: transcendental activations on two f64x2 halves (benchmark comparator). */
  f32_act__f64x2(rows: number, cols: number, x: Ptr, ldx: number, act: number): void;
  /** o = act(g) ⊙ o. */
  f32_gate__wasmsimd(rows: number, cols: number, g: Ptr, ldg: number, o: Ptr, ldo: number, act: number): void;
  f32_gate__scalar(rows: number, cols: number, g: Ptr, ldg: number, o: Ptr, ldo: number, act: number): void;
  /** y += a. */
  f32_add__wasmsimd(rows: number, cols: number, a: Ptr, lda: number, y: Ptr, ldy: number): void;
  f32_add__scalar(rows: number, cols: number, a: Ptr, lda: number, y: Ptr, ldy: number): void;
  /** y[i,:] = s[i·sinc] · x[i,:] (sinc in floats, may be negative); y may equal x. */
  f32_scale_rows__wasmsimd(rows: number, cols: number, x: Ptr, ldx: number, s: Ptr, sinc: number, y: Ptr, ldy: number): void;
  f32_scale_rows__scalar(rows: number, cols: number, x: Ptr, ldx: number, s: Ptr, sinc: number, y: Ptr, ldy: number): void;
  /** a[i,:] ⊙= m[i·ldm + :] (ldm in floats, may be negative), then r[i] = Σ_c a[i,c]. */
  f32_mask_rowsum__wasmsimd(rows: number, cols: number, m: Ptr, ldm: number, a: Ptr, lda: number, r: Ptr): void;
  f32_mask_rowsum__scalar(rows: number, cols: number, m: Ptr, ldm: number, a: Ptr, lda: number, r: Ptr): void;
  /** x [rows, heads·dk] (row stride ldx) rotated in place; cos, sin [rows, dk/2] contiguous. */
  f32_rotary__wasmsimd(rows: number, heads: number, dk: number, x: Ptr, ldx: number, cos: Ptr, sin: Ptr): void;
  f32_rotary__scalar(rows: number, heads: number, dk: number, x: Ptr, ldx: number, cos: Ptr, sin: Ptr): void;
  /** Bytes of scratch the intra/summary/cross kernels need for chunks of up to n tokens (the SIMD ones; the scalar twins and the row kernel use less). */
  f32_retention_scratch_size(n: number, dk: number, dv: number): number;
  /** o [n,dv], r [n] overwritten with the intra-chunk retention; pow [n+1] = γ^d; scratch f32_retention_scratch_size(n, dk, dv) bytes. */
  f32_retention_intra__wasmsimd(n: number, dk: number, dv: number, q: Ptr, ldq: number, k: Ptr, ldk: number, v: Ptr, ldv: number, pow: Ptr, o: Ptr, ldo: number, r: Ptr, scratch: Ptr): void;
  f32_retention_intra__scalar(n: number, dk: number, dv: number, q: Ptr, ldq: number, k: Ptr, ldk: number, v: Ptr, ldv: number, pow: Ptr, o: Ptr, ldo: number, r: Ptr, scratch: Ptr): void;
  /** The former row-at-a-time SIMD intra kernel (dot per score, axpy per row), kept as the benchmark comparator. */
  f32_retention_intra_rows__wasmsimd(n: number, dk: number, dv: number, q: Ptr, ldq: number, k: Ptr, ldk: number, v: Ptr, ldv: number, pow: Ptr, o: Ptr, ldo: number, r: Ptr, scratch: Ptr): void;
  /** S [dk,dv] = Σ ζ_j k_jᵀ v_j, z [dk] = Σ ζ_j k_j (f32, overwritten), ζ_j = pow[n−1−j]; scratch as for intra. */
  f32_retention_summary__wasmsimd(n: number, dk: number, dv: number, k: Ptr, ldk: number, v: Ptr, ldv: number, pow: Ptr, S: Ptr, z: Ptr, scratch: Ptr): void;
  f32_retention_summary__scalar(n: number, dk: number, dv: number, k: Ptr, ldk: number, v: Ptr, ldv: number, pow: Ptr, S: Ptr, z: Ptr, scratch: Ptr): void;
  /** o[i,:] += (q_i ξ_i) S, r[i] += (q_i ξ_i)·z, ξ_i = pow[i+1]; S, z f32; scratch as for intra. */
  f32_retention_cross__wasmsimd(n: number, dk: number, dv: number, q: Ptr, ldq: number, pow: Ptr, S: Ptr, z: Ptr, o: Ptr, ldo: number, r: Ptr, scratch: Ptr): void;
  f32_retention_cross__scalar(n: number, dk: number, dv: number, q: Ptr, ldq: number, pow: Ptr, S: Ptr, z: Ptr, o: Ptr, ldo: number, r: Ptr, scratch: Ptr): void;
  /** Rows scaled by invSqrtC[i] (0 = off; r too), then by 1/max(1,|r_i|) when normRetn. */
  f32_retention_normalize__wasmsimd(n: number, dv: number, o: Ptr, ldo: number, r: Ptr, invSqrtC: Ptr, normRetn: number): void;
  f32_retention_normalize__scalar(n: number, dv: number, o: Ptr, ldo: number, r: Ptr, invSqrtC: Ptr, normRetn: number): void;
  /** One token: S [dk,dv] f64 and z [dk] f64 updated in place; o [dv] f32; r [1] f32 (nullable); invSqrtC [1] f32 (nullable). */
  /** acc: [dv] float64 scratch (one pass over S), or 0 (two passes); the same o either way */
  f32_retention_step__wasmsimd(dk: number, dv: number, q: Ptr, k: Ptr, v: Ptr, gamma: number, S: Ptr, z: Ptr, o: Ptr, r: Ptr, invSqrtC: Ptr, normRetn: number, acc: Ptr): void;
  f32_retention_step_s32__wasmsimd(dk: number, dv: number, q: Ptr, k: Ptr, v: Ptr, gamma: number, S: Ptr, z: Ptr, o: Ptr, r: Ptr, invSqrtC: Ptr, normRetn: number, acc: Ptr): void;
  f32_retention_step__scalar(dk: number, dv: number, q: Ptr, k: Ptr, v: Ptr, gamma: number, S: Ptr, z: Ptr, o: Ptr, r: Ptr, invSqrtC: Ptr, normRetn: number): void;
  /** dst [n] f32 = src [n] BF16 (u16) << 16: exact widening. */
  f32_widen_bf16__wasmsimd(n: number, src: Ptr, dst: Ptr): void;
  f32_widen_bf16__scalar(n: number, src: Ptr, dst: Ptr): void;
  /** dst [n] BF16 = top half of src [n] f32 (truncation); 1 if some value was not a BF16 value (inexact), else 0. */
  f32_narrow_bf16__wasmsimd(n: number, src: Ptr, dst: Ptr): number;
  f32_narrow_bf16__scalar(n: number, src: Ptr, dst: Ptr): number;
  /** dst [nb, K] f32 row-major = the first nb columns of BF16 8-column panels at src (exact). */
  f32_unpack_panels_bf16__wasmsimd(nb: number, K: number, src: Ptr, dst: Ptr): void;
  f32_unpack_panels_bf16__scalar(nb: number, K: number, src: Ptr, dst: Ptr): void;
}

export type Kernels = KernelExports & {
  /** The variant actually instantiated. */
  readonly variant: Variant;
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
};

export interface LoadOptions {
  memory: WebAssembly.Memory;
  variant?: VariantRequest;
}

// (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd)
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b,
]);
/** Same function with f32x4.add on the first two arguments: checks the probe itself is well formed. */
export const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfd, 0xe4, 0x01, 0x0b,
]);

/** Whether this engine validates relaxed-SIMD (with the flag set above). */
export function relaxedSimdSupported(): boolean {
  return WebAssembly.validate(RELAXED_PROBE);
}

/** Resolves 'auto' and RETNET_WASM_VARIANT: 'simd' forces the plain module. */
export function resolveVariant(req: VariantRequest = 'auto'): Variant {
  const env = envValue('RETNET_WASM_VARIANT');
  const known = ['auto', 'simd', 'relaxed'];
  if (env !== undefined && !known.includes(env)) throw errors.option('variant', "'auto', 'simd' or 'relaxed' (from the environment variable RETNET_WASM_VARIANT)", env);
  if (!known.includes(req)) throw errors.option('variant', "'auto', 'simd' or 'relaxed'", req);
  if (env === 'simd') return 'simd';
  if (req === 'simd') return 'simd';
  if (req === 'relaxed' || env === 'relaxed') {
    if (!relaxedSimdSupported()) throw new Error('relaxed SIMD is not supported by this engine (Node needs --experimental-wasm-relaxed-simd before any wasm is compiled)');
    return 'relaxed';
  }
  return relaxedSimdSupported() ? 'relaxed' : 'simd';
}

/** URL of the compiled module: dist/wasm/retnet.<variant>.wasm next to dist/src/wasm/loader.js. */
export function wasmUrl(variant: Variant): URL {
  return new URL(`../../wasm/retnet.${variant}.wasm`, import.meta.url);
}

function checkMemory(memory: WebAssembly.Memory): void {
  if (!(memory instanceof WebAssembly.Memory)) throw new TypeError('loadKernels: memory must be a WebAssembly.Memory');
  if (!(memory.buffer instanceof SharedArrayBuffer)) throw new TypeError('loadKernels: memory must be shared (new WebAssembly.Memory({ initial, maximum: 65536, shared: true }))');
  if (memory.buffer.byteLength < ARENA_BASE) throw new RangeError(`loadKernels: memory must have at least ${MIN_PAGES} pages`);
}

/** Synchronous instantiation from bytes or a compiled module (workers call this once). */
export function instantiateKernels(source: Uint8Array | ArrayBuffer | WebAssembly.Module, memory: WebAssembly.Memory, variant: Variant): Kernels {
  checkMemory(memory);
  const module = source instanceof WebAssembly.Module ? source : new WebAssembly.Module(source);
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return wrap(instance, module, memory, variant);
}

function wrap(instance: WebAssembly.Instance, module: WebAssembly.Module, memory: WebAssembly.Memory, variant: Variant): Kernels {
  const ex = instance.exports as unknown as KernelExports;
  const end = ex.data_end();
  if (end > ARENA_BASE) throw new Error(`retnet wasm: static data ends at ${end}, above ARENA_BASE ${ARENA_BASE}`);
  if (ex.is_relaxed() !== (variant === 'relaxed' ? 1 : 0)) throw new Error(`retnet wasm: module is not the ${variant} build`);
  return Object.freeze({ ...ex, variant, memory, module }) as Kernels;
}

/** Reads and instantiates the module synchronously (for worker start-up). */
export function loadKernelsSync(opts: LoadOptions): Kernels {
  const variant = resolveVariant(opts.variant);
  return instantiateKernels(readFileSync(wasmUrl(variant)), opts.memory, variant);
}

/** Loads the kernels: variant 'auto' (default) picks relaxed when the engine validates it. */
export async function loadKernels(opts: LoadOptions): Promise<Kernels> {
  const variant = resolveVariant(opts.variant);
  checkMemory(opts.memory);
  const module = await WebAssembly.compile(await readFile(wasmUrl(variant)));
  const instance = await WebAssembly.instantiate(module, { env: { memory: opts.memory } });
  return wrap(instance, module, opts.memory, variant);
}

/** A shared memory suitable for the kernels, on 2 MiB pages where the kernel allows (huge-pages.ts). */
export function createMemory(initialPages = 256): WebAssembly.Memory {
  const memory = new WebAssembly.Memory({ initial: Math.max(initialPages, MIN_PAGES), maximum: MAX_PAGES, shared: true });
  adviseHugePages(memory, MAX_PAGES * 65536);
  return memory;
}
