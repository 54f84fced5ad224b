// The model layer: RetNet and MultiScaleRetention. Knows the architecture,
// not where the arithmetic runs: each forward resolves its options and hands
// the work to a backend.
import { errors } from '../errors.js';
import { readSafetensors, writeSafetensors } from '../safetensors.js';
import { Tensor } from '../tensor.js';
import { kernelsFromEnv, resolveOptions, throwIfAborted, type BackendName, type KernelsRequest, type ForwardOptions, type ResolvedOptions } from '../options.js';
import { dimsOf, resolveConfig, type Dims, type RetNetConfig } from './config.js';
import {
  checkUnexpected, configToMetadata, initLayers, initMSR, layersFromCheckpoint, layersToTensors,
  type Checkpoint, type LayerWeights, type LoadOptions, type MSRWeights,
} from './weights.js';
import * as js from '../backends/js.js';
import '../backends/register.js';
import { WasmStepper } from '../runtime/stepper.js';
import { createExecutor, hasExecutor, type BackendInfo, type Executor, type ForwardRequest, type ModelSpec, type RowSink, type RowSource } from '../backends/executor.js';
import type { ActName, RetentionFlags } from '../reference/ops.js';
import { Rng } from '../random.js';

export const DEFAULT_BACKEND: BackendName = 'wasm';

/** Check x is [B, L, d] with finite values; returns B, L. */
export function checkInput(x: unknown, d: number, what = 'x'): { B: number; L: number } {
  if (!(x instanceof Tensor)) throw errors.input(`${what} must be a Tensor of shape [batch, length, ${d}]`);
  if (x.rank !== 3) throw errors.input(`${what} must have shape [batch, length, ${d}] (got [${x.shape.join(', ')}])`);
  const [B, L, w] = x.shape;
  if (w !== d) throw errors.input(`${what} has width ${w} but the model's dimModel is ${d} (shape [${x.shape.join(', ')}])`);
  if (B < 1 || L < 1) throw errors.input(`${what} must have batch ≥ 1 and length ≥ 1 (got [${x.shape.join(', ')}])`);
  const data = x.data;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const b = Math.floor(i / (L * d)), t = Math.floor(i / d) % L, c = i % d;
      throw errors.input(`${what} has a non-finite value ${data[i]} at [${b}, ${t}, ${c}]`);
    }
  }
  return { B, L };
}

const flagsOf = (o: { normalizeAttn: boolean; normalizeRetn: boolean }): RetentionFlags => ({ normalizeAttn: o.normalizeAttn, normalizeRetn: o.normalizeRetn });

/** Run `perSeq` on each sequence of a [B, L, d] input (float64 js path). */
async function mapSequences(x: Tensor, L: number, d: number, dOut: number, r: ResolvedOptions, perSeq: (xs: Float64Array) => Float64Array): Promise<Tensor> {
  const B = x.shape[0];
  const out = new Float64Array(B * L * dOut);
  for (let b = 0; b < B; b++) {
    throwIfAborted(r.signal);
    const xs = Float64Array.from(x.data.subarray(b * L * d, (b + 1) * L * d));
    out.set(perSeq(xs), b * L * dOut);
    await Promise.resolve();
  }
  return new Tensor(out, [B, L, dOut]);
}

/** Executors a model has started, one per backend, created on first use and
 *  ended by close(). */
class ExecutorSet {
  private readonly running = new Map<string, Promise<Executor>>();

  /** One executor per backend (for wasm: per kernel engine requested). */
  get(name: BackendName, workers: number | undefined, kernels: KernelsRequest = kernelsFromEnv()): Promise<Executor> {
    const key = name === 'wasm' ? `${name}:${kernels}` : name;
    let e = this.running.get(key);
    if (!e) {
      if (!hasExecutor(name)) throw errors.engine(`backend '${name}' is not available in this build; use backend: 'js'`);
      e = createExecutor(name, { workers, kernels });
      e.catch(() => this.running.delete(key));
      this.running.set(key, e);
    }
    return e;
  }

  info(): Promise<BackendInfo[]> {
    return Promise.all([...this.running.values()].map(async (e) => (await e).info()));
  }

  async close(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.allSettled(all.map(async (e) => (await e).close()));
  }
}

function request(mode: ForwardRequest['mode'], r: ResolvedOptions, onProgress?: ForwardRequest['onProgress']): ForwardRequest {
  return { mode, plan: r.plan, flags: flagsOf(r), stateDtype: r.stateDtype, signal: r.signal, workers: r.workers, windowRows: r.windowRows, onProgress };
}

