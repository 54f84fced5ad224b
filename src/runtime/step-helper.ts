// Helper threads of the recurrent step (WasmStepper). Decoding one token reads every weight once
// and every float64 state once, so one thread cannot reach the machine's memory bandwidth; the
// stepper splits its retention heads (and, on the WASM engine, the columns of its one-row products)
// between its own thread and these helpers, which run the same WASM kernels on the same shared
// memory. Each share writes disjoint outputs, and a column's or a head's arithmetic does not depend
// on the split, so the results are the same bit for bit as on one thread.
//
// Protocol: the calls of a round are claimed, not assigned. The stepper writes every helper's list
// of the round's calls (CALL_WIDTH float64 each: an op code, then the kernel's arguments; the i-th
// call of every list is the same work, with that thread's own scratch) into the helper's `calls`,
// zeroes the team's `completed` counter, publishes the claim word (n << 16 | 0) and bumps each
// helper's ctrl[seq]. Every thread, the stepper's included, then takes the next index with a
// compare-and-swap on the claim word, runs its own list's call there and adds 1 to `completed`,
// until the word reads n; the stepper returns when `completed` reads n. So a thread the machine
// slows (a busy core, a preempted vCPU) takes fewer calls instead of holding the others at a
// barrier, and which thread ran a call changes no bit of its result.
// Why it is safe: a list is written only while the word is exhausted (i = n), so a successful claim
// always finds the published round's call; a claim word met again in a later round (ABA) still
// names that round's next call. seq < 0 ends the helper.
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errors } from '../errors.js';
import type { RuntimeKernels } from './kernels.js';

/** most threads a step or the LM head uses (one-row products stop gaining once memory bandwidth is reached) */
export const MAX_STEP_THREADS = 8;

/** a helper's control words */
export const CTRL = { seq: 0, ready: 1 } as const;
const CTRL_INTS = 4;
/** the team's shared words: the claim word (calls << 16 | next index), calls completed, a failure flag */
export const SYNC = { claim: 0, completed: 1, failed: 2 } as const;
const SYNC_INTS = 4;
/** op code + up to 15 arguments */
export const CALL_WIDTH = 16;
/** how long a waiting side (the stepper for an answer, a helper for its next calls) polls before it sleeps:
 *  a step posts a product every few hundred microseconds, and waking a sleeping thread costs tens of them */
export const SPIN_MS = 0.5;
/** calls per round (more are posted in further rounds); the claim word holds 16 bits of it */
const CAPACITY = 512;

/** Kernel calls a helper can run. */
export const OP = { step: 0, gemm: 1, gemmBf16: 2, stepS32: 3, intra: 4, summary: 5, cross: 6, scan: 7, normalize: 8, gemmBf16Rows: 9, packWhole: 10 } as const;
export type Call = [op: number, ...args: number[]];

/** Runs one call (an op code, then the kernel's arguments) on `K`. */
export function runCall(K: RuntimeKernels, a: ArrayLike<number>): void {
  switch (a[0]) {
    case OP.step: K.step(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12] !== 0, a[13]); break;
    case OP.gemm: K.gemm(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11] !== 0, a[12]); break;
    case OP.stepS32: K.stepS32!(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12] !== 0, a[13]); break;
    case OP.gemmBf16: K.gemmBf16(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11] !== 0, a[12], a[13]); break;
    // the chunkwise prefill's retention (WasmStepper.prefill)
    case OP.intra: K.intra(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14]); break;
    case OP.summary: K.summary(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]); break;
    case OP.cross: K.cross(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]); break;
    case OP.scan: K.scanStep(a[1], a[2], a[3], a[4], a[5]); break;
    case OP.normalize: K.normalize(a[1], a[2], a[3], a[4], a[5], a[6], a[7] !== 0); break;
    // a weight block's reorder into oneDNN's layout, while a stepper packs (BlockedDnnlKernels.packCalls)
    case OP.packWhole:
      if (!K.packWhole) throw new Error('step helper: no oneDNN bound to pack a weight block');
      K.packWhole(a[1], a[2] ? 'bf16' : 'f32', a[3], a[4], a[5]); break;
    case OP.gemmBf16Rows:
      if (!K.gemmBf16Rows) throw new Error('step helper: no BLAS bound for a prefill product');
      K.gemmBf16Rows(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11] !== 0, a[12]); break;
    default: throw new Error(`step helper: unknown op ${a[0]}`);
  }
}

