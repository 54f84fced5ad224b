// Per-phase profile of the chunkwise engine (`retnet bench --profile`).
//
// Off unless RETNET_PROFILE=1 when the worker pool starts: then the pool gets
// a SharedArrayBuffer of counters in its workerData, each chunk worker wraps its
// RuntimeKernels object in a timing wrapper (any engine: WASM, the JS twin, or
// another library behind the same contract) that adds into its own slot, and
// the coordinator times its scan. When off nothing is wrapped and the hooks
// cost one boolean test per layer. (Piscina workers block in Atomics.wait
// between tasks, so counters in shared memory rather than messages.)
import { envValue } from '../env.js';
import { RetNetError } from '../errors.js';
import type { RuntimeKernels } from './kernels.js';

/** Buckets a kernel call is charged to. */
export const PHASES = ['gemm', 'gemm+act', 'intra', 'state', 'activations', 'norms', 'rotary', 'recurrent', 'scan'] as const;
export type Phase = (typeof PHASES)[number];
export type PhaseTimes = Record<Phase, number>; // milliseconds

export const profiling = (): boolean => {
  const v = envValue('RETNET_PROFILE');
  if (v === undefined || v === '0') return false;
  if (v === '1') return true;
  // (before: any value but '1' was off without a word)
  throw new RetNetError('E_OPTION', `the environment variable RETNET_PROFILE must be 0 (off, the default) or 1 (on) (got ${JSON.stringify(v)})`);
};

const zero = (): PhaseTimes => Object.fromEntries(PHASES.map((p) => [p, 0])) as PhaseTimes;

// Counter buffer: Int32 slot allocator at byte 0; slot s (one per worker thread) is
// SLOT float64s at float64 index (s + 1)·SLOT: the phases in PHASES order, the call count, then the
// FLOPs of the phases in RATED order (multiply-add = 2; intra: its causal terms only, as bench/flops.ts).
const SLOT = 16, MAX_SLOTS = 64;
/** Phases whose FLOPs are counted, so that their rate inside the engine can be stated. */
export const RATED = ['gemm', 'gemm+act', 'intra'] as const;
export type RatedPhase = (typeof RATED)[number];
const FLOPS = PHASES.length + 1; // slot index of RATED[0]'s FLOPs
let buffer: SharedArrayBuffer | undefined;

/** The process's counter buffer when profiling (created on first use), else undefined: goes into workerData. */
export function profileBuffer(): SharedArrayBuffer | undefined {
  if (!profiling()) return undefined;
  buffer ??= new SharedArrayBuffer((MAX_SLOTS + 1) * SLOT * 8);
  return buffer;
}

/** Which bucket each contract entry goes to (gemm splits on its activation argument). */
const BUCKET: Partial<Record<keyof RuntimeKernels, Phase>> = {
  intra: 'intra', summary: 'state', cross: 'state', normalize: 'norms', layerNorm: 'norms', rmsNorm: 'norms',
  rotary: 'rotary', gate: 'activations', step: 'recurrent',
};

/** K itself when buf is undefined (profiling off); else a wrapper timing every call into this thread's slot. */
export function maybeProfiled(K: RuntimeKernels, buf: SharedArrayBuffer | undefined): RuntimeKernels {
  if (!buf) return K;
  const s = Atomics.add(new Int32Array(buf, 0, 1), 0, 1);
  if (s >= MAX_SLOTS) return K;
  const t = new Float64Array(buf, (s + 1) * SLOT * 8, SLOT);
  const CALLS = PHASES.length;
  const W: Record<string, unknown> = { ...K, name: K.name };
  for (const [key, phase] of Object.entries(BUCKET) as [keyof RuntimeKernels, Phase][]) {
    const f = (K[key] as (...a: number[]) => void).bind(K);
    const i = PHASES.indexOf(phase);
    W[key] = (...a: number[]) => { const t0 = performance.now(); f(...a); t[i] += performance.now() - t0; t[CALLS]++; };
  }
  // intra(q, k, v, n, dk, dv, …): row i of the chunk has i + 1 terms of q·k (dk) and of A·v (dv)
  const intra = W.intra as (...a: number[]) => void, iF = FLOPS + RATED.indexOf('intra');
  W.intra = (...a: number[]) => { intra(...a); t[iF] += a[3] * (a[3] + 1) * (a[4] + a[5]); };
  const gemm = K.gemm.bind(K);
  const iG = PHASES.indexOf('gemm'), iGA = PHASES.indexOf('gemm+act');
  // gemm(x, M, K, ldx, w, N, b, y, ldy, act, …): 2·M·N·K
  const fG = FLOPS + RATED.indexOf('gemm'), fGA = FLOPS + RATED.indexOf('gemm+act');
  W.gemm = (...a: Parameters<RuntimeKernels['gemm']>) => {
    const t0 = performance.now();
    gemm(...a);
    t[a[9] ? iGA : iG] += performance.now() - t0; t[CALLS]++;
    t[a[9] ? fGA : fG] += 2 * a[1] * a[5] * a[2];
  };
  const gemmBf16 = K.gemmBf16.bind(K); // BF16 weights: the widening counts as GEMM time
  W.gemmBf16 = (...a: Parameters<RuntimeKernels['gemmBf16']>) => {
    const t0 = performance.now();
    gemmBf16(...a);
    t[a[9] ? iGA : iG] += performance.now() - t0; t[CALLS]++;
    t[a[9] ? fGA : fG] += 2 * a[1] * a[5] * a[2];
  };
  return W as unknown as RuntimeKernels;
}