export type StreamOptions = ForwardOptions & { onProgress?: ForwardRequest['onProgress'] };

/** The shared body of every whole-tensor forward: validate, then hand the work
 *  to the backend's executor, or run `jsSeq` (float64) on each sequence. */
async function dispatch(
  executors: ExecutorSet, spec: ModelSpec, mode: ForwardRequest['mode'], x: Tensor, dOut: number, options: StreamOptions,
  jsSeq: (xs: Float64Array, L: number, plan: ReturnType<ResolvedOptions['plan']>, flags: RetentionFlags) => Float64Array,
): Promise<Tensor> {
  const r = resolveOptions(options, { backend: DEFAULT_BACKEND });
  const d = spec.dims.d;
  const { L } = checkInput(x, d);
  throwIfAborted(r.signal);
  if (r.backend !== 'js') {
    const ex = await executors.get(r.backend, r.workers, r.kernels);
    return ex.forward(spec, x, request(mode, r, options.onProgress));
  }
  const plan = r.plan(L);
  return mapSequences(x, L, d, dOut, r, (xs) => jsSeq(xs, L, plan, flagsOf(r)));
}

/** Sequences of any lengths through a backend, streamed from `source` to `sink`. */
async function streamThrough(
  executors: ExecutorSet, spec: ModelSpec, mode: 'retnet' | 'msr', d: number, source: RowSource, sink: RowSink, options: StreamOptions,
  jsSeq: (xs: Float64Array, L: number, plan: ReturnType<ResolvedOptions['plan']>, flags: RetentionFlags) => Float64Array,
): Promise<void> {
  const r = resolveOptions(options, { backend: DEFAULT_BACKEND });
  if (!Array.isArray(source.lengths) || !source.lengths.every((L) => Number.isInteger(L) && L >= 1)) {
    throw errors.input(`source.lengths must be positive integers (got ${JSON.stringify(source.lengths)})`);
  }
  throwIfAborted(r.signal);
  const ex = r.backend === 'js' ? null : await executors.get(r.backend, r.workers, r.kernels);
  if (ex?.run) return ex.run(spec, source, sink, request(mode, r, options.onProgress));
  // Per sequence: the js backend (float64), or an executor without streaming.
  const total = source.lengths.reduce((a, b) => a + b, 0);
  let done = 0;
  for (let seq = 0; seq < source.lengths.length; seq++) {
    throwIfAborted(r.signal);
    const L = source.lengths[seq];
    const buf = new Float32Array(L * d);
    source.read(seq, 0, buf);
    for (let i = 0; i < buf.length; i++) if (!Number.isFinite(buf[i])) throw errors.input(`sequence ${seq} has a non-finite value ${buf[i]} at [${Math.floor(i / d)}, ${i % d}]`);
    let y: Float32Array;
    if (ex) y = (await ex.forward(spec, new Tensor(buf, [1, L, d]), request(mode, r))).data as Float32Array;
    else y = Float32Array.from(jsSeq(Float64Array.from(buf), L, r.plan(L), flagsOf(r)));
    sink.write(seq, 0, y);
    done += L;
    options.onProgress?.(done, total);
  }
}

/** Tensors [L_i, d] (or [1, L_i, d]) of different lengths → outputs of the same shapes. */
async function ragged(xs: Tensor[], d: number, run: (source: RowSource, sink: RowSink) => Promise<void>): Promise<Tensor[]> {
  if (!Array.isArray(xs) || xs.length === 0) throw errors.input('forwardRagged needs a non-empty array of Tensors');
  const seqs = xs.map((x, i) => {
    if (!(x instanceof Tensor) || !((x.rank === 2 && x.shape[1] === d) || (x.rank === 3 && x.shape[0] === 1 && x.shape[2] === d))) {
      throw errors.input(`sequence ${i} must be a Tensor [length, ${d}] or [1, length, ${d}] (got ${x instanceof Tensor ? `[${x.shape.join(', ')}]` : typeof x})`);
    }
    checkInput(new Tensor(x.data, [1, x.size / d, d]), d, `sequence ${i}`);
    return x;
  });
  const outs = seqs.map((x) => new Float32Array(x.size));
  await run(
    { lengths: seqs.map((x) => x.size / d), read: (seq, start, into) => { const src = seqs[seq].data; for (let i = 0; i < into.length; i++) into[i] = src[start * d + i]; } },
    { write: (seq, start, rows) => outs[seq].set(rows, start * d) },
  );
  return outs.map((o, i) => new Tensor(o, seqs[i].shape));
}

