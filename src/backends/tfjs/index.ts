// The `tfjs` executor (main-thread side): owns one worker thread that runs
// TensorFlow.js (workers/tfjs-worker.ts), talks to it through comlink, uploads
// each model's weights once (WeakMap keyed by the ModelSpec), and turns a dead
// worker into an E_WORKER rejection followed by a fresh worker on the next call.
//
// Engine: RETNET_TFJS_ENGINE=tfjs-node-gpu|webgpu|tfjs-node|wasm|cpu, or the `engine`
// option of createTfjsExecutor; otherwise the first that loads in that order
// ('webgpu' only on a real GPU adapter: a software one is used only when named).
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../worker-argv.js';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { errors, RetNetError } from '../../errors.js';
import { Turns } from '../../runtime/turns.js';
import { Tensor } from '../../tensor.js';
import type { BackendInfo, Executor, ForwardRequest, ModelSpec } from '../executor.js';
import type { ForwardArgs, WireLinear, WireModel, WireNorm } from './compute.js';
import { DEFAULT_WINDOW_ELEMS, ENGINE_ENV, TFJS_ENGINES, gpuAdvice, installHint, type AdapterInfo, type EngineFailure, type EngineInfo, type TfjsEngine } from './engines.js';
import type { TfjsWorkerApi } from '../../../workers/tfjs-worker.js';
import { Bf16Matrix } from '../../model/bf16.js';
import type { LinearW } from '../../model/weights.js';
import { envValue } from '../../env.js';

export { TFJS_ENGINES, ENGINE_ENV, type TfjsEngine, type AdapterInfo } from './engines.js';

/** backendInfo() of the tfjs backend: the engine, its device (webgpu: the adapter, named), and
 *  the engines the automatic choice passed over, each with its reason. */
export interface TfjsBackendInfo extends BackendInfo {
  tfBackend?: string; tfjsVersion?: string;
  skipped: { engine: TfjsEngine; reason: string }[];
  adapter?: AdapterInfo;
}

export interface TfjsExecutorOptions {
  workers?: number;
  /** Engine to use; default: $RETNET_TFJS_ENGINE, else 'auto' (first that loads). */
  engine?: TfjsEngine | 'auto';
  /** Bound on the elements of the largest per-window device intermediate (default 2^24). */
  windowElems?: number;
}

const WORKER_URL = new URL('../../../workers/tfjs-worker.js', import.meta.url);

function engineChoice(opt: TfjsExecutorOptions['engine']): TfjsEngine | 'auto' {
  const raw = opt ?? envValue(ENGINE_ENV) ?? 'auto';
  if (raw === 'auto' || (TFJS_ENGINES as readonly string[]).includes(raw)) return raw as TfjsEngine | 'auto';
  const where = opt !== undefined ? 'options.engine' : `environment variable ${ENGINE_ENV}`;
  throw errors.engine(`${where} must be one of ${TFJS_ENGINES.join(', ')} or auto (got ${JSON.stringify(raw)})`);
}

function engineError(choice: TfjsEngine | 'auto', failures: EngineFailure[]): Error {
  if (choice !== 'auto') {
    const f = failures[0];
    return errors.engine(`tfjs engine '${choice}' is not available: ${f?.reason ?? 'unknown reason'}` +
      (f?.notInstalled === false && choice === 'webgpu' ? '' : `; ${installHint(choice)}`) +
      (choice === 'tfjs-node-gpu' ? `; or pick another engine with ${ENGINE_ENV}=webgpu|tfjs-node|wasm|cpu` : ''));
  }
  return errors.engine(`no TensorFlow.js engine could be loaded (${failures.map((f) => `${f.engine}: ${f.reason}`).join('; ')}); ` +
    `for the CPU, ${installHint('cpu')}; ${gpuAdvice()}`);
}

/** One live worker and what was uploaded to it. */
interface Conn {
  worker: Worker;
  remote: Comlink.Remote<TfjsWorkerApi>;
  /** Rejects with E_WORKER when the worker errors or exits. */
  dead: Promise<never>;
  isDead: boolean;
  info: EngineInfo;
  ids: WeakMap<ModelSpec, number>;
  inFlight: number;
}

let nextId = 1;

/** Largest [B·H, C, C] score tensor the tfjs backend builds (bytes), unless the engine
 *  reports a smaller bound (webgpu: the adapter's maxStorageBufferBindingSize / maxBufferSize). */
export const MAX_SCORE_BYTES = 512 * 2 ** 20;

/** A device failure the worker reports (webgpu: lost device, out of memory): the worker throws
 *  an Error named 'EngineFault' (see src/backends/tfjs/webgpu.ts); comlink keeps the name. */