// ------------------------------------------------------------ coordinator side
const main = zero();

/** Start time for a coordinator section, or 0 when off. */
export const sectionStart = (): number => (profiling() ? performance.now() : 0);
/** Charge the coordinator section started at t0 (no-op when t0 is 0). */
export function sectionEnd(phase: Phase, t0: number): void { if (t0) main[phase] += performance.now() - t0; }

/** Zero the coordinator's and every worker's totals (call while no forward runs). */
export function resetProfile(): void {
  Object.assign(main, zero());
  if (buffer) new Float64Array(buffer, SLOT * 8).fill(0);
}

export interface ProfileReport {
  /** per worker thread: milliseconds per phase inside kernel calls, and the FLOPs of the rated phases */
  workers: { slot: number; times: PhaseTimes; calls: number; flops: Record<RatedPhase, number> }[];
  /** the coordinator (main thread): the scan */
  coordinator: PhaseTimes;
}

/** Every worker slot's totals since the last reset (slots that ran nothing are left out). */
export function collectProfile(): ProfileReport {
  const workers: ProfileReport['workers'] = [];
  if (buffer) {
    const used = Math.min(MAX_SLOTS, Atomics.load(new Int32Array(buffer, 0, 1), 0));
    for (let s = 0; s < used; s++) {
      const t = new Float64Array(buffer, (s + 1) * SLOT * 8, SLOT);
      const calls = t[PHASES.length];
      if (calls > 0) {
        workers.push({ slot: s, times: Object.fromEntries(PHASES.map((p, i) => [p, t[i]])) as PhaseTimes, calls,
          flops: Object.fromEntries(RATED.map((p, i) => [p, t[FLOPS + i]])) as Record<RatedPhase, number> });
      }
    }
  }
  return { workers, coordinator: { ...main } };
}

/**
 * Split `workers × wallMs` worker-milliseconds into phases: the kernel time of
 * each phase summed over workers, the scan (workers wait on it, so charged
 * × workers), and the rest as dispatch/idle (task messages, tables, waiting
 * at the phase barriers, JS between kernel calls).
 */
export function splitPhases(rep: ProfileReport, wallMs: number, workers: number): Record<Phase | 'dispatch/idle', number> {
  const out = zero() as Record<Phase | 'dispatch/idle', number>;
  for (const w of rep.workers) for (const p of PHASES) out[p] += w.times[p];
  out.scan = rep.coordinator.scan * workers;
  let used = 0;
  for (const p of PHASES) used += out[p];
  out['dispatch/idle'] = Math.max(0, workers * wallMs - used);
  return out;
}

/** GFLOP/s of each rated phase while a worker thread is in it (its FLOPs over its time, summed over
 *  workers): what one thread's products and intra-chunk tiles reach inside the engine, to set beside
 *  a library's single-thread rate measured alone. NaN where the phase did not run. */
export function phaseRates(rep: ProfileReport): Record<RatedPhase, number> {
  const out = {} as Record<RatedPhase, number>;
  for (const p of RATED) {
    let f = 0, ms = 0;
    for (const w of rep.workers) { f += w.flops[p]; ms += w.times[p]; }
    out[p] = ms > 0 ? f / ms / 1e6 : NaN;
  }
  return out;
}
