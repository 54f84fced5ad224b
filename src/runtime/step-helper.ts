// Helper threads of the recurrent step (WasmStepper). Decoding one token reads every weight once
// and every float64 state once, so one thread cannot reach the machine's memory bandwidth; the
// stepper splits its retention heads (and, on the WASM engine, the columns of its one-row products)
// between its own thread and these helpers, which run the same WASM kernels on the same shared
// memory. Each share writes disjoint outputs, and a column's or a head's arithmetic does not depend
// on the split, so the results are the same bit for bit as on one thread.
//
// Protocol (one helper): the stepper writes the calls (CALL_WIDTH float64 each: an op code, then the
// kernel's arguments) into `calls`, their number into ctrl[count], and bumps ctrl[seq]; the helper,
// waiting on ctrl[seq], runs them and stores seq into ctrl[done]. seq < 0 ends the helper. The
// stepper waits on ctrl[done] (Atomics.wait; Node allows it on the main thread).
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errors } from '../errors.js';
import type { RuntimeKernels } from './kernels.js';

/** most threads a step or the LM head uses (one-row products stop gaining once memory bandwidth is reached) */
export const MAX_STEP_THREADS = 8;

export const CTRL = { seq: 0, done: 1, ready: 2, count: 3, failed: 4 } as const;
const CTRL_INTS = 8;
/** op code + up to 13 arguments */
export const CALL_WIDTH = 14;
/** how long a waiting side (the stepper for an answer, a helper for its next calls) polls before it sleeps:
 *  a step posts a product every few hundred microseconds, and waking a sleeping thread costs tens of them */
export const SPIN_MS = 0.5;
/** calls per round (more are posted in further rounds) */
const CAPACITY = 512;

/** Kernel calls a helper can run. */
export const OP = { step: 0, gemm: 1, gemmBf16: 2, stepS32: 3 } as const;
export type Call = [op: number, ...args: number[]];

/** Runs one call (an op code, then the kernel's arguments) on `K`. */
export function runCall(K: RuntimeKernels, a: ArrayLike<number>): void {
  switch (a[0]) {
    case OP.step: K.step(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12] !== 0, a[13]); break;
    case OP.gemm: K.gemm(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11] !== 0, a[12]); break;
    case OP.stepS32: K.stepS32!(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12] !== 0, a[13]); break;
    case OP.gemmBf16: K.gemmBf16(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11] !== 0, a[12], a[13]); break;
    default: throw new Error(`step helper: unknown op ${a[0]}`);
  }
}

/** Runs `count` calls from `calls` (CALL_WIDTH values each) on `K` (the helper's side). */
export function runCalls(K: RuntimeKernels, calls: Float64Array, count: number): void {
  for (let i = 0; i < count; i++) runCall(K, calls.subarray(i * CALL_WIDTH, (i + 1) * CALL_WIDTH));
}

class Helper {
  private seq = 0;
  private pending = false;
  constructor(readonly worker: Worker, private readonly ctrl: Int32Array, private readonly calls: Float64Array) {}

  post(list: Call[]): void {
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      this.calls.fill(0, i * CALL_WIDTH, (i + 1) * CALL_WIDTH);
      for (let j = 0; j < c.length; j++) this.calls[i * CALL_WIDTH + j] = c[j]!;
    }
    Atomics.store(this.ctrl, CTRL.count, list.length);
    this.seq += 1;
    Atomics.store(this.ctrl, CTRL.seq, this.seq);
    Atomics.notify(this.ctrl, CTRL.seq);
    this.pending = true;
  }

  wait(): void {
    if (!this.pending) return;
    this.pending = false;
    // the answer usually comes within microseconds of this thread's own share: spin briefly before sleeping
    const t0 = performance.now();
    while (Atomics.load(this.ctrl, CTRL.done) !== this.seq && performance.now() - t0 < SPIN_MS);
    // a helper that died (its thread ended) never answers: bounded waits, then an error
    for (let waited = 0; Atomics.load(this.ctrl, CTRL.done) !== this.seq; waited += 1000) {
      if (waited >= 60_000) throw errors.engine('a step helper thread stopped answering (60 s)');
      Atomics.wait(this.ctrl, CTRL.done, Atomics.load(this.ctrl, CTRL.done), 1000);
    }
    if (Atomics.load(this.ctrl, CTRL.failed)) throw errors.engine('a step helper thread failed in a kernel call');
  }

  close(): void {
    Atomics.store(this.ctrl, CTRL.seq, -1);
    Atomics.notify(this.ctrl, CTRL.seq);
    void this.worker.terminate();
  }
}