// ---------------------------------------------------------------- recurrent state

/** State for token-by-token use: per layer and sequence, S [H, dk, dv] and z [H, dk] in float64. */
export interface RecurrentState {
  /** absolute position of the next token */
  pos: number;
  batch: number;
  /** layers[l][b] */
  layers: js.LayerState[][];
}

export interface StepOptions {
  normalizeAttn?: boolean;
  normalizeRetn?: boolean;
  /** 'js' (default): float64 throughout. 'wasm': the WASM kernels in the calling thread, float32
   *  activations with the state updated in float64 — much faster for decoding. */
  backend?: 'js' | 'wasm';
}

function checkStepInput(x: unknown, d: number, batch: number | undefined): number {
  if (!(x instanceof Tensor) || x.rank !== 2 || x.shape[1] !== d) {
    throw errors.input(`step input must be a Tensor of shape [batch, ${d}] (got ${x instanceof Tensor ? `[${x.shape.join(', ')}]` : typeof x})`);
  }
  if (batch !== undefined && x.shape[0] !== batch) throw errors.input(`step input has batch ${x.shape[0]} but the state was made for batch ${batch}`);
  for (let i = 0; i < x.data.length; i++) if (!Number.isFinite(x.data[i])) throw errors.input(`step input has a non-finite value ${x.data[i]} at [${Math.floor(i / d)}, ${i % d}]`);
  return x.shape[0];
}

// ---------------------------------------------------------------- RetNet

export class RetNet {
  readonly config: RetNetConfig;
  readonly dims: Dims;
  readonly layers: LayerWeights[];
  private closed = false;
  private readonly executors = new ExecutorSet();
  private readonly spec: ModelSpec;
  private stepper: WasmStepper | undefined;

  constructor(config: RetNetConfig, layers: LayerWeights[]) {
    this.config = resolveConfig(config);
    this.dims = dimsOf(this.config);
    if (layers.length !== this.config.numLayer) throw errors.weights(`config says ${this.config.numLayer} layers but ${layers.length} were given`);
    this.layers = layers;
    this.spec = { config: this.config, dims: this.dims, layers };
  }

  /** A seeded random model with the seed's defaults for anything not given. */
  static init(config: Partial<RetNetConfig> & { seed?: number } = {}): RetNet {
    const { seed = 0, ...rest } = config;
    const c = resolveConfig(rest);
    return new RetNet(c, initLayers(c, seed));
  }

  /** Load a checkpoint with the seed's PyTorch state_dict names. */
  static async load(path: string, options: LoadOptions = {}): Promise<RetNet> {
    const { tensors, metadata } = readSafetensors(path);
    return RetNet.fromCheckpoint({ tensors, metadata, label: path }, options);
  }

  static fromCheckpoint(ck: Checkpoint, options: LoadOptions = {}): RetNet {
    const { config, layers, used } = layersFromCheckpoint(ck, '', options);
    checkUnexpected(ck, used);
    return new RetNet(config, layers);
  }

  /** Write the weights as safetensors with the seed's names (config in __metadata__). */
  save(path: string): void {
    writeSafetensors(path, layersToTensors(this.layers, this.dims), { config: configToMetadata(this.config, this.dims) });
  }

  get acts(): { msr: ActName; mlp: ActName } { return { msr: this.config.msrGateFn, mlp: this.config.mlpGateFn }; }

  /** x [B, L, d] → [B, L, d] (float64 on the js backend, float32 elsewhere). */
  async forward(x: Tensor, options: StreamOptions = {}): Promise<Tensor> {
    if (this.closed) throw errors.closed();
    return dispatch(this.executors, this.spec, 'retnet', x, this.dims.d, options,
      (xs, L, plan, flags) => js.retnetForward(this.layers, this.dims, this.acts, xs, L, plan, flags));
  }


  /** Sequences of any lengths, streamed: rows are read from `source` and
   *  written to `sink` window by window, so memory stays bounded whatever the
   *  lengths (wasm backend; other backends run sequence by sequence). */
  async forwardStream(source: RowSource, sink: RowSink, options: StreamOptions = {}): Promise<void> {
    if (this.closed) throw errors.closed();
    return streamThrough(this.executors, this.spec, 'retnet', this.dims.d, source, sink, options,
      (xs, L, plan, flags) => js.retnetForward(this.layers, this.dims, this.acts, xs, L, plan, flags));
  }

