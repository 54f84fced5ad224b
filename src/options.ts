// Forward options: types, per-option documentation of which backend honours
// them, and validation with uniform error messages.
import { errors, RetNetError } from './errors.js';
import { envValue } from './env.js';

/** Where the arithmetic runs: 'wasm' (worker pool, default), 'js' (float64 reference), 'tfjs' (TensorFlow.js: GPU or CPU). */
export type BackendName = 'js' | 'wasm' | 'tfjs';
/** The wasm backend's kernel engine: 'blas' runs the big GEMMs on a native CBLAS library
 *  (OpenBLAS by default; RETNET_BLAS=/path picks another), 'wasm' everything on the WASM kernels,
 *  'dnnl' the GEMMs on oneDNN (RETNET_DNNL=/path picks the library) with the precision's operands:
 *  bfloat16, or float32 at 'f32' (its own float32 summation order: results differ from 'blas' in the
 *  last bits, like 'blas' from 'wasm'), 'auto' BLAS when a library loads, else WASM — and at precision
 *  'bf16', oneDNN first where the CPU has bfloat16 dot products (AVX512-BF16 or AMX). ('js', the scalar twin, is a debugging value
 *  of RETNET_KERNELS.) */
export type KernelsName = 'auto' | 'wasm' | 'blas' | 'dnnl';
export type KernelsRequest = KernelsName | 'js';
export const KERNELS: readonly KernelsName[] = ['auto', 'wasm', 'blas', 'dnnl'];
/** Operand precision of the big matrix products (wasm backend): 'f32' (default, exact as always) or
 *  'bf16' — bfloat16 operands (activations rounded to nearest even on the way in, weights as stored
 *  when BF16, else rounded), float32 accumulation. Norms, rotary, retention and the cross-chunk state
 *  are float32/float64 at either precision. */
export type Precision = 'f32' | 'bf16';

/** dtype of a carried retention state: the chunkwise scan's (ForwardOptions.stateDtype) or a recurrent state's S. */
export type StateDtype = 'float64' | 'float32';
export const PRECISIONS: readonly Precision[] = ['f32', 'bf16'];
export const BACKENDS: readonly BackendName[] = ['js', 'wasm', 'tfjs'];

/** Options of a forward call; each says which backends honour it. */
export interface ForwardOptions {
  /** Only causal retention exists; accepted for the seed's vocabulary. All backends. */
  attnMask?: 'causal';
  /** null/undefined → parallel form; k > 0 → chunks of ceil(L/k) tokens (k > L is clamped to L);
   *  −1 → fully recurrent. All backends. */
  numChunks?: number | null;
  /** Chunk length in tokens, instead of numChunks. All backends. */
  chunkSize?: number;
  /** The paper's normalisation #2: D̃[n,m] = D[n,m]/sqrt(Σ_m D[n,m]). All backends. */
  normalizeAttn?: boolean;
  /** The seed's #3: divide each retention row by max(1, |row sum|). All backends. */
  normalizeRetn?: boolean;
  /** Where the arithmetic runs. */
  backend?: BackendName;
  /** Worker threads for the chunk-parallel runtime (wasm), default: cores. Each `kernels` and `precision`
   *  pair has its own pool: the value resizes the pool this call runs on, which keeps that size for later
   *  calls; another pair's pool is sized by its own first call. */
  workers?: number;
  /** Kernel engine of the chunk workers (wasm backend): 'auto' (default, or RETNET_KERNELS),
   *  'wasm', 'blas' (E_ENGINE when no CBLAS library loads) or 'dnnl' (oneDNN's matmul; E_ENGINE when
   *  libdnnl does not load). See {@link KernelsName}. */
  kernels?: KernelsName;
  /** Operand precision of the big matrix products: 'f32' (default, or RETNET_PRECISION) or 'bf16'
   *  (see Precision). wasm only: 'bf16' on js (float64) or tfjs is an E_OPTION error. */
  precision?: Precision;
  /** Precision of the cross-chunk state scan (wasm, tfjs). js is float64 throughout. */
  stateDtype?: StateDtype;
  /** Tokens per window of the streaming runtime (wasm); bounds memory, never changes results. */
  windowRows?: number;
  /** Cancels a forward. All backends. */
  signal?: AbortSignal;
}

export type Form = 'parallel' | 'chunkwise' | 'recurrent';

export interface ChunkPlan { form: Form; chunkSize: number }