const isEngineFault = (e: unknown): boolean => (e as Error)?.name === 'EngineFault';

export class TfjsExecutor implements Executor {
  readonly name = 'tfjs' as const;
  private conn: Conn | undefined;
  private starting: Promise<Conn> | undefined;
  private closed = false;
  private lastInfo: EngineInfo | undefined;
  private readonly choice: TfjsEngine | 'auto';
  private readonly windowElems: number | undefined;
  /** Tells the worker to drop a model's weights once its spec is garbage. */
  private readonly finalizer = new FinalizationRegistry<{ conn: Conn; id: number }>(({ conn, id }) => {
    if (!conn.isDead) conn.remote.release(id).catch(() => {});
  });

  constructor(opts: TfjsExecutorOptions = {}) {
    this.choice = engineChoice(opts.engine);
    this.windowElems = opts.windowElems;
  }

  /** Start the worker and load the engine (rejects with E_ENGINE when it cannot). */
  async start(): Promise<void> { await this.connection(); }

  private connection(): Promise<Conn> {
    if (this.closed) return Promise.reject(errors.closed());
    if (this.conn && !this.conn.isDead) return Promise.resolve(this.conn);
    this.starting ??= this.spawn().finally(() => { this.starting = undefined; });
    return this.starting;
  }

  private async spawn(): Promise<Conn> {
    // Only the parent's flags a Worker accepts (see worker-argv.ts).
    const worker = startWorker(WORKER_URL);
    worker.unref(); // only calls in flight keep the process alive (see call())
    const remote = Comlink.wrap<TfjsWorkerApi>(nodeEndpoint(worker as unknown as Parameters<typeof nodeEndpoint>[0]));
    let conn!: Conn;
    const dead = new Promise<never>((_, reject) => {
      worker.once('error', (e) => { if (conn) conn.isDead = true; reject(errors.worker(`the tfjs worker failed: ${e.message}`, e)); });
      worker.once('exit', (code) => { if (conn) conn.isDead = true; reject(errors.worker(`the tfjs worker exited (code ${code})`)); });
    });
    dead.catch(() => {});
    conn = { worker, remote, dead, isDead: false, info: undefined as unknown as EngineInfo, ids: new WeakMap(), inFlight: 0 };
    try {
      const r: EngineInfo | { failures: EngineFailure[] } = await this.call(conn, () => remote.init(this.choice) as Promise<EngineInfo | { failures: EngineFailure[] }>);
      if ('failures' in r) throw engineError(this.choice, r.failures);
      conn.info = r;
      this.lastInfo = r;
    } catch (e) {
      conn.isDead = true;
      await worker.terminate();
      throw e;
    }
    this.conn = conn;
    return conn;
  }

  /** Run a remote call; rejects with E_WORKER if the worker dies, E_ABORTED if `signal` fires. */
  private async call<R>(conn: Conn, fn: () => Promise<R>, signal?: AbortSignal): Promise<R> {
    if (conn.inFlight++ === 0) conn.worker.ref();
    let onAbort: (() => void) | undefined;
    try {
      const races: Promise<R>[] = [fn(), conn.dead];
      if (signal) {
        races.push(new Promise<never>((_, reject) => {
          onAbort = () => {
            reject(errors.aborted(signal.reason));
            // The worker is busy with the aborted work: end it; the next call starts a fresh one.
            conn.isDead = true;
            void conn.worker.terminate();
          };
          if (signal.aborted) onAbort(); else signal.addEventListener('abort', onAbort, { once: true });
        }));
      }
      return await Promise.race(races);
    } catch (e) {
      // close() ended the worker under this call: say so, not "the worker exited".
      throw this.closed && !(e instanceof RetNetError && e.code === 'E_ABORTED') ? errors.closed() : e;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      if (--conn.inFlight === 0 && !conn.isDead) conn.worker.unref();
    }
  }

  async forward(spec: ModelSpec, x: Tensor, req: ForwardRequest): Promise<Tensor> {
    return this.execute(spec, x, req, req.mode);
  }

  /** Debug/tests: layer 0's retention output o (after the normalisations, before the
   *  group norm) as [B, L, H·dv] — where the normalisations are visible. */
  debugRetention(spec: ModelSpec, x: Tensor, req: ForwardRequest): Promise<Tensor> {
    return this.execute(spec, x, req, 'retention');
  }