  /** A ragged batch: sequences of different lengths in one call, no padding. */
  async forwardRagged(xs: Tensor[], options: StreamOptions = {}): Promise<Tensor[]> {
    return ragged(xs, this.dims.d, (src, sink) => this.forwardStream(src, sink, options));
  }

  /** Engines and devices of the backends this model has used so far. */
  backendInfo(): Promise<BackendInfo[]> { return this.executors.info(); }

  /** The running executor of a backend (for tests and tools). */
  executor(name: BackendName): Promise<Executor> { return this.executors.get(name, undefined); }

  /** A zero state for `batch` sequences, at position 0. */
  initState(batch = 1): RecurrentState {
    if (!Number.isInteger(batch) || batch < 1) throw errors.option('batch', 'a positive integer', batch);
    return { pos: 0, batch, layers: this.layers.map(() => Array.from({ length: batch }, () => js.zeroLayerState(this.dims))) };
  }

  /** One token per sequence: x [B, d] → y [B, d], advancing `state` (created if omitted) in place. */
  step(x: Tensor, state?: RecurrentState, options: StepOptions = {}): { y: Tensor; state: RecurrentState } {
    if (this.closed) throw errors.closed();
    const B = checkStepInput(x, this.dims.d, state?.batch);
    const st = state ?? this.initState(B);
    const { backend = 'js', ...rest } = options;
    if (backend !== 'js' && backend !== 'wasm') throw errors.option('backend', "'js' or 'wasm' for step", backend);
    const flags = flagsOf(resolveOptions(rest, { backend: 'js' }));
    const d = this.dims.d;
    if (backend === 'wasm') {
      this.stepper ??= new WasmStepper(this.spec);
      const yw = this.stepper.step(x.data, B, st.pos, st.layers, flags);
      st.pos += 1;
      return { y: new Tensor(yw, [B, d]), state: st };
    }
    const y = new Float64Array(B * d);
    for (let b = 0; b < B; b++) {
      const h = Float64Array.from(x.data.subarray(b * d, (b + 1) * d));
      this.layers.forEach((lw, l) => {
        const m = js.msrStep(lw.msr, this.dims, this.acts.msr, h, st.pos, st.layers[l][b], flags);
        for (let i = 0; i < d; i++) h[i] += m[i];
        const f = js.mlpForward(lw.mlp, this.dims, this.acts.mlp, h, 1);
        for (let i = 0; i < d; i++) h[i] += f[i];
      });
      y.set(h, b * d);
    }
    st.pos += 1;
    return { y: new Tensor(y, [B, d]), state: st };
  }

  /** Ends any worker threads the model started. Idempotent. */
  async close(): Promise<void> { this.closed = true; this.stepper = undefined; await this.executors.close(); }
}

// ---------------------------------------------------------------- MultiScaleRetention

export interface MSRConfig { dimModel: number; numHeads: number; valueFactor: number; gateFn: ActName }

/** One multi-scale retention layer, usable on its own (no residual, as in the seed). */
export class MultiScaleRetention {
  readonly config: MSRConfig;
  readonly dims: Dims;
  readonly weights: MSRWeights;
  private closed = false;
  private readonly executors = new ExecutorSet();
  private readonly spec: ModelSpec;

  constructor(config: MSRConfig, weights: MSRWeights) {
    this.config = config;
    const rc = resolveConfig({ numLayer: 1, dimModel: config.dimModel, numHeads: config.numHeads, valueFactor: config.valueFactor, msrGateFn: config.gateFn });
    this.dims = dimsOf(rc);
    this.weights = weights;
    // A one-layer spec whose MLP is never run (mode 'msr').
    this.spec = { config: rc, dims: this.dims, layers: [{ msr: weights, mlp: { norm: weights.preNorm, linears: [] } }] };
  }

  static init(config: Partial<MSRConfig> & { seed?: number } = {}): MultiScaleRetention {
    const c: MSRConfig = { dimModel: 512, numHeads: 8, valueFactor: 2, gateFn: 'gelu', ...config };
    const dims = dimsOf(resolveConfig({ numLayer: 0, dimModel: c.dimModel, numHeads: c.numHeads, valueFactor: c.valueFactor, msrGateFn: c.gateFn }));
    return new MultiScaleRetention(c, initMSR(new Rng(config.seed ?? 0), dims));
  }