/** Claims and runs calls of the published round until none is left (every thread of a team, see the
 *  protocol above): `call(i)` gives this thread's i-th call. A call that throws sets the failure flag
 *  and still counts as completed; the first error is returned (the round goes on without it). */
export function claimCalls(K: RuntimeKernels, sync: Int32Array, call: (i: number) => ArrayLike<number>): unknown {
  let error: unknown;
  for (;;) {
    const w = Atomics.load(sync, SYNC.claim), n = w >>> 16, i = w & 0xffff;
    if (i >= n) return error;
    if (Atomics.compareExchange(sync, SYNC.claim, w, w + 1) !== w) continue;
    try { runCall(K, call(i)); } catch (e) { error ??= e; Atomics.store(sync, SYNC.failed, 1); }
    if (Atomics.add(sync, SYNC.completed, 1) + 1 === n) Atomics.notify(sync, SYNC.completed);
  }
}

/** A helper thread's side of the protocol: `calls` its list buffer. */
export function helperCalls(calls: Float64Array): (i: number) => Float64Array {
  return (i) => calls.subarray(i * CALL_WIDTH, (i + 1) * CALL_WIDTH);
}

class Helper {
  constructor(readonly worker: Worker, private readonly ctrl: Int32Array, private readonly calls: Float64Array) {}

  /** writes calls [from, from + n) of this helper's list as the round's (only while the claim word is exhausted) */
  write(list: Call[], from: number, n: number): void {
    for (let i = 0; i < n; i++) {
      const c = list[from + i]!;
      this.calls.fill(0, i * CALL_WIDTH, (i + 1) * CALL_WIDTH);
      for (let j = 0; j < c.length; j++) this.calls[i * CALL_WIDTH + j] = c[j]!;
    }
  }