  /** One forward at a time in the worker: an abort ends the worker (it is busy with the aborted work),
   *  which must not take another caller's forward with it (before: a concurrent, unaborted call failed
   *  with "the tfjs worker exited"). A call waiting its turn is rejected at once if its signal aborts. */
  private execute(spec: ModelSpec, x: Tensor, req: ForwardRequest, mode: ForwardArgs['mode']): Promise<Tensor> {
    return this.turns.run(() => this.executeNow(spec, x, req, mode), req.signal);
  }
  private readonly turns = new Turns(() => this.closed);

  private async executeNow(spec: ModelSpec, x: Tensor, req: ForwardRequest, mode: ForwardArgs['mode']): Promise<Tensor> {
    if (req.signal?.aborted) throw errors.aborted(req.signal.reason);
    const [B, L, d] = x.shape;
    const conn = await this.connection();
    // One chunk's score tensor is [B·H, C, C]: refuse, naming the size, before the engine
    // runs out of memory (tfjs-backend-wasm's heap faults with 'memory access out of bounds';
    // a WebGPU buffer cannot exceed the adapter's limits, so there the other one-chunk
    // tensors are checked against them too).
    const C0 = req.plan(L).form === 'recurrent' ? 1 : req.plan(L).chunkSize;
    const scoreBytes = B * spec.dims.H * C0 * C0 * 4;
    const limit = Math.min(MAX_SCORE_BYTES, conn.info.maxTensorBytes ?? Infinity);
    const what = limit < MAX_SCORE_BYTES ? `the ${fmtMiB(limit)} MiB limit (the WebGPU adapter's largest storage buffer)` : `the ${fmtMiB(limit)} MiB limit`;
    if (scoreBytes > limit) {
      throw errors.memory(`tfjs: ${C0} tokens per chunk need a [${B * spec.dims.H}, ${C0}, ${C0}] score tensor (${(scoreBytes / 2 ** 30).toFixed(2)} GiB), over ${what}; use more chunks or a smaller chunkSize`);
    }
    let windowElems = this.windowElems;
    if (conn.info.maxTensorBytes !== undefined) {
      const { d, H, dv, dqk, hidden, arch } = spec.dims;
      const widest = Math.max(2 * dqk + 2 * H * dv, ...hidden.map((w) => (arch.mlp === 'swiglu' ? 2 * w : w)), d);
      const rowBytes = B * Math.min(C0, L) * widest * 4; // [B·C, widest]: the widest projection of one chunk
      if (rowBytes > limit) {
        throw errors.memory(`tfjs: ${B}×${Math.min(C0, L)} tokens per chunk need a [${B * Math.min(C0, L)}, ${widest}] projection (${fmtMiB(rowBytes)} MiB), over ${what}; use a smaller batch, more chunks or a smaller chunkSize`);
      }
      // and no window may hold a bigger tensor than one buffer can
      windowElems = Math.min(windowElems ?? DEFAULT_WINDOW_ELEMS, Math.floor(limit / 4));
    }
    let id = conn.ids.get(spec);
    if (id === undefined) {
      id = nextId++;
      const wire = toWire(spec);
      try {
        await this.call(conn, () => conn.remote.upload(id!, wire), req.signal);
      } catch (e) { throw this.fault(conn, e, 'uploading the weights'); }
      conn.ids.set(spec, id);
      this.finalizer.register(spec, { conn, id });
    }
    const plan = req.plan(L);
    const data = x.data instanceof Float32Array ? x.data.slice() : Float32Array.from(x.data);
    const args: ForwardArgs = {
      x: data, B, L, mode, chunkSize: plan.form === 'recurrent' ? 1 : plan.chunkSize,
      flags: { ...req.flags }, stateDtype: req.stateDtype, windowElems,
    };
    const progress = req.onProgress;
    const cb = progress ? Comlink.proxy((done: number) => progress(done, B * L)) : undefined;
    let out: Float32Array;
    try {
      out = await this.call(conn, () => conn.remote.forward(id!, Comlink.transfer(args, [data.buffer]), cb), req.signal);
    } catch (e) { throw this.fault(conn, e, 'during the forward'); }
    return new Tensor(out, [B, L, mode === 'retention' ? spec.dims.H * spec.dims.dv : d]);
  }

  /** An engine fault (not our own validation error) may leave the engine unusable: end the
   *  worker so the next call starts a fresh one. A device failure becomes E_ENGINE with its reason. */
  private fault(conn: Conn, e: unknown, when: string): unknown {
    if (e instanceof RetNetError) return e;
    if (!conn.isDead) { conn.isDead = true; void conn.worker.terminate(); }
    const msg = (e as Error)?.message ?? String(e);
    if (isEngineFault(e)) return errors.engine(`the tfjs engine '${conn.info.engine}' failed ${when}: ${msg}; its worker was restarted`, e);
    return errors.worker(`the tfjs engine failed ${when}: ${msg}; its worker was restarted`, e);
  }