export interface ResolvedOptions {
  plan: (L: number) => ChunkPlan;
  normalizeAttn: boolean;
  normalizeRetn: boolean;
  backend: BackendName;
  workers: number | undefined;
  kernels: KernelsRequest;
  precision: Precision;
  windowRows: number | undefined;
  stateDtype: StateDtype;
  signal: AbortSignal | undefined;
}

/** Most worker threads one pool may have: each costs a thread and its own
 *  heap (~5 MB), and more threads than chunks or cores only add overhead. */
export const MAX_WORKERS = 256;

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Every option a forward (and the calls built on it) reads; onProgress is the streaming forwards'. */
export const OPTION_KEYS: readonly string[] = ['attnMask', 'numChunks', 'chunkSize', 'normalizeAttn', 'normalizeRetn', 'backend', 'workers',
  'kernels', 'precision', 'stateDtype', 'windowRows', 'signal', 'onProgress'];

/** E_OPTION for the first key of `opts` (with a value other than undefined) that is not one of `known`,
 *  naming the nearest known one: a misspelt option is an error, never ignored. `opts` itself must be an
 *  object: a default parameter (`options = {}`) replaces undefined but not null, and Object.entries(null)
 *  would be a bare TypeError with no code (before: `lm.score(text, null)` and the like). */
export function checkKnownKeys(opts: unknown, known: readonly string[], what: 'options' | 'config' = 'options'): void {
  if (opts === null || typeof opts !== 'object') {
    throw new RetNetError('E_OPTION', `${what} must be an object or left out (got ${opts === null ? 'null' : typeof opts})`);
  }
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || known.includes(k)) continue;
    const near = nearestOption(k, known);
    const kind = what === 'config' ? 'a config key' : 'an option';
    throw new RetNetError('E_OPTION',
      `${what}.${k} is not ${kind}${near ? ` (did you mean ${near}?)` : ''}; the ${what === 'config' ? 'keys' : 'options'} are ${known.join(', ')}`);
  }
}

/** Edits (insertions, deletions, substitutions) between two strings: Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** A known option name close to `k` (a typo, another spelling, a shorter name), for the error. */
function nearestOption(k: string, known: readonly string[]): string | undefined {
  const low = k.toLowerCase().replace(/[_-]/g, '');
  return known.find((o) => o.toLowerCase() === low)
    ?? known.find((o) => editDistance(o.toLowerCase(), low) <= 2)
    ?? known.find((o) => low.length >= 4 && o.toLowerCase().includes(low));
}