  wake(): void {
    Atomics.add(this.ctrl, CTRL.seq, 1);
    Atomics.notify(this.ctrl, CTRL.seq);
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

/** The calls of a product y[M, N] = x·Wᵀ on the WASM GEMM in `blocks` column blocks — that many of
 *  equal width (multiples of 32 columns: 4 panels of 8), or these [first column, columns] (each first
 *  column a multiple of 8): W's 8-column panels lie one after another (8·K float32, or BF16, values
 *  each), so a block of columns is a byte offset into W, b and y. gs, wide: the running thread's scratch. */
export function columnCalls(blocks: number | [number, number][], bf16: boolean, x: number, M: number, K: number, ldx: number, W: number, N: number, b: number,
  y: number, ldy: number, act: number, acc: boolean, gs: number, wide: number): Call[] {
  const calls: Call[] = [];
  let cut: [number, number][];
  if (typeof blocks === 'number') {
    const per = Math.ceil(N / blocks / 32) * 32;
    cut = [];
    for (let n0 = 0; n0 < N; n0 += per) cut.push([n0, Math.min(per, N - n0)]);
  } else cut = blocks;
  for (const [n0, nn] of cut) {
    const Wt = W + n0 * K * (bf16 ? 2 : 4), bt = b ? b + n0 * 4 : 0;
    calls.push(bf16 ? [OP.gemmBf16, x, M, K, ldx, Wt, nn, bt, y + n0 * 4, ldy, act, acc ? 1 : 0, gs, wide]
      : [OP.gemm, x, M, K, ldx, Wt, nn, bt, y + n0 * 4, ldy, act, acc ? 1 : 0, gs]);
  }
  return calls;
}

/** Blocks per thread a team's product on the WASM GEMM is cut into (columnCalls): enough that a slowed
 *  thread's share moves to the others, few enough that a block stays a long call. (oneDNN's products are
 *  cut by guidedColumnBlocks, src/runtime/dnnl-kernels.ts.) */
export const BLOCKS_PER_THREAD = 2;

/** Thread t's calls of one round: the same list for every thread, or a list per thread (the same work
 *  at every index, with thread t's scratch). */
export type RoundCalls = Call[] | ((t: number) => Call[]);

/** The helpers of one stepper. */
export class StepTeam {
  private constructor(private readonly helpers: Helper[], private readonly sync: Int32Array) {}

  /** threads in all, the caller's included */
  get size(): number { return this.helpers.length + 1; }

  /** Starts `count` helpers on `memory` and waits (at most `timeoutMs` each) until their kernels are
   *  instantiated; null if none could start (the stepper then runs alone). */
  static start(memory: WebAssembly.Memory, variant: string, count: number, timeoutMs = 20_000,
    /** also bind the 'dnnl' engine (one oneDNN thread per helper) from this library path; OP.gemm then runs on it */
    dnnl?: { path?: string },
    /** also bind BLAS (this CBLAS library) for OP.gemmBf16Rows, the prefill's products */
    blas?: { path: string }): StepTeam | null {
    const helpers: Helper[] = [];
    const file = new URL('../../workers/step-helper.js', import.meta.url);
    if (file.protocol !== 'file:' || !existsSync(fileURLToPath(file))) return null; // e.g. bundled without it: run alone
    const syncBuf = new SharedArrayBuffer(SYNC_INTS * 4);
    for (let i = 0; i < count; i++) {
      const ctrlBuf = new SharedArrayBuffer(CTRL_INTS * 4), callsBuf = new SharedArrayBuffer(CAPACITY * CALL_WIDTH * 8);
      const ctrl = new Int32Array(ctrlBuf);
      let worker: Worker;
      try {
        worker = new Worker(file, { workerData: { memory, variant, ctrl: ctrlBuf, sync: syncBuf, calls: callsBuf, dnnl: dnnl ? { path: dnnl.path } : null, blas: blas ? { path: blas.path } : null } });
      } catch { break; }
      worker.on('error', () => { /* a helper that fails is reported by its ready flag; its calls go to the others */ });
      worker.unref();
      Atomics.wait(ctrl, CTRL.ready, 0, timeoutMs);
      if (Atomics.load(ctrl, CTRL.ready) !== 1) { void worker.terminate(); break; }
      helpers.push(new Helper(worker, ctrl, new Float64Array(callsBuf)));
    }
    return helpers.length ? new StepTeam(helpers, new Int32Array(syncBuf)) : null;
  }

  /** Runs the round's calls on this thread and the helpers, each call once, whichever thread claims it
   *  (`calls(t)`: thread t's list, t = 0 this one); returns when all are done. A failed call throws
   *  after the round has ended (no thread still writes its outputs). */
  run(K: RuntimeKernels, calls: RoundCalls): void {
    const list = typeof calls === 'function' ? calls : () => calls;
    const mine = list(0), lists = this.helpers.map((_, h) => list(h + 1));
    for (let r0 = 0; r0 < mine.length; r0 += CAPACITY) {
      const n = Math.min(CAPACITY, mine.length - r0);
      this.helpers.forEach((h, k) => h.write(lists[k]!, r0, n));
      Atomics.store(this.sync, SYNC.completed, 0);
      Atomics.store(this.sync, SYNC.failed, 0);
      Atomics.store(this.sync, SYNC.claim, n << 16);
      for (const h of this.helpers) h.wake();
      const error = claimCalls(K, this.sync, (i) => mine[r0 + i]!);
      this.await(n);
      if (error !== undefined) throw error;
      if (Atomics.load(this.sync, SYNC.failed)) throw errors.engine('a step helper thread failed in a kernel call');
    }
  }

  /** Waits until `n` calls are completed: a short spin (the last call is usually within microseconds of
   *  this thread's own), then sleeps; a helper that died holding a call never completes it: 60 s, then an error. */
  private await(n: number): void {
    const s = this.sync, t0 = performance.now();
    while (Atomics.load(s, SYNC.completed) !== n && performance.now() - t0 < SPIN_MS);
    for (let waited = 0; Atomics.load(s, SYNC.completed) !== n; waited += 1000) {
      if (waited >= 60_000) throw errors.engine('a step helper thread stopped answering (60 s)');
      Atomics.wait(s, SYNC.completed, Atomics.load(s, SYNC.completed), 1000);
    }
  }

  close(): void { for (const h of this.helpers) h.close(); }
}