  info(): TfjsBackendInfo {
    const i = this.lastInfo;
    return {
      backend: 'tfjs', engine: i?.engine ?? 'not started', device: i?.device ?? 'unknown',
      tfBackend: i?.tfBackend, tfjsVersion: i?.version, skipped: i?.skipped ?? [],
      ...(i?.adapter ? { adapter: i.adapter } : {}),
    };
  }

  /** Debug: the worker engine's tensor count (tests check it returns to its baseline). */
  async debugMemory(): Promise<{ numTensors: number; numBytes: number; models: number }> {
    const conn = await this.connection();
    return this.call(conn, () => conn.remote.memory());
  }

  /** Debug: make the worker die, as a crash would: 'exit' asks it to call process.exit
   *  (after its current task), 'kill' stops the thread from outside at once (as an OOM kill). */
  async debugCrash(how: 'exit' | 'kill' = 'exit'): Promise<void> {
    const conn = this.conn && !this.conn.isDead ? this.conn : await this.connection();
    conn.worker.ref(); // keep the process alive until the exit is seen
    if (how === 'kill') void conn.worker.terminate();
    else await conn.remote.crash();
    await conn.dead.catch(() => {});
  }

  /** Debug (engine 'webgpu'): destroy the worker's GPU device, as a GPU reset would lose it.
   *  Resolves to false when the engine has no such device. */
  async debugLoseDevice(): Promise<boolean> {
    const conn = await this.connection();
    return this.call(conn, () => conn.remote.loseDevice());
  }

  async close(): Promise<void> {
    this.closed = true;
    const conn = this.conn ?? await this.starting?.catch(() => undefined);
    this.conn = undefined;
    if (conn && !conn.isDead) {
      conn.isDead = true;
      conn.remote[Comlink.releaseProxy]();
      await conn.worker.terminate();
    }
  }
}

export async function createTfjsExecutor(opts: TfjsExecutorOptions = {}): Promise<TfjsExecutor> {
  const ex = new TfjsExecutor(opts);
  await ex.start();
  return ex;
}

const fmtMiB = (bytes: number): string => String(Math.round(bytes / 2 ** 20 * 100) / 100);

// ---------------------------------------------------------------- weights on the wire

const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
// BF16 weights are widened here (exact): the tfjs worker holds float32 copies of every weight,
// so models beyond TFJS_MAX_WEIGHT_FLOATS are refused (toWire) rather than run out of memory.
const wLin = (l: { W: LinearW; b: ArrayLike<number> | null; inDim: number; outDim: number }): WireLinear =>
  ({ W: l.W instanceof Bf16Matrix ? l.W.toFloat32() : f32(l.W), b: l.b ? f32(l.b) : null, inDim: l.inDim, outDim: l.outDim });
const wNorm = (n: { weight: ArrayLike<number>; bias: ArrayLike<number> }): WireNorm => ({ weight: f32(n.weight), bias: f32(n.bias) });

/** Weight values (float32 on the wire and in the worker) the tfjs backend takes: 2^28 (1 GiB as float32). */
export const TFJS_MAX_WEIGHT_FLOATS = 2 ** 28;

function toWire(spec: ModelSpec): WireModel {
  const n = spec.layers.reduce((a, lw) => a + [lw.msr.q, lw.msr.k, lw.msr.v, lw.msr.g, lw.msr.o, ...lw.mlp.linears].reduce((b, l) => b + l.W.length, 0), 0);
  if (n > TFJS_MAX_WEIGHT_FLOATS) {
    throw errors.memory(`the model has ${n} weight values; the tfjs backend keeps float32 copies of all of them (${(4 * n / 2 ** 30).toFixed(2)} GiB, several times over across its worker) and takes at most ${TFJS_MAX_WEIGHT_FLOATS}; use backend 'wasm', which keeps BF16 weights as BF16`);
  }
  return {
    dims: spec.dims,
    acts: { msr: spec.config.msrGateFn, mlp: spec.config.mlpGateFn },
    layers: spec.layers.map((lw) => ({
      msr: {
        preNorm: wNorm(lw.msr.preNorm), q: wLin(lw.msr.q), k: wLin(lw.msr.k), v: wLin(lw.msr.v), g: wLin(lw.msr.g), o: wLin(lw.msr.o),
        norm: wNorm(lw.msr.norm), angle: Float64Array.from(lw.msr.angle), decay: Float64Array.from(lw.msr.decay),
      },
      mlp: { norm: wNorm(lw.mlp.norm), linears: lw.mlp.linears.map(wLin) },
    })),
  };
}