  /** Layer `index` of a RetNet as a standalone MSR. */
  static fromRetNet(model: RetNet, index = 0): MultiScaleRetention {
    const c = model.config;
    if (!(index >= 0 && index < c.numLayer)) throw errors.option('index', `a layer index in [0, ${c.numLayer})`, index);
    return new MultiScaleRetention({ dimModel: c.dimModel, numHeads: c.numHeads, valueFactor: c.valueFactor, gateFn: c.msrGateFn }, model.layers[index].msr);
  }

  /** x [B, L, d] → y [B, L, d]. */
  async forward(x: Tensor, options: StreamOptions = {}): Promise<Tensor> {
    if (this.closed) throw errors.closed();
    return dispatch(this.executors, this.spec, 'msr', x, this.dims.d, options,
      (xs, L, plan, flags) => js.msrForward(this.weights, this.dims, this.config.gateFn, xs, L, plan, flags));
  }


  /** DESIGN.md §1 step 5's output o [B, L, H·dv] (heads concatenated), before
   *  the group norm — where the normalisations and chunk-count drift show. */
  async retentionOutput(x: Tensor, options: StreamOptions = {}): Promise<Tensor> {
    if (this.closed) throw errors.closed();
    return dispatch(this.executors, this.spec, 'retention', x, this.dims.H * this.dims.dv, options, (xs, L, plan, flags) =>
      js.retentionAllHeads(js.projectMSR(this.weights, this.dims, xs, L, 0), L, this.dims, this.weights.decay, plan, flags));
  }


  /** See RetNet.forwardStream. */
  async forwardStream(source: RowSource, sink: RowSink, options: StreamOptions = {}): Promise<void> {
    if (this.closed) throw errors.closed();
    return streamThrough(this.executors, this.spec, 'msr', this.dims.d, source, sink, options,
      (xs, L, plan, flags) => js.msrForward(this.weights, this.dims, this.config.gateFn, xs, L, plan, flags));
  }

  async forwardRagged(xs: Tensor[], options: StreamOptions = {}): Promise<Tensor[]> {
    return ragged(xs, this.dims.d, (src, sink) => this.forwardStream(src, sink, options));
  }

  backendInfo(): Promise<BackendInfo[]> { return this.executors.info(); }

  executor(name: BackendName): Promise<Executor> { return this.executors.get(name, undefined); }

  async close(): Promise<void> { this.closed = true; await this.executors.close(); }
}

// ---------------------------------------------------------------- retention alone

/** DESIGN.md §1 step 5 alone: q, k [B, H, L, dk], v [B, H, L, dv], decay [H] → o [B, H, L, dv]
 *  (float64, js backend), before the group norm. */
export function retention(
  q: Tensor, k: Tensor, v: Tensor, decay: ArrayLike<number>,
  options: Pick<ForwardOptions, 'numChunks' | 'chunkSize' | 'normalizeAttn' | 'normalizeRetn'> = {},
): Tensor {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw errors.input('retention: q, k, v must be [B, H, L, width]');
  const [B, H, L, dk] = q.shape;
  const dv = v.shape[3];
  if (k.shape.join() !== q.shape.join()) throw errors.input(`retention: k shape [${k.shape.join(', ')}] differs from q [${q.shape.join(', ')}]`);
  if (v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== L) throw errors.input(`retention: v shape [${v.shape.join(', ')}] does not match q [${q.shape.join(', ')}]`);
  if (decay.length !== H) throw errors.input(`retention: decay has ${decay.length} entries for ${H} heads`);
  const r = resolveOptions(options, { backend: 'js' });
  const plan = r.plan(L);
  const out = new Float64Array(B * H * L * dv);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const bh = b * H + h;
    const o = js.retentionHead(
      Float64Array.from(q.data.subarray(bh * L * dk, (bh + 1) * L * dk)),
      Float64Array.from(k.data.subarray(bh * L * dk, (bh + 1) * L * dk)),
      Float64Array.from(v.data.subarray(bh * L * dv, (bh + 1) * L * dv)),
      L, dk, dv, Math.exp(decay[h]), plan, flagsOf(r),
    );
    out.set(o, bh * L * dv);
  }
  return new Tensor(out, [B, H, L, dv]);
}
