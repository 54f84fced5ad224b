// The chunk-parallel runtime (docs/architecture.md §2): a coordinator that plans
// windows of slabs, dispatches phase A and phase C tasks to a Piscina pool
// of chunk workers over one shared WebAssembly.Memory, and runs the phase B
// scan itself. Implements the `wasm` backend's Executor.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { Worker } from 'node:worker_threads';
import { errors, RetNetError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { checkSync, type BackendInfo, type Executor, type ForwardRequest, type ModelSpec, type RowSink, type RowSource } from '../backends/executor.js';
import { Arena, fmtBytes } from './arena.js';
import { ARENA_BASE, createMemory } from '../wasm/loader.js';
import { pagesOf } from '../wasm/huge-pages.js';
import { decayPowers } from '../wasm/tables.js';
import { planWindows, slabChunks, type Slab } from './plan.js';
import { scanChunks } from './scan.js';
import { sectionStart, sectionEnd, profileBuffer } from './profile.js';
import { ACT_CODE, ROW_BLOCK, type ScratchPtrs, type SlabTask, type WindowPtrs } from './messages.js';
import type { RuntimeKernels } from './kernels.js';
import { createWorkerKernels, type EngineSpec } from './worker-kernels.js';
import { kernelsFromEnv, precisionFromEnv, type KernelsRequest, type Precision } from '../options.js';
import { Turns } from './turns.js';
import { packModel, type Packed } from './pack.js';
import { envValue } from '../env.js';
import type { DnnlLibrary } from './dnnl.js';

const F4 = 4;
/** wasm32 addresses 4 GiB; keep one page of headroom. */
const MAX_MEMORY = 2 ** 32 - 65536;
/** Default window budget in rows (tokens across the batch). */
export const DEFAULT_WINDOW_ROWS = 8192;
/** Budget for the per-window chunk summaries and incoming states. */
const SUMMARY_BYTES = 256 * 2 ** 20;
/** Budget for all window buffers (activations, projections, row sums, summaries and incoming states; for a
 *  batch longer than one window, the states carried between windows as well) when no window size is asked
 *  for: DEFAULT_WINDOW_ROWS unless that would exceed it
 *  (wide models: the fla 1.3B needs ~72 KiB per row plus ~32 KiB of summaries per row at chunks of 256,
 *  so windows of 2,304 rows — 9 slabs — instead of 8,192: 0.24 GiB instead of 0.8 of peak RSS; at 384 MiB
 *  its peak RSS at 8,192 tokens was 1.29× the weight file, at 256 MiB 1.24×, at the same tokens/s on
 *  precision bf16 (2026-12-06, bench/fla-1p3b.ts)). The window size never changes a bit of the output. */
export const DEFAULT_WINDOW_BYTES = 256 * 2 ** 20;
/** The window size in rows when none is asked for: DEFAULT_WINDOW_BYTES ÷ `perRow` (bytes of window buffers
 *  per row), at most DEFAULT_WINDOW_ROWS. A batch of more rows than that is cut into windows, and the
 *  sequence cut at a boundary carries a state per layer to the next window (`carriedBytes` in all): then the
 *  budget holds those states too, and the windows shrink to what is left (at least 1 row; the planner
 *  rounds up to whole slabs). The fla 1.3B shape, 8,192 tokens: 24 float64 states of 8.4 MB leave windows
 *  of 512 rows, not 2,304: 130 MiB less at the peak, the same bits (the window size never changes one), the
 *  same speed within noise (38.5 and 38.4 s; 2026-12-07 18:40 UTC, this machine, a scratch A/B of
 *  windowRows 512 against the default). */
export function defaultWindowRows(perRow: number, batchRows: number, carriedBytes: number): number {
  const rows = Math.min(DEFAULT_WINDOW_ROWS, Math.floor(DEFAULT_WINDOW_BYTES / perRow));
  if (batchRows <= rows) return rows;
  return Math.min(rows, Math.max(1, Math.floor((DEFAULT_WINDOW_BYTES - carriedBytes) / perRow)));
}

/** Slots of the shared worker-ready table (indexed by threadId modulo this). */
export const READY_SLOTS = 4096;


export interface WasmExecutorOptions {
  workers?: number;
  /** Which engine runs the chunk kernels: 'auto' (default: BLAS when a CBLAS library loads,
   *  else WASM; at precision 'bf16' oneDNN first where the CPU has bfloat16 dot products), 'wasm',
   *  'blas' (E_ENGINE when none loads), 'dnnl' (oneDNN's matmul at either precision; E_ENGINE when it does not load),
   *  or the scalar JS twin 'js' (debugging). */
  kernels?: KernelsRequest;
  /** GEMM operand precision (default 'f32'; see options.ts Precision) */
  precision?: Precision;
  /** WASM variant: 'auto' | 'relaxed' | 'simd' */
  variant?: string;
  /** Rows (tokens) per window; default 8192. */
  windowRows?: number;
}


export class WasmExecutor implements Executor {
  readonly name = 'wasm' as const;
  private readonly memory: WebAssembly.Memory;
  private readonly arena: Arena;
  private readonly kernels: RuntimeKernels;
  private pool: Piscina;
  private workers: number;
  private readonly opts: WasmExecutorOptions;
  private readonly engine: EngineSpec & { note?: string; dispatch?: string };
  private readonly packed = new WeakMap<ModelSpec, Packed>();
  private closed = false;
  /** test hook: the next dispatched task makes its worker exit */
  private crashNext = false;

  private constructor(memory: WebAssembly.Memory, kernels: RuntimeKernels, engine: WasmExecutor['engine'], opts: WasmExecutorOptions) {
    this.memory = memory;
    this.kernels = kernels;
    this.engine = engine;
    this.opts = opts;
    this.arena = new Arena(memory, ARENA_BASE, MAX_MEMORY);
    this.workers = opts.workers ?? availableParallelism();
    this.pool = this.makePool(this.workers);
  }

  static async create(opts: WasmExecutorOptions = {}): Promise<WasmExecutor> {
    const memory = createMemory(256);
    const variant = opts.variant ?? envValue('RETNET_WASM_VARIANT') ?? 'auto';
    const engine = await chooseEngine(opts.kernels ?? kernelsFromEnv(), opts.precision ?? precisionFromEnv());
    const kernels = await createWorkerKernels(memory, engine, variant);
    return new WasmExecutor(memory, kernels, engine, { ...opts, variant });
  }

  /** Shared with the workers: slot threadId % READY_SLOTS is 1 once that thread has bound its kernels. */
  private ready = new Int32Array(new SharedArrayBuffer(READY_SLOTS * 4));

  private makePool(n: number): Piscina {
    this.ready = new Int32Array(new SharedArrayBuffer(READY_SLOTS * 4));
    const pool = new Piscina({
      filename: new URL('../../workers/chunk-worker.js', import.meta.url).href,
      minThreads: n, maxThreads: n, idleTimeout: 2 ** 31 - 1,
      workerData: { memory: this.memory, engine: { which: this.engine.which, blasPath: this.engine.blasPath, dnnlPath: this.engine.dnnlPath, precision: this.engine.precision }, variant: this.opts.variant, ready: this.ready, profile: profileBuffer() },
    });
    // Piscina emits 'error' for a worker message it cannot match to a task — e.g. a
    // reply to a task that destroy() (close() during a forward) already cancelled.
    // Unheard, that event would end the process; every task's own failure still
    // reaches its caller through the task's promise.
    pool.on('error', () => {});
    return pool;
  }

  /** Ends the pool once no worker is still starting: a worker terminated while it loads a native
   *  addon (koffi, for the BLAS engine) aborts the whole process, so wait (≤ 30 s) for every
   *  live worker to have bound its kernels first. */
  private async destroyPool(): Promise<void> {
    const t0 = Date.now();
    const starting = () => this.pool.threads.some((w) => Atomics.load(this.ready, w.threadId % READY_SLOTS) === 0);
    while (starting() && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
    await this.pool.destroy();
  }

  info(): BackendInfo {
    return {
      backend: 'wasm', engine: this.kernels.name, kernels: this.engine.which, precision: this.engine.precision ?? 'f32',
      device: `CPU, ${this.workers} worker thread${this.workers === 1 ? '' : 's'}`,
      ...(this.engine.dispatch ? { dispatch: this.engine.dispatch } : {}),
      ...(this.engine.note ? { note: this.engine.note } : {}),
      memory: pagesOf(this.memory),
    };
  }

  /** Test hook: the next task makes its worker thread exit mid-task. */
  debugCrashNextTask(): void { this.crashNext = true; }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.destroyPool();
  }

  /** One forward at a time owns the arena (a waiting call aborts at once; none starts after close(),
   *  which would build a new pool that nothing ends). */
  private readonly turns = new Turns(() => this.closed);

  async forward(spec: ModelSpec, x: Tensor, req: ForwardRequest): Promise<Tensor> {
    const [B, L, d] = x.shape;
    const w = req.mode === 'retention' ? spec.dims.H * spec.dims.dv : d;
    const out = new Float32Array(B * L * w);
    const source: RowSource = {
      lengths: Array(B).fill(L),
      // a typed-array copy (float64 → float32 rounds to nearest, as an element assignment does)
      read: (seq, start, into) => { const o = (seq * L + start) * d; into.set(x.data.subarray(o, o + into.length)); },
    };
    const sink: RowSink = { write: (seq, start, rows) => out.set(rows, (seq * L + start) * w) };
    await this.run(spec, source, sink, req);
    return new Tensor(out, [B, L, w]);
  }

  /** Run the model over sequences of any lengths, streaming rows in and out. */
  run(spec: ModelSpec, source: RowSource, sink: RowSink, req: ForwardRequest): Promise<void> {
    if (this.closed) return Promise.reject(errors.closed());
    return this.turns.run(async () => {
      if (req.workers !== undefined && req.workers !== this.workers) {
        await this.destroyPool();
        if (this.closed) throw errors.closed(); // close() came while the old pool ended: no new one
        this.workers = req.workers;
        this.pool = this.makePool(this.workers);
      }
      const packed = this.pack(spec);
      const threads = [...this.pool.threads];
      try {
        await this.runWindows(spec, packed, source, sink, req);
      } catch (e) {
        // An aborted task's worker is told to terminate, but its thread may still be writing into the
        // shared memory after the call has been rejected — into buffers the next call uses. So every thread
        // this call had ends before the arena is used again (a fresh pool for the next call).
        if (req.signal?.aborted && !this.closed) await this.renewPoolAfterAbort(threads);
        throw e;
      } finally {
        this.arena.reset();
      }
    }, req.signal);
  }

  /** Ends the pool and waits until every thread in `threads` (the call's, aborted ones included, which
   *  Piscina no longer lists) has exited; then a fresh pool. At most 30 s. */
  private async renewPoolAfterAbort(threads: readonly Worker[]): Promise<void> {
    await this.destroyPool();
    const exited = (w: Worker) => w.threadId === -1 ? Promise.resolve() : new Promise<void>((r) => { w.once('exit', () => r()); if (w.threadId === -1) r(); });
    await Promise.race([Promise.all(threads.map(exited)), new Promise((r) => setTimeout(r, 30_000).unref())]);
    this.pool = this.makePool(this.workers);
  }

  // ---------------------------------------------------------------- weights

  /** Copy weights into the persistent region and pack them for the GEMM (once per model). */
  private pack(spec: ModelSpec): Packed {
    const have = this.packed.get(spec);
    if (have) return have;
    // At precision 'bf16' the gate projection is made in phase C (Dims.gSplit): the window's P holds q|k|v
    // only, a third less (32 MiB of the 1.3B shape's 2,048-row window). A packing that fails (E_WEIGHTS on
    // a subnormal, a file changed since loading, E_MEMORY) gives back what it took: the next call starts
    // from a clean arena.
    const mark = this.arena.persistentMark();
    let p: Packed;
    try { p = packModel(spec, this.kernels, this.arena, { splitGate: this.engine.precision === 'bf16' }); } catch (e) {
      this.arena.rewind(mark);
      throw e;
    }
    this.packed.set(spec, p);
    return p;
  }

  // ---------------------------------------------------------------- forward

  private async runWindows(spec: ModelSpec, packed: Packed, source: RowSource, sink: RowSink, req: ForwardRequest): Promise<void> {
    const A = this.arena;
    const { d, H, dk, dv, Wp, maxHidden } = packed.dims;
    const stride = dk * dv + dk;
    const lengths = source.lengths;
    const chunkSize = (L: number) => req.plan(L).chunkSize;
    // (loops, not Math.max(...array): a batch of ~10⁵ sequences or windows overflows the call's arguments)
    let Cmax = 1, slabRowsMax = 1, Lmax = 1;
    for (const L of lengths) { const C = chunkSize(L); Cmax = Math.max(Cmax, C); slabRowsMax = Math.max(slabRowsMax, Math.min(L, slabChunks(C) * C)); Lmax = Math.max(Lmax, L); }
    const slots = this.workers;

    // Memory check before allocating: one tile scratch per concurrent task, C×C floats on the CBLAS
    // engine (its score tile), about (64 + dk + dv)·C on the WASM engine (RuntimeKernels.tileFloats).
    const tileF = Math.max(16, this.kernels.tileFloats(Cmax, dk, dv));
    const tileBytes = tileF * F4 * slots;
    if (tileBytes > 2 ** 31) {
      throw errors.memory(`the ${Cmax === Lmax ? 'parallel form' : 'chunk size'} with ${Cmax} tokens per chunk needs ${fmtBytes(tileBytes)} of score tiles (${tileF} floats × ${slots} workers on the ${this.kernels.name} engine), over the 2 GiB limit; use numChunks or chunkSize`);
    }
    // Decay powers γ_h^i, i = 0..Cmax, per layer and head (float64 → float32).
    const powStride = Cmax + 1;
    const layers = packed.layers.map((Ly) => {
      const pow = A.transient(H * powStride * F4, 'decay tables');
      const v = A.f32(pow, H * powStride);
      for (let h = 0; h < H; h++) decayPowers(Ly.gamma[h], Cmax, v.subarray(h * powStride, (h + 1) * powStride));
      return { ...Ly, pow };
    });
    // Window buffers sized for the largest window.
    const maxChunksPerWindow = Math.max(slabChunks(1), Math.floor(SUMMARY_BYTES / (2 * H * stride * F4)));
    const perRow = F4 * (d + Wp + H * dv + H) + (2 * H * stride * F4) / Cmax;
    const carried = packed.layers.length * H * stride * (req.stateDtype === 'float64' ? 8 : 4);
    const defaultRows = defaultWindowRows(perRow, lengths.reduce((a, b) => a + b, 0), carried);
    const windowRows = Math.max(req.windowRows ?? this.opts.windowRows ?? defaultRows, slabRowsMax);
    // The plan is walked twice, never held: once here for the largest window (the buffers' sizes), then
    // window by window below. (Before, the whole plan was an array: ~85 bytes of heap per 256 tokens before
    // anything ran — a declared length of 2⁴⁰ tokens ended the process out of heap.) The walk yields to the
    // event loop now and then, so an abort is seen during a long one.
    const windows = () => planWindows(lengths, chunkSize, windowRows, maxChunksPerWindow);
    let T = 0, nChunks = 0, maxSlabs = 0, walked = 0;
    for (const w of windows()) {
      T = Math.max(T, w.rows); nChunks = Math.max(nChunks, w.chunks); maxSlabs = Math.max(maxSlabs, w.slabs.length);
      walked += w.slabs.length;
      if (walked >= 1 << 20) { walked = 0; await new Promise((r) => setImmediate(r)); this.checkAbort(req.signal); }
    }
    // Chunk summaries and incoming states share one buffer: phase A writes a chunk's summary, the scan reads
    // it once and writes the chunk's incoming state over it (scanStep reads before it writes), and phase C
    // reads that. The next layer's phase A of a slab runs after its phase C (one task), so a summary never
    // overwrites an incoming state still to be read. (The budgets above count both as before: the windows'
    // rows are unchanged.)
    const sumIn = A.transient(nChunks * H * stride * F4, 'chunk summaries and incoming states');
    const win: WindowPtrs = {
      X: A.transient(T * d * F4, 'window activations'),
      P: A.transient(T * Wp * F4, 'window projections'),
      // the retention output: per task (scratch.o) but where the caller reads it after the window
      O: req.mode === 'retention' ? A.transient(T * H * dv * F4, 'window retention output') : 0,
      R: A.transient(H * T * F4, 'window row sums'),
      SUM: sumIn, SIN: sumIn,
      T, powStride,
    };
    // rows of a row block: ROW_BLOCK, or fewer where no slab is that long (the 1.3B's chunks of 256: 256)
    const RB = Math.min(ROW_BLOCK, slabRowsMax);
    // a second MLP hidden buffer only for MLPs of three or more Linears (the seed's and swiglu's use one)
    const deepMlp = !packed.dims.swiglu && packed.layers.some((Ly) => Ly.mlp.length > 2);
    // one scratch slot per task in flight: at most the workers, and at most a window's slabs (a slab has one
    // task at a time) — the parallel form's one slab of L rows needs one slot, not one per worker
    const taskSlots = Math.min(slots, maxSlabs);
    const scratch: ScratchPtrs[] = Array.from({ length: taskSlots }, () => ({
      h: A.transient(RB * d * F4, 'scratch'),
      o: req.mode === 'retention' ? 0 : A.transient(slabRowsMax * H * dv * F4, 'slab retention output'),
      // (with Dims.gSplit it also takes the gate's rows, H·dv wide)
      hidden: A.transient(RB * Math.max(maxHidden, packed.dims.gSplit ? H * dv : 0) * F4, 'scratch'),
      hidden2: deepMlp ? A.transient(RB * maxHidden * F4, 'scratch') : 0,
      cos: A.transient(slabRowsMax * (dk / 2) * F4, 'scratch'),
      sin: A.transient(slabRowsMax * (dk / 2) * F4, 'scratch'),
      inv: A.transient(Cmax * F4, 'scratch'),
      tile: A.transient(tileF * F4, 'score tile'),
      gemm: A.transient(Math.max(64, this.kernels.gemmScratchBytes()), 'GEMM scratch'),
      wide: packed.bf16Scratch ? A.transient(packed.bf16Scratch, 'BF16 weight widening') : 0,
    }));

    // Carried states [H, stride] per sequence and layer: made (zero) when a sequence's first chunk is
    // scanned at that layer, and put back on a free list once its last chunk has been. So a window of
    // many short documents holds only the states its in-flight slabs need, and only the sequence that
    // continues into the next window keeps one per layer (the fla 1.3B's is 8.4 MB per layer in float64).
    // float64 states live in the shared memory (the scan step is a WASM SIMD kernel on the coordinator);
    // stateDtype float32 keeps JavaScript arrays and the JavaScript scan.
    type State = number | Float32Array; // a byte offset of float64s, or float32 values
    const states = new Map<number, (State | undefined)[]>();
    const freeStates: State[] = [];
    const f64State = req.stateDtype === 'float64';
    const newState = (): State => {
      const b = freeStates.pop();
      if (b !== undefined) {
        if (typeof b === 'number') A.f64(b, H * stride).fill(0); else b.fill(0);
        return b;
      }
      if (!f64State) return new Float32Array(H * stride);
      const off = A.transient(H * stride * 8, 'carried states');
      A.f64(off, H * stride).fill(0);
      return off;
    };
    const total = lengths.reduce((a, b) => a + b, 0);
    let done = 0;
    const acts = { msr: ACT_CODE[spec.config.msrGateFn], mlp: ACT_CODE[spec.config.mlpGateFn] };
    const numLayer = req.mode === 'msr' ? 1 : layers.length;

    for (const w of windows()) {
      this.checkAbort(req.signal);
      for (const s of w.slabs) {
        const rows = A.f32(win.X + s.row * d * F4, s.len * d);
        checkSync(source.read(s.seq, s.start, rows));
        const i = firstNonFinite(rows);
        if (i >= 0) throw errors.input(`sequence ${s.seq} has a non-finite value ${rows[i]} at [${s.start + Math.floor(i / d)}, ${i % d}]`);
      }
      const base = { mode: req.mode, dims: packed.dims, acts, win, normalizeAttn: req.flags.normalizeAttn, normalizeRetn: req.flags.normalizeRetn };
      const mk = (kind: SlabTask['kind'], l: number, s: Slab, slot: number): SlabTask => ({
        ...base, kind, layer: layers[l], ...(kind === 'CA' ? { next: layers[l + 1] } : {}),
        scratch: scratch[slot], row: s.row, start: s.start, len: s.len, C: s.C, chunk0: s.chunk0, memBytes: A.memory.buffer.byteLength,
      });
      // phase B of layer l for one slab: the scan over its chunks, in sequence order
      const sum = A.f32(win.SUM, nChunks * H * stride), sin = A.f32(win.SIN, nChunks * H * stride);
      const scan = (l: number, s: Slab) => {
        const tB = sectionStart();
        const lens: number[] = [];
        for (let off = 0; off < s.len; off += s.C) lens.push(Math.min(s.C, s.len - off));
        const g = layers[l].gamma;
        let per = states.get(s.seq);
        if (!per) states.set(s.seq, per = new Array<State | undefined>(layers.length));
        let st = per[l];
        if (!st) {
          if (s.start !== 0) throw new Error(`internal: no carried state for sequence ${s.seq} at layer ${l}`);
          st = per[l] = newState();
        }
        if (typeof st !== 'number') scanChunks(sum, sin, st, s.chunk0, lens, H, stride, (h, n) => Math.pow(g[h], n));
        else {
          for (let i = 0; i < lens.length; i++) {
            const base = (s.chunk0 + i) * H * stride;
            for (let h = 0; h < H; h++) {
              this.kernels.scanStep(stride, Math.pow(g[h], lens[i]), st + h * stride * 8, win.SUM + (base + h * stride) * F4, win.SIN + (base + h * stride) * F4);
            }
          }
        }
        if (s.start + s.len === lengths[s.seq]) { per[l] = undefined; freeStates.push(st); }
        sectionEnd('scan', tB);
      };
      await this.pipeline(w.slabs, numLayer, mk, scan, req.signal, taskSlots);
      for (const s of w.slabs) {
        if (req.mode === 'retention') sink.write(s.seq, s.start, A.f32(win.O + s.row * H * dv * F4, s.len * H * dv));
        else sink.write(s.seq, s.start, A.f32(win.X + s.row * d * F4, s.len * d));
      }
      for (const seq of w.endsSeq) states.delete(seq);
      done += w.rows;
      req.onProgress?.(done, total);
    }
  }

  private checkAbort(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw errors.aborted(signal.reason);
    if (this.closed) throw errors.closed();
  }

  /**
   * All layers of one window as a dataflow over its slabs, with no barrier between phases:
   *   A(0,s) → scan(0,s) → [C(0,s) + A(1,s)] → scan(1,s) → … → C(last,s)
   * where scan(l,s) (phase B, here on the coordinator) also waits for scan(l,s−1) when slab
   * s−1 belongs to the same sequence (the carried state). C of one layer and A of the next
   * run as one task: together they need only the slab's own rows. At most `workers` tasks
   * are in flight, each with its own scratch slot; ready tasks go lowest layer first
   * (first come first served within a layer).
   * Every task's arithmetic is fixed by its slab and layer, and each sequence's scan runs
   * in order, so the schedule cannot change a bit of the output.
   */
  private pipeline(slabs: Slab[], numLayer: number, mk: (kind: SlabTask['kind'], l: number, s: Slab, slot: number) => SlabTask,
    scan: (l: number, s: Slab) => void, signal: AbortSignal | undefined, taskSlots: number): Promise<void> {
    const n = slabs.length;
    const aDone = new Array<number>(n).fill(-1);   // highest layer whose phase A is done, per slab
    const scanned = new Array<number>(n).fill(-1); // highest layer scanned, per slab
    // ready tasks, one FIFO per layer (taken lowest layer first): O(layers) per task however many slabs
    type Ready = { kind: SlabTask['kind']; l: number; i: number };
    const ready: Ready[][] = Array.from({ length: numLayer }, () => []);
    const heads = new Array<number>(numLayer).fill(0);
    ready[0] = slabs.map((_, i) => ({ kind: 'A', l: 0, i }));
    let waiting = n;
    const take = (): Ready | undefined => {
      for (let l = 0; l < numLayer; l++) if (heads[l] < ready[l].length) { waiting--; return ready[l][heads[l]++]; }
      return undefined;
    };
    const slots = Array.from({ length: taskSlots }, (_, k) => taskSlots - 1 - k);
    let inflight = 0, finished = 0, failure: unknown = null, where = '';
    return new Promise<void>((resolve, reject) => {
      const settle = () => {
        if (inflight > 0) return;
        if (failure !== null) reject(this.taskFailure(failure, signal, where));
        else if (finished === n) resolve();
      };
      // Slab i's phase A just finished: scan it, then the following slabs of its sequence
      // that were waiting only for it, each at the layer it is ready for.
      const scans = (i: number) => {
        for (let j = i; j < n; j++) {
          const l = scanned[j] + 1;
          if (l >= numLayer || aDone[j] < l) return;
          if (j > 0 && slabs[j - 1].seq === slabs[j].seq && scanned[j - 1] < l) return;
          scan(l, slabs[j]);
          scanned[j] = l;
          ready[l].push({ kind: l + 1 < numLayer ? 'CA' : 'C', l, i: j });
          waiting++;
          if (j + 1 >= n || slabs[j + 1].seq !== slabs[j].seq) return;
        }
      };
      const dispatch = () => {
        while (failure === null && slots.length > 0 && waiting > 0) {
          if (signal?.aborted || this.closed) { failure = signal?.reason ?? errors.closed(); break; }
          const r = take()!;
          const slot = slots.pop()!;
          const task = mk(r.kind, r.l, slabs[r.i], slot);
          if (this.crashNext) { this.crashNext = false; task.crash = true; }
          inflight++;
          this.pool.run(task, signal ? { signal } : {}).then(() => {
            inflight--; slots.push(slot);
            if (r.kind === 'A') aDone[r.i] = r.l;
            else if (r.kind === 'CA') aDone[r.i] = r.l + 1;
            else finished++;
            if (r.kind !== 'C') { try { scans(r.i); } catch (e) { failure ??= e; } }
            dispatch(); settle();
          }, (e: unknown) => {
            inflight--; slots.push(slot);
            if (failure === null) { failure = e; where = `${r.kind === 'A' ? 'phase A' : 'phase C'} of layer ${r.l}`; }
            settle();
          });
        }
      };
      dispatch(); settle();
    });
  }

  /** The error a failed task becomes for the caller. */
  private taskFailure(failure: unknown, signal: AbortSignal | undefined, what: string): unknown {
    if (signal?.aborted) return errors.aborted(signal.reason);
    if (this.closed) return errors.closed(); // close() ended the pool under this call
    if (failure instanceof RetNetError) return failure;
    const msg = (failure as Error)?.message ?? String(failure);
    return errors.worker(`a chunk worker failed during ${what}: ${msg}; the call was abandoned (the pool replaces dead workers, so the next call can proceed)`, failure);
  }
}

/** Index of the first NaN or ±Inf in `v`, or -1. A function of its own: inside the long async
 *  runWindows the same loop was left unoptimized in some calls (7–11 ms instead of 0.3 ms per
 *  512 × 512 slab, measured on the seed model at L = 4,096). */
function firstNonFinite(v: Float32Array): number {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return i;
  return -1;
}

export async function createWasmExecutor(opts: { workers?: number; kernels?: KernelsRequest; precision?: Precision }): Promise<WasmExecutor> {
  return WasmExecutor.create(opts);
}

/** Resolve a kernels request to an engine: 'auto' falls back to WASM (with a note) when no BLAS loads.
 *  At precision 'bf16', 'auto' takes oneDNN where it loads and the CPU has bfloat16 dot products
 *  (its bf16 matmul is emulated, slower than the float32 GEMM, elsewhere), else the rounding fallback
 *  on the engine 'auto' would pick at 'f32' (with a note saying why). */
async function chooseEngine(req: KernelsRequest, precision: Precision): Promise<EngineSpec & { note?: string; dispatch?: string }> {
  // oneDNN: at 'bf16' where dnnlForBf16 says so; at 'f32' only when asked for ('auto' keeps BLAS, whose
  // bits the f32 results have; E_ENGINE when it does not load)
  let dnnlNote: string | undefined;
  if (precision === 'bf16' || req === 'dnnl') {
    const { dnnlForBf16, dnnlImplFor } = await import('./dnnl-kernels.js');
    let lib: DnnlLibrary | null;
    if (precision === 'f32') lib = (await import('./dnnl.js')).loadDnnl(envValue('RETNET_DNNL'));
    else ({ lib, why: dnnlNote } = dnnlForBf16(req));
    if (lib) {
      const base = await chooseEngine('auto', 'f32');
      const notes = [base.note, precision === 'bf16' && !lib.hasBf16Hardware ? `this CPU has no bfloat16 dot products (oneDNN dispatches to ${lib.isa}); the dnnl engine emulates them` : undefined].filter(Boolean);
      return {
        which: 'dnnl', dnnlPath: lib.path, precision, ...(base.which === 'blas' ? { blasPath: base.blasPath } : {}),
        dispatch: `${lib.label}: ${dnnlImplFor(256, 256, 256, lib.path, precision)}`,
        ...(notes.length ? { note: notes.join('; ') } : {}),
      };
    }
  }
  const withNote = (e: EngineSpec & { note?: string }) => {
    const notes = [e.note, dnnlNote].filter(Boolean);
    return { ...e, ...(precision === 'bf16' ? { precision } : {}), ...(notes.length ? { note: notes.join('; ') } : {}) };
  };
  if (req === 'js' || req === 'wasm') return withNote({ which: req });
  const { loadBlas } = await import('./blas-kernels.js');
  try {
    const lib = loadBlas();
    return withNote({ which: 'blas', blasPath: lib.path, ...(lib.note ? { note: lib.note } : {}) });
  } catch (e) {
    if (req === 'blas') throw e;
    return withNote({ which: 'wasm', note: `BLAS engine unavailable: ${(e as Error).message}` });
  }
}