export function resolveOptions(opts: ForwardOptions = {}, defaults: { backend: BackendName }): ResolvedOptions {
  if (opts === null || typeof opts !== 'object') throw new RetNetError('E_OPTION', `options must be an object, e.g. { numChunks: 8 } (got ${opts === null ? 'null' : typeof opts})`);
  // an unknown key is an error, not ignored: { chunks: 8 } would otherwise run the parallel form
  checkKnownKeys(opts, OPTION_KEYS);
  if (opts.attnMask !== undefined && opts.attnMask !== 'causal') throw errors.option('attnMask', "'causal' (retention is causal by construction)", opts.attnMask);
  const onProgress = (opts as { onProgress?: unknown }).onProgress; // (the streaming forwards' option)
  if (onProgress !== undefined && typeof onProgress !== 'function') throw errors.option('onProgress', 'a function', onProgress);
  const { numChunks, chunkSize } = opts;
  if (numChunks !== undefined && numChunks !== null && !(isPosInt(numChunks) || numChunks === -1)) {
    throw errors.option('numChunks', 'a positive integer, -1 or null', numChunks);
  }
  if (chunkSize !== undefined && !isPosInt(chunkSize)) throw errors.option('chunkSize', 'a positive integer', chunkSize);
  if (chunkSize !== undefined && numChunks !== undefined && numChunks !== null) {
    throw errors.option('chunkSize', 'omitted when numChunks is given (give one of the two)', chunkSize);
  }
  for (const k of ['normalizeAttn', 'normalizeRetn'] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean') throw errors.option(k, 'a boolean', opts[k]);
  }
  const backend = opts.backend ?? defaults.backend;
  if (!BACKENDS.includes(backend)) throw errors.option('backend', `one of ${BACKENDS.map((b) => `'${b}'`).join(', ')}`, backend);
  if (opts.workers !== undefined && !(isPosInt(opts.workers) && opts.workers <= MAX_WORKERS)) throw errors.option('workers', `a positive integer ≤ ${MAX_WORKERS}`, opts.workers);
  if (opts.kernels !== undefined && !KERNELS.includes(opts.kernels)) throw errors.option('kernels', "'auto', 'wasm', 'blas' or 'dnnl'", opts.kernels);
  // RETNET_KERNELS, as RETNET_PRECISION, only where kernels run: a bad value must not break the js and tfjs
  // backends (before: forward({ backend: 'js' }) and retention() failed on it)
  const kernels = opts.kernels ?? (backend === 'wasm' ? kernelsFromEnv() : 'auto');
  if (opts.precision !== undefined && !PRECISIONS.includes(opts.precision)) throw errors.option('precision', "'f32' or 'bf16'", opts.precision);
  // RETNET_PRECISION reaches the wasm backend only (as the step's, stepPrecision): the js and tfjs
  // backends run f32/float64, and a drift study's float64 reference must not pick it up
  const precision = opts.precision ?? (backend === 'wasm' ? precisionFromEnv() : 'f32');
  if (precision === 'bf16' && backend !== 'wasm') {
    throw errors.option('precision', `'f32' on the ${backend} backend (bfloat16 products run on the wasm backend only${backend === 'js' ? '; js is the float64 reference' : ''})`, precision);
  }
  if (opts.windowRows !== undefined && !isPosInt(opts.windowRows)) throw errors.option('windowRows', 'a positive integer', opts.windowRows);
  const stateDtype = opts.stateDtype ?? 'float64';
  if (stateDtype !== 'float64' && stateDtype !== 'float32') throw errors.option('stateDtype', "'float64' or 'float32'", stateDtype);
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw errors.option('signal', 'an AbortSignal', opts.signal);

  // The form is what the caller asked for: chunkSize 1 or L still runs the
  // chunkwise code (a useful check of its edge cases), -1 the recurrent one.
  const plan = (L: number): ChunkPlan => {
    if (chunkSize !== undefined) return { form: 'chunkwise', chunkSize: Math.min(chunkSize, L) };
    if (numChunks === undefined || numChunks === null) return { form: 'parallel', chunkSize: L };
    if (numChunks === -1) return { form: 'recurrent', chunkSize: 1 };
    return { form: 'chunkwise', chunkSize: chunkedAs(L, numChunks).chunkSize };
  };
  return {
    plan, normalizeAttn: opts.normalizeAttn ?? false, normalizeRetn: opts.normalizeRetn ?? false,
    backend, workers: opts.workers, kernels, precision, windowRows: opts.windowRows, stateDtype, signal: opts.signal,
  };
}

/** What `numChunks: k` (k > 0) runs on L tokens: chunks of ceil(L/k) tokens, so ceil(L / that) chunks,
 *  which is fewer than k when k does not divide L well (L = 100, k = 64: 50 chunks of 2) or k > L. */
export function chunkedAs(L: number, k: number): { chunkSize: number; chunks: number } {
  const chunkSize = Math.ceil(L / Math.min(k, L));
  return { chunkSize, chunks: Math.ceil(L / chunkSize) };
}

/** RETNET_KERNELS: 'auto' | 'wasm' | 'blas' | 'dnnl' | 'js' (the scalar twin, debugging); unset → 'auto'. */
export function kernelsFromEnv(): KernelsRequest {
  const v = envValue('RETNET_KERNELS');
  if (v === undefined) return 'auto';
  if (v === 'auto' || v === 'wasm' || v === 'blas' || v === 'dnnl' || v === 'js') return v;
  throw errors.option('kernels', "'auto', 'wasm', 'blas' or 'dnnl' (from the environment variable RETNET_KERNELS)", v);
}

/** RETNET_PRECISION: 'f32' | 'bf16'; unset → 'f32'. */
export function precisionFromEnv(): Precision {
  const v = envValue('RETNET_PRECISION');
  if (v === undefined) return 'f32';
  if (v === 'f32' || v === 'bf16') return v;
  throw errors.option('precision', "'f32' or 'bf16' (from the environment variable RETNET_PRECISION)", v);
}

/** The recurrent step's precision: the one asked for, else RETNET_PRECISION on the wasm step (the js
 *  step is the float64 reference: the variable does not reach it); 'bf16' on js is E_OPTION. */
export function stepPrecision(backend: 'js' | 'wasm', asked: Precision | undefined): Precision {
  if (asked !== undefined && !PRECISIONS.includes(asked)) throw errors.option('precision', "'f32' or 'bf16'", asked);
  const p = asked ?? (backend === 'wasm' ? precisionFromEnv() : 'f32');
  if (p === 'bf16' && backend !== 'wasm') throw errors.option('precision', "'f32' on the js step (float64 throughout; bfloat16 products run on the wasm step)", p);
  return p;
}

/** Throw the abort reason as a RetNetError if the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw errors.aborted(signal.reason);
}