/** Ends a team when its owner is garbage-collected without close() (the helpers hold the owner's memory). */
const teamCloser = new FinalizationRegistry<StepTeam>((t) => t.close());
export function closeWithOwner(owner: object, team: StepTeam): void { teamCloser.register(owner, team, owner); }
export function forgetOwner(owner: object): void { teamCloser.unregister(owner); }

/** Splits the columns of a product y[M, N] = x·Wᵀ over `T` threads in blocks of 32 (4 panels of 8):
 *  W's 8-column panels lie one after another (8·K float32, or BF16, values each), so a block of
 *  columns is a byte offset into W, b and y. One call per share; gs[t], wide[t]: thread t's scratch. */
export function columnShares(T: number, bf16: boolean, x: number, M: number, K: number, ldx: number, W: number, N: number, b: number,
  y: number, ldy: number, act: number, acc: boolean, gs: number[], wide: number[]): Call[][] {
  const per = Math.ceil(N / T / 32) * 32, shares: Call[][] = [];
  for (let t = 0, n0 = 0; n0 < N; t++, n0 += per) {
    const nn = Math.min(per, N - n0), Wt = W + n0 * K * (bf16 ? 2 : 4), bt = b ? b + n0 * 4 : 0;
    shares.push([bf16 ? [OP.gemmBf16, x, M, K, ldx, Wt, nn, bt, y + n0 * 4, ldy, act, acc ? 1 : 0, gs[t]!, wide[t]!]
      : [OP.gemm, x, M, K, ldx, Wt, nn, bt, y + n0 * 4, ldy, act, acc ? 1 : 0, gs[t]!]]);
  }
  return shares;
}

/** The helpers of one stepper. */
export class StepTeam {
  private constructor(private readonly helpers: Helper[]) {}

  /** threads in all, the caller's included */
  get size(): number { return this.helpers.length + 1; }

  /** Starts `count` helpers on `memory` and waits (at most `timeoutMs` each) until their kernels are
   *  instantiated; null if none could start (the stepper then runs alone). */
  static start(memory: WebAssembly.Memory, variant: string, count: number, timeoutMs = 20_000,
    /** also bind the 'dnnl' engine (one oneDNN thread per helper) from this library path; OP.gemm then runs on it */
    dnnl?: { path?: string }): StepTeam | null {
    const helpers: Helper[] = [];
    const file = new URL('../../workers/step-helper.js', import.meta.url);
    if (file.protocol !== 'file:' || !existsSync(fileURLToPath(file))) return null; // e.g. bundled without it: run alone
    for (let i = 0; i < count; i++) {
      const ctrlBuf = new SharedArrayBuffer(CTRL_INTS * 4), callsBuf = new SharedArrayBuffer(CAPACITY * CALL_WIDTH * 8);
      const ctrl = new Int32Array(ctrlBuf);
      let worker: Worker;
      try {
        worker = new Worker(file, { workerData: { memory, variant, ctrl: ctrlBuf, calls: callsBuf, dnnl: dnnl ? { path: dnnl.path } : null } });
      } catch { break; }
      worker.on('error', () => { /* a helper that fails is reported by its ready flag or by wait() */ });
      worker.unref();
      Atomics.wait(ctrl, CTRL.ready, 0, timeoutMs);
      if (Atomics.load(ctrl, CTRL.ready) !== 1) { void worker.terminate(); break; }
      helpers.push(new Helper(worker, ctrl, new Float64Array(callsBuf)));
    }
    return helpers.length ? new StepTeam(helpers) : null;
  }

  /** Runs shares[1..] on the helpers and shares[0] here, at the same time; returns when all are done.
   *  shares.length ≤ size. */
  run(K: RuntimeKernels, shares: Call[][]): void {
    const rounds = Math.max(1, ...shares.slice(1).map((s) => Math.ceil(s.length / CAPACITY)));
    for (let r = 0; r < rounds; r++) {
      for (let h = 1; h < shares.length; h++) {
        const part = shares[h]!.slice(r * CAPACITY, (r + 1) * CAPACITY);
        if (part.length) this.helpers[h - 1]!.post(part);
      }
      try {
        if (r === 0) for (const c of shares[0] ?? []) runCall(K, c);
      } finally {
        // also when this thread's share threw: a helper still reading its calls must finish before
        // anything is posted again
        for (const h of this.helpers) h.wait();
      }
    }
  }

  close(): void { for (const h of this.helpers) h.close(); }
}
