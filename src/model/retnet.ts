// The model layer: RetNet and MultiScaleRetention. Knows the architecture,
// not where the arithmetic runs: each forward resolves its options and hands
// the work to a backend.
import { errors } from '../errors.js';
import { readSafetensors, writeSafetensors } from '../safetensors.js';
import { Tensor } from '../tensor.js';
import { OPTION_KEYS, checkKnownKeys, kernelsFromEnv, resolveOptions, stepPrecision, throwIfAborted, type BackendName, type KernelsRequest, type Precision, type StateDtype, type ForwardOptions, type ResolvedOptions } from '../options.js';
import { CONFIG_KEYS, dimsOf, resolveConfig, type Dims, type RetNetConfig } from './config.js';
import {
  checkLayers, checkMSR, checkUnexpected, configToMetadata, initLayers, initMSR, layersFromCheckpoint, layersToTensors, seedLayerNames,
  type Checkpoint, type LayerWeights, type LoadOptions, type MSRWeights,
} from './weights.js';
import * as js from '../backends/js.js';
import '../backends/register.js';
import { WasmStepper } from '../runtime/stepper.js';
import { checkSync, createExecutor, hasExecutor, type BackendInfo, type Executor, type ForwardRequest, type ModelSpec, type RowSink, type RowSource } from '../backends/executor.js';
import { ACTIVATIONS, type ActName, type RetentionFlags } from '../reference/ops.js';
import { Rng } from '../random.js';
import { jsSequence, outWidth, type JsRun } from './js-run.js';
import { describeBad, firstBadValue } from './check.js';

export const DEFAULT_BACKEND: BackendName = 'wasm';

/** Check x is [B, L, d] with finite values; returns B, L. The float32 backends
 *  (every one but 'js') also refuse values beyond float32's range, which would
 *  become ±Infinity there (the js backend computes in float64 and takes them). */
export function checkInput(x: unknown, d: number, what = 'x', backend: BackendName = 'js'): { B: number; L: number } {
  if (!(x instanceof Tensor)) throw errors.input(`${what} must be a Tensor of shape [batch, length, ${d}]`);
  if (x.rank !== 3) throw errors.input(`${what} must have shape [batch, length, ${d}] (got [${x.shape.join(', ')}])`);
  const [B, L, w] = x.shape;
  if (w !== d) throw errors.input(`${what} has width ${w} but the model's dimModel is ${d} (shape [${x.shape.join(', ')}])`);
  if (B < 1 || L < 1) throw errors.input(`${what} must have batch ≥ 1 and length ≥ 1 (got [${x.shape.join(', ')}])`);
  const data = x.data;
  const i = backend === 'js' ? firstNonFinite(data) : firstBadValue(data);
  if (i >= 0) {
    const b = Math.floor(i / (L * d)), t = Math.floor(i / d) % L, c = i % d;
    throw errors.input(`${what} has ${describeBad(data[i], `[${b}, ${t}, ${c}]`, `in which the ${backend} backend computes; use backend 'js' (float64) or rescale the input`)}`);
  }
  return { B, L };
}

function firstNonFinite(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

const flagsOf = (o: { normalizeAttn: boolean; normalizeRetn: boolean }): RetentionFlags => ({ normalizeAttn: o.normalizeAttn, normalizeRetn: o.normalizeRetn });

/** Executors a model has started, one per backend, created on first use and
 *  ended by close(). */
class ExecutorSet {
  private readonly running = new Map<string, Promise<Executor>>();
  /** set by close(): no executor starts after it (before: executor() after close() started a new pool, whose
   *  threads nothing ended) */
  private closed = false;

  /** One executor per backend (for wasm: per kernel engine requested). */
  get(name: BackendName, workers: number | undefined, kernels: KernelsRequest = name === 'wasm' ? kernelsFromEnv() : 'auto', precision: Precision = 'f32'): Promise<Executor> {
    if (this.closed) throw errors.closed();
    const key = name === 'wasm' ? `${name}:${kernels}:${precision}` : name;
    let e = this.running.get(key);
    if (!e) {
      if (!hasExecutor(name)) throw errors.engine(`backend '${name}' is not available in this build; use backend: 'js'`);
      e = createExecutor(name, { workers, kernels, precision });
      e.catch(() => this.running.delete(key));
      this.running.set(key, e);
    }
    return e;
  }

  info(): Promise<BackendInfo[]> {
    return Promise.all([...this.running.values()].map(async (e) => (await e).info()));
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.allSettled(all.map(async (e) => (await e).close()));
  }
}

function request(mode: ForwardRequest['mode'], r: ResolvedOptions, onProgress?: ForwardRequest['onProgress']): ForwardRequest {
  return { mode, plan: r.plan, flags: flagsOf(r), stateDtype: r.stateDtype, signal: r.signal, workers: r.workers, windowRows: r.windowRows, onProgress };
}

/** Options of a forward call: {@link ForwardOptions} plus a progress callback. */
export type StreamOptions = ForwardOptions & {
  /** called as rows are finished (streamed and ragged calls) */
  onProgress?: ForwardRequest['onProgress'];
};

/** How the js path stops: the abort signal, or close() of the model. */
const stopCheck = (r: ResolvedOptions, isClosed: () => boolean) => () => {
  throwIfAborted(r.signal);
  if (isClosed()) throw errors.closed();
};

/** The shared body of every whole-tensor forward: validate, then hand the work
 *  to the backend's executor, or run the float64 reference window by window (js). */
async function dispatch(
  executors: ExecutorSet, spec: ModelSpec, mode: ForwardRequest['mode'], x: Tensor, options: StreamOptions, isClosed: () => boolean,
): Promise<Tensor> {
  const r = resolveOptions(options, { backend: DEFAULT_BACKEND });
  checkArchFlags(spec.dims, options);
  const d = spec.dims.d;
  const { B, L } = checkInput(x, d, 'x', r.backend);
  throwIfAborted(r.signal);
  if (r.backend !== 'js') {
    const ex = await executors.get(r.backend, r.workers, r.kernels, r.precision);
    return ex.forward(spec, x, request(mode, r, options.onProgress));
  }
  const dOut = outWidth(spec, mode);
  const out = new Float64Array(B * L * dOut);
  const run: JsRun = { spec, mode, plan: r.plan(L), flags: flagsOf(r), check: stopCheck(r, isClosed) };
  let done = 0;
  for (let b = 0; b < B; b++) {
    await jsSequence(run, L,
      (start, into) => { const o = (b * L + start) * d; for (let i = 0; i < into.length; i++) into[i] = x.data[o + i]; },
      (start, y) => { out.set(y, (b * L + start) * dOut); done += y.length / dOut; options.onProgress?.(done, B * L); });
  }
  return new Tensor(out, [B, L, dOut]);
}

/** Elements (L·d over one sequence) the tfjs backend takes per streamed sequence: it
 *  holds a whole sequence (input and output on both threads), unlike wasm and js. */
export const TFJS_MAX_SEQUENCE_ELEMENTS = 2 ** 25;

/** Sequences of any lengths through a backend, streamed from `source` to `sink`. */
async function streamThrough(
  executors: ExecutorSet, spec: ModelSpec, mode: 'retnet' | 'msr', source: RowSource, sink: RowSink, options: StreamOptions, isClosed: () => boolean,
): Promise<void> {
  const r = resolveOptions(options, { backend: DEFAULT_BACKEND });
  checkArchFlags(spec.dims, options);
  const d = spec.dims.d;
  if (source === null || typeof source !== 'object' || typeof source.read !== 'function') throw errors.input('source must be an object with lengths and a read(seq, start, into) function');
  if (sink === null || typeof sink !== 'object' || typeof sink.write !== 'function') throw errors.input('sink must be an object with a write(seq, start, rows) function');
  if (!Array.isArray(source.lengths) || source.lengths.length === 0 || !source.lengths.every((L) => Number.isInteger(L) && L >= 1)) {
    throw errors.input(`source.lengths must be a non-empty array of positive integers (got ${JSON.stringify(source.lengths)})`);
  }
  throwIfAborted(r.signal);
  const ex = r.backend === 'js' ? null : await executors.get(r.backend, r.workers, r.kernels, r.precision);
  if (ex?.run) return ex.run(spec, source, sink, request(mode, r, options.onProgress));
  const total = source.lengths.reduce((a, b) => a + b, 0);
  let done = 0;
  const readChecked = (seq: number, start: number, into: Float32Array) => {
    checkSync(source.read(seq, start, into));
    for (let i = 0; i < into.length; i++) if (!Number.isFinite(into[i])) throw errors.input(`sequence ${seq} has a non-finite value ${into[i]} at [${start + Math.floor(i / d)}, ${i % d}]`);
  };
  for (let seq = 0; seq < source.lengths.length; seq++) {
    throwIfAborted(r.signal);
    const L = source.lengths[seq];
    if (ex) {
      // An executor without streaming (tfjs) holds the whole sequence: bounded here, not by L.
      if (L * d > TFJS_MAX_SEQUENCE_ELEMENTS) {
        throw errors.memory(`sequence ${seq} has ${L} × ${d} = ${L * d} values; the ${r.backend} backend holds a whole sequence in memory (several float32 copies across its worker) and takes at most ${TFJS_MAX_SEQUENCE_ELEMENTS} (${TFJS_MAX_SEQUENCE_ELEMENTS / 2 ** 20}Mi) values per sequence; use backend 'wasm' or 'js', which stream in bounded memory, or split the sequence`);
      }
      const buf = new Float32Array(L * d);
      readChecked(seq, 0, buf);
      sink.write(seq, 0, (await ex.forward(spec, new Tensor(buf, [1, L, d]), request(mode, r))).data as Float32Array);
      done += L;
      options.onProgress?.(done, total);
      continue;
    }
    // js: window by window (float64), rows read and written as they are needed.
    let f32 = new Float32Array(0);
    await jsSequence({ spec, mode, plan: r.plan(L), flags: flagsOf(r), check: stopCheck(r, isClosed) }, L,
      (start, into) => {
        if (f32.length !== into.length) f32 = new Float32Array(into.length);
        readChecked(seq, start, f32);
        into.set(f32);
      },
      (start, y) => { sink.write(seq, start, Float32Array.from(y)); done += y.length / d; options.onProgress?.(done, total); });
  }
}

/** The sequences of a ragged batch, checked: Tensors [L_i, d] or [1, L_i, d]. */
function raggedInputs(xs: Tensor[], d: number, backend: BackendName): Tensor[] {
  if (!Array.isArray(xs) || xs.length === 0) throw errors.input('forwardRagged needs a non-empty array of Tensors');
  return xs.map((x, i) => {
    if (!(x instanceof Tensor) || !((x.rank === 2 && x.shape[1] === d) || (x.rank === 3 && x.shape[0] === 1 && x.shape[2] === d))) {
      throw errors.input(`sequence ${i} must be a Tensor [length, ${d}] or [1, length, ${d}] (got ${x instanceof Tensor ? `[${x.shape.join(', ')}]` : typeof x})`);
    }
    checkInput(new Tensor(x.data, [1, x.size / d, d]), d, `sequence ${i}`, backend);
    return x;
  });
}

/** A ragged batch on the js backend: one forward per sequence (float64), progress over them all. */
async function raggedJs(xs: Tensor[], d: number, options: StreamOptions, forward: (x: Tensor, o: StreamOptions) => Promise<Tensor>): Promise<Tensor[]> {
  const seqs = raggedInputs(xs, d, 'js');
  const total = seqs.reduce((a, x) => a + x.size / d, 0);
  const outs: Tensor[] = [];
  let before = 0;
  for (const x of seqs) {
    const L = x.size / d, base = before;
    const onProgress = options.onProgress ? (done: number) => options.onProgress!(base + done, total) : undefined;
    const y = await forward(new Tensor(x.data, [1, L, d]), { ...options, onProgress });
    outs.push(new Tensor(y.data, x.shape));
    before += L;
  }
  return outs;
}

/** Tensors [L_i, d] (or [1, L_i, d]) of different lengths → outputs of the same shapes. */
async function ragged(xs: Tensor[], d: number, backend: BackendName, run: (source: RowSource, sink: RowSink) => Promise<void>): Promise<Tensor[]> {
  const seqs = raggedInputs(xs, d, backend);
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
  /** sequences in the batch (B) */
  batch: number;
  /** layers[l][b]: S [H, dk, dv] (float64, or float32 for a state made with stateDtype 'float32':
   *  the array's type is the state's dtype) and z [H, dk], float64. The 'wasm' step keeps them in its own shared
   *  memory: its first step of a state replaces these arrays with views there (updated in place by
   *  every later step), so copy them (slice()) to keep a snapshot, or to send one to another thread
   *  (a view of shared memory is shared, not copied, by postMessage). */
  layers: js.LayerState[][];
}

/** Options of {@link RetNet.step}. */
export interface StepOptions {
  /** the paper's decay normalisation (docs/architecture.md §1); seed family only */
  normalizeAttn?: boolean;
  /** divide retention rows by max(1, |row sum|); seed family only */
  normalizeRetn?: boolean;
  /** 'js' (default): float64 throughout. 'wasm': the WASM kernels in the calling thread, float32
   *  activations with the state updated in float64 — much faster for decoding. */
  backend?: 'js' | 'wasm';
  /** 'wasm' only: 'f32' (default, or RETNET_PRECISION) or 'bf16' — the matrix products with bfloat16
   *  operands and float32 accumulation, on oneDNN where the CPU has bfloat16 dot products (all cores),
   *  else rounded operands on the WASM GEMM (docs/engines.md). Kernel choice: RETNET_KERNELS. */
  precision?: Precision;
}

/** Hands the memory of `state` (one the model's 'wasm' step holds) back for the next state, e.g. when a
 *  generation ends: its arrays must not be used afterwards. Not exported from the package: for callers
 *  that own the state entirely (RetNetLM's generate and stream). */
/** States given back with releaseState: refused by checkState (their memory may hold another state). */
const released = new WeakSet<object>();

export function releaseStepState(model: RetNet, state: RecurrentState): void {
  const stepper = (model as unknown as { stepper: WasmStepper | undefined }).stepper;
  stepper?.release(state.layers.flat());
}

/** Options of {@link RetNet.prefill}: those of step, and the chunk length. */
export interface PrefillOptions extends StepOptions {
  /** tokens per chunk (default 256): the 'wasm' products take this many rows at once */
  chunkSize?: number;
}

/** E_OPTION when a forward asks a model family without them for the seed's retention normalisations
 *  (before: an fla model's forward, step and prefill applied them — numbers up to 28% off — while only
 *  RetNetLM.score refused). */
function checkArchFlags(dims: Dims, options: { normalizeAttn?: unknown; normalizeRetn?: unknown }): void {
  if (dims.arch.retentionNorms) return;
  for (const k of ['normalizeAttn', 'normalizeRetn'] as const) {
    if (options[k]) throw errors.option(k, `false for a ${dims.arch.name}-family model (it has no retention normalisations)`, options[k]);
  }
}

/** Default chunk of {@link RetNet.prefill}. */
export const DEFAULT_PREFILL_CHUNK = 256;

function checkStepInput(x: unknown, d: number, batch: number | undefined, what = 'step input', rows = 'batch'): number {
  if (!(x instanceof Tensor) || x.rank !== 2 || x.shape[1] !== d) {
    throw errors.input(`${what} must be a Tensor of shape [${rows}, ${d}] (got ${x instanceof Tensor ? `[${x.shape.join(', ')}]` : typeof x})`);
  }
  if (x.shape[0] < 1) throw errors.input(`${what} has no rows`);
  if (batch !== undefined && x.shape[0] !== batch) throw errors.input(`${what} has batch ${x.shape[0]} but the state was made for batch ${batch}`);
  for (let i = 0; i < x.data.length; i++) if (!Number.isFinite(x.data[i])) throw errors.input(`${what} has a non-finite value ${x.data[i]} at [${Math.floor(i / d)}, ${i % d}]`);
  return x.shape[0];
}

/** On the wasm backend (float32 activations), a float64 input value beyond float32's range is E_INPUT, as forward's. */
function checkF32Input(x: Tensor, d: number, what: string): void {
  if (x.data instanceof Float32Array) return; // finite float32 values, checked above
  const i = firstBadValue(x.data);
  if (i >= 0) throw errors.input(`${what} has ${describeBad(x.data[i]!, `[${Math.floor(i / d)}, ${i % d}]`, 'on the wasm backend (float32 activations; the js backend computes in float64)')}`);
}

/** `make()`'s weights, or E_MEMORY for a config whose arrays cannot be allocated (before: a bare RangeError,
 *  "Invalid typed array length", or "Array buffer allocation failed"). */
function tooLarge<T>(make: () => T, c: { dimModel: number; numHeads: number; numLayer?: number }): T {
  try { return make(); } catch (e) {
    if (e instanceof RangeError) {
      throw errors.memory(`the weights of a model with dimModel ${c.dimModel}${c.numLayer !== undefined ? `, ${c.numLayer} layers` : ''} and ${c.numHeads} heads cannot be allocated (${e.message})`);
    }
    throw e;
  }
}

/** A state given to step() is one initState() made for this model: its layers, batch and array sizes
 *  (a state of another model, or a hand-made object, is E_INPUT, not a TypeError or a silent misread). */
function checkState(st: unknown, dims: { H: number; dk: number; dv: number }, numLayer: number): void {
  const bad = (why: string) => errors.input(`step state ${why} (make one with initState() of this model or language model)`);
  if (typeof st !== 'object' || st === null) throw bad(`must be a RecurrentState (got ${st === null ? 'null' : typeof st})`);
  const s = st as Partial<RecurrentState>;
  if (released.has(st)) throw errors.input('step state was released (releaseState); make a new one with initState()');
  if (!Number.isSafeInteger(s.pos) || s.pos! < 0) throw bad(`has pos ${String(s.pos)}, not a non-negative integer`);
  if (!Number.isSafeInteger(s.batch) || s.batch! < 1) throw bad(`has batch ${String(s.batch)}, not a positive integer`);
  if (!Array.isArray(s.layers) || s.layers.length !== numLayer) throw bad(`has ${Array.isArray(s.layers) ? s.layers.length : 'no'} layers; this model has ${numLayer}`);
  const SZ = dims.H * dims.dk * dims.dv, ZZ = dims.H * dims.dk;
  s.layers.forEach((layer, l) => {
    if (!Array.isArray(layer) || layer.length !== s.batch) throw bad(`layer ${l} has ${Array.isArray(layer) ? layer.length : 'no'} sequences, not ${s.batch}`);
    layer.forEach((ls, b) => {
      const S = (ls as { S?: unknown })?.S, z = (ls as { z?: unknown })?.z;
      if (!((S instanceof Float64Array || S instanceof Float32Array) && S.length === SZ && z instanceof Float64Array && z.length === ZZ)) {
        throw bad(`layer ${l}, sequence ${b}: S must be a Float64Array or Float32Array of ${SZ} values and z a Float64Array of ${ZZ} (this model's H·dk·dv and H·dk)`);
      }
    });
  });
}

// ---------------------------------------------------------------- RetNet

/**
 * A RetNet: a stack of multi-scale retention and MLP blocks with residuals. Runs the
 * parallel, chunkwise and recurrent forms (all equal up to rounding) on the `wasm`
 * (default), `js` (float64 reference) or `tfjs` backend. Call {@link RetNet.close}
 * when done: it ends the worker pool.
 *
 * @example
 * ```ts
 * import { RetNet, Tensor, relMaxError } from 'retnet';
 * const model = RetNet.init({ numLayer: 2, numHeads: 4, dimModel: 64, seed: 0 });
 * const x = Tensor.randn([1, 512, 64], { seed: 1 });
 * const parallel = await model.forward(x, { numChunks: null });
 * const chunked = await model.forward(x, { numChunks: 8 });
 * console.log(relMaxError(chunked, parallel)); // float32: within 2e-5
 * await model.close();
 * ```
 */
export class RetNet {
  /** the configuration (read from the checkpoint or given to init) */
  readonly config: RetNetConfig;
  /** widths derived from the configuration */
  readonly dims: Dims;
  /** the weights of each layer */
  readonly layers: LayerWeights[];
  private closed = false;
  private readonly executors = new ExecutorSet();
  private readonly spec: ModelSpec;
  private stepper: WasmStepper | undefined;

  constructor(config: RetNetConfig, layers: LayerWeights[]) {
    this.config = resolveConfig(config);
    this.dims = dimsOf(this.config);
    if (layers.length !== this.config.numLayer) throw errors.weights(`config says ${this.config.numLayer} layers but ${layers.length} were given`);
    checkLayers(layers, this.dims, 'RetNet weights');
    this.layers = layers;
    this.spec = { config: this.config, dims: this.dims, layers };
  }

  /** A seeded random model with the seed's defaults for anything not given. */
  static init(config: Partial<RetNetConfig> & { seed?: number } = {}): RetNet {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) throw errors.option('config', 'an object of RetNet settings ({ numLayer, numHeads, dimModel, … })', config);
    checkKnownKeys(config, [...CONFIG_KEYS, 'seed'], 'config');
    const { seed = 0, ...rest } = config;
    const c = resolveConfig(rest);
    // (0 layers is the config of a MultiScaleRetention alone, made inside; a RetNet has at least one:
    // before, init accepted 0 and forward failed with a TypeError)
    if (c.numLayer === 0) throw errors.config('numLayer', 'a positive integer', 0);
    return new RetNet(c, tooLarge(() => initLayers(c, seed), c));
  }

  /** Load a checkpoint with the seed's PyTorch state_dict names. */
  static async load(path: string, options: LoadOptions = {}): Promise<RetNet> {
    const { tensors, metadata } = readSafetensors(path, (names) => seedLayerNames(path, names));
    return RetNet.fromCheckpoint({ tensors, metadata, label: path }, options);
  }

  /** A model from tensors already read (e.g. by readSafetensors), with the seed's weight names. */
  static fromCheckpoint(ck: Checkpoint, options: LoadOptions = {}): RetNet {
    const { config, layers, used } = layersFromCheckpoint(ck, '', options);
    checkUnexpected(ck, used);
    return new RetNet(config, layers);
  }

  /** Write the weights as safetensors with the seed's names (config in __metadata__). */
  save(path: string): void {
    writeSafetensors(path, layersToTensors(this.layers, this.dims), { config: configToMetadata(this.config, this.dims) });
  }

  /** the activations of the retention gate (`msr`) and of the MLP (`mlp`) */
  get acts(): {
    /** retention gate */
    msr: ActName;
    /** MLP */
    mlp: ActName;
  } { return { msr: this.config.msrGateFn, mlp: this.config.mlpGateFn }; }

  /** x [B, L, d] → [B, L, d] (float64 on the js backend, float32 elsewhere). */
  async forward(x: Tensor, options: StreamOptions = {}): Promise<Tensor> {
    if (this.closed) throw errors.closed();
    return dispatch(this.executors, this.spec, 'retnet', x, options, () => this.closed);
  }


  /** Sequences of any lengths, streamed: rows are read from `source` and
   *  written to `sink` window by window, so memory stays bounded whatever the
   *  lengths (wasm backend; other backends run sequence by sequence). */
  async forwardStream(source: RowSource, sink: RowSink, options: StreamOptions = {}): Promise<void> {
    if (this.closed) throw errors.closed();
    return streamThrough(this.executors, this.spec, 'retnet', source, sink, options, () => this.closed);
  }

  /** A ragged batch: sequences of different lengths in one call, no padding. */
  async forwardRagged(xs: Tensor[], options: StreamOptions = {}): Promise<Tensor[]> {
    checkKnownKeys(options, OPTION_KEYS); // E_OPTION for null before options.backend is read (forwardStream checks the values)
    const backend = options.backend ?? DEFAULT_BACKEND;
    // js, the float64 reference: each sequence through forward, float64 in and out (before: through the streams'
    // float32 rows, rounded both ways, and a finite 1e39 reported as "non-finite Infinity")
    if (backend === 'js') return raggedJs(xs, this.dims.d, options, (x, o) => this.forward(x, o));
    return ragged(xs, this.dims.d, backend, (src, sink) => this.forwardStream(src, sink, options));
  }

  /** Engines and devices of the backends this model has used so far: a Promise (the worker
   *  pools are asked), resolving to one entry per backend started, none before the first forward.
   *  @example
   *  const [info] = await model.backendInfo(); // e.g. { backend: 'wasm', engine: 'wasm-relaxed-simd', device: 'CPU, 2 worker threads' }
   */
  backendInfo(): Promise<BackendInfo[]> { return this.executors.info(); }

  /** The running executor of a backend (for tests and tools). */
  executor(name: BackendName): Promise<Executor> {
    try { return this.executors.get(name, undefined); } catch (e) { return Promise.reject(e); } // after close(): E_CLOSED
  }

  /** Give a state's memory back now, for the next state this model makes. A state that a 'wasm' step or
   *  prefill has used lives in the step's memory until it is garbage-collected; a program that makes and
   *  drops many states (one per request, say) can fill that memory (E_MEMORY) before a collection comes.
   *  The state cannot be used afterwards (E_INPUT). */
  releaseState(state: RecurrentState): void {
    if (typeof state !== 'object' || state === null || !Array.isArray(state.layers)) throw errors.input('releaseState takes a RecurrentState');
    if (released.has(state)) return;
    releaseStepState(this, state);
    released.add(state);
  }

  /** A zero state for `batch` sequences, at position 0. `stateDtype` 'float32' keeps each S in a
   *  Float32Array, rounded after every update by every step (half the bytes a decoding step reads and
   *  writes; z stays float64); default 'float64'. `on` { backend: 'wasm', precision }: made in the
   *  'wasm' step's memory (S and z views there, as after a first wasm step), so the first step or
   *  prefill does not copy it in — for a billion-parameter model that copy reads hundreds of MB of
   *  fresh pages (0.4–0.9 s for the 1.3B shape's float64 state on our VM). */
  initState(batch = 1, stateDtype: StateDtype = 'float64', on?: { backend: 'wasm'; precision?: Precision }): RecurrentState {
    if (!Number.isInteger(batch) || batch < 1) throw errors.option('batch', 'a positive integer', batch);
    if (stateDtype !== 'float64' && stateDtype !== 'float32') throw errors.option('stateDtype', "'float64' or 'float32'", stateDtype);
    if (on !== undefined) {
      if (typeof on !== 'object' || on === null || on.backend !== 'wasm') throw errors.option('on', "{ backend: 'wasm', precision? }", on);
      checkKnownKeys(on, ['backend', 'precision']); // a misspelt key is never ignored (before: { precison: 'bf16' } ran f32)
      if (this.closed) throw errors.closed();
      const stepper = this.stepperFor(stepPrecision('wasm', on.precision));
      return { pos: 0, batch, layers: this.layers.map(() => Array.from({ length: batch }, () => stepper.zeroState(stateDtype === 'float32'))) };
    }
    return { pos: 0, batch, layers: this.layers.map(() => Array.from({ length: batch }, () => js.zeroLayerState(this.dims, stateDtype))) };
  }

  /** One token per sequence: x [B, d] → y [B, d], advancing `state` (created if omitted) in place. */
  step(x: Tensor, state?: RecurrentState, options: StepOptions = {}): {
    /** output [B, d] */
    y: Tensor;
    /** the advanced state (the same object when given) */
    state: RecurrentState;
  } {
    if (this.closed) throw errors.closed();
    if (state !== undefined) checkState(state, this.dims, this.layers.length);
    const B = checkStepInput(x, this.dims.d, state?.batch);
    const st = state ?? this.initState(B);
    // the step's own options only (before: forward options — stateDtype, kernels, chunkSize, signal… — were
    // taken and ignored)
    checkKnownKeys(options, ['normalizeAttn', 'normalizeRetn', 'backend', 'precision']); // null: E_OPTION (before: a TypeError)
    checkArchFlags(this.dims, options);
    const { backend = 'js', precision: askedPrecision, ...rest } = options ?? {};
    if (backend !== 'js' && backend !== 'wasm') throw errors.option('backend', "'js' or 'wasm' for step", backend);
    const precision = stepPrecision(backend, askedPrecision);
    const flags = flagsOf(resolveOptions({ ...rest, precision: 'f32', kernels: 'auto' }, { backend: 'js' }));
    const d = this.dims.d;
    if (backend === 'wasm') {
      checkF32Input(x, d, 'step input'); // as forward on wasm (before: 1e39 went in as Infinity, and the state filled with NaN)
      const yw = this.stepperFor(precision).step(x.data, B, st.pos, st.layers, flags);
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

  /** What runs the 'wasm' step and prefill (once one has run, or a state was made on 'wasm'; else
   *  undefined): the step's engine and threads, and the prefill's products and retention. */
  stepInfo(): {
    /** the step's precision */
    precision: Precision;
    /** the step's engine and threads, e.g. 'onednn 2.6.3 (avx512_core_bf16, omp), bf16 operands, 2 threads' */
    step: string;
    /** what runs the prefill's products and its retention */
    prefill: string;
    /** seconds spent packing the weights for the step (once per precision, at the first wasm step, prefill or state) */
    packSeconds: number;
  } | undefined {
    const s = this.stepper;
    return s ? { precision: s.precision, step: s.engine, prefill: s.prefillEngine, packSeconds: s.packSeconds } : undefined;
  }

  /** The 'wasm' step's stepper at `precision` (one packed copy at a time). */
  private stepperFor(precision: Precision): WasmStepper {
    if (this.stepper?.precision !== precision) {
      this.stepper?.close();
      this.stepper = undefined;
      this.stepper = new WasmStepper(this.spec, { precision, kernels: kernelsFromEnv() });
    }
    return this.stepper;
  }

  /**
   * Many tokens of one sequence at once into its recurrent state, by the chunkwise form: x [L, d] at
   * positions state.pos … state.pos + L − 1 → y [L, d], with `state` (batch 1; created if omitted)
   * advanced by L tokens — what L calls of {@link step} give, within float32 rounding, at the cost of
   * reading the weights once per chunk instead of once per token. Prompts before decoding.
   * backend 'js' (default): float64 throughout; 'wasm': the step's engine and threads (precision
   * 'f32' or 'bf16'), chunks of `chunkSize` tokens (default 256), each chunk's numbers those of the
   * pool's WASM engine with that chunk size (docs/engines.md, "Prefill").
   */
  prefill(x: Tensor, state?: RecurrentState, options: PrefillOptions = {}): {
    /** output [L, d] */
    y: Tensor;
    /** the advanced state (the same object when given) */
    state: RecurrentState;
  } {
    if (this.closed) throw errors.closed();
    if (state !== undefined) checkState(state, this.dims, this.layers.length);
    const d = this.dims.d;
    const L = checkStepInput(x, d, undefined, 'prefill input', 'tokens');
    const st = state ?? this.initState(1);
    if (st.batch !== 1) throw errors.input(`prefill takes one sequence; the state was made for batch ${st.batch}`);
    checkKnownKeys(options, ['normalizeAttn', 'normalizeRetn', 'backend', 'precision', 'chunkSize']);
    checkArchFlags(this.dims, options);
    const { backend = 'js', precision: askedPrecision, chunkSize = DEFAULT_PREFILL_CHUNK, ...rest } = options ?? {};
    if (backend !== 'js' && backend !== 'wasm') throw errors.option('backend', "'js' or 'wasm' for prefill", backend);
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw errors.option('chunkSize', 'a positive integer', chunkSize);
    const precision = stepPrecision(backend, askedPrecision);
    const flags = flagsOf(resolveOptions({ ...rest, precision: 'f32', kernels: 'auto' }, { backend: 'js' }));
    const states = st.layers.map((l) => l[0]);
    if (backend === 'wasm') {
      checkF32Input(x, d, 'prefill input');
      const yw = this.stepperFor(precision).prefill(x.data, L, st.pos, states, flags, chunkSize);
      st.pos += L;
      return { y: new Tensor(yw, [L, d]), state: st };
    }
    const y = js.retnetForward(this.layers, this.dims, this.acts, Float64Array.from(x.data), L,
      { form: 'chunkwise', chunkSize: Math.min(chunkSize, L) }, flags, states, st.pos);
    st.pos += L;
    return { y: new Tensor(y, [L, d]), state: st };
  }

  /** Ends any worker threads the model started. Idempotent. */
  async close(): Promise<void> { this.closed = true; this.stepper?.close(); this.stepper = undefined; await this.executors.close(); }
}

// ---------------------------------------------------------------- MultiScaleRetention

/** Configuration of a standalone {@link MultiScaleRetention} layer. */
export interface MSRConfig {
  /** model width d */
  dimModel: number;
  /** heads H */
  numHeads: number;
  /** dv = dimModel·valueFactor/numHeads */
  valueFactor: number;
  /** the gate's activation */
  gateFn: ActName;
  /** architecture family (default: the seed's) */
  arch?: RetNetConfig['arch'];
  /** norm eps (default: the family's) */
  normEps?: number;
  /** total key width H·dk (default: dimModel) */
  keyDim?: number;
}

/** An MSR config as a RetNet config (for the shared checks), errors named by the MSR's own keys. */
function msrRetNetConfig(c: MSRConfig, numLayer: number): RetNetConfig {
  if (c === null || typeof c !== 'object') throw errors.input('the MultiScaleRetention config must be an object');
  if (!(ACTIVATIONS as readonly string[]).includes(c.gateFn)) throw errors.config('gateFn', `one of ${ACTIVATIONS.join(', ')}`, c.gateFn);
  return resolveConfig({
    numLayer, dimModel: c.dimModel, numHeads: c.numHeads, valueFactor: c.valueFactor, msrGateFn: c.gateFn,
    ...(c.arch !== undefined ? { arch: c.arch } : {}), ...(c.normEps !== undefined ? { normEps: c.normEps } : {}), ...(c.keyDim !== undefined ? { keyDim: c.keyDim } : {}),
  });
}

/** One multi-scale retention layer, usable on its own (no residual, as in the seed). */
export class MultiScaleRetention {
  /** the configuration */
  readonly config: MSRConfig;
  /** widths derived from the configuration */
  readonly dims: Dims;
  /** the layer's weights */
  readonly weights: MSRWeights;
  private closed = false;
  private readonly executors = new ExecutorSet();
  private readonly spec: ModelSpec;

  constructor(config: MSRConfig, weights: MSRWeights) {
    this.config = config;
    const rc = msrRetNetConfig(config, 1);
    this.dims = dimsOf(rc);
    checkMSR(weights, this.dims, 'MultiScaleRetention weights');
    this.weights = weights;
    // A one-layer spec whose MLP is never run (mode 'msr').
    this.spec = { config: rc, dims: this.dims, layers: [{ msr: weights, mlp: { norm: weights.preNorm, linears: [] } }] };
  }

  /** A layer with seeded random weights (the seed's initialisation). */
  static init(config: Partial<MSRConfig> & { seed?: number } = {}): MultiScaleRetention {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) throw errors.option('config', 'an object of MultiScaleRetention settings', config);
    checkKnownKeys(config, ['dimModel', 'numHeads', 'valueFactor', 'gateFn', 'arch', 'normEps', 'keyDim', 'seed'], 'config');
    const c: MSRConfig = { dimModel: 512, numHeads: 8, valueFactor: 2, gateFn: 'gelu', ...config };
    const dims = dimsOf(msrRetNetConfig(c, 0));
    return new MultiScaleRetention(c, tooLarge(() => initMSR(new Rng(config.seed ?? 0), dims), c));
  }

  /** Layer `index` of a RetNet as a standalone MSR. */
  static fromRetNet(model: RetNet, index = 0): MultiScaleRetention {
    const c = model.config;
    if (!(Number.isInteger(index) && index >= 0 && index < c.numLayer)) throw errors.option('index', `a layer index in [0, ${c.numLayer})`, index);
    return new MultiScaleRetention({
      dimModel: c.dimModel, numHeads: c.numHeads, valueFactor: c.valueFactor, gateFn: c.msrGateFn, arch: c.arch, normEps: c.normEps, keyDim: c.keyDim,
    }, model.layers[index].msr);
  }

  /** x [B, L, d] → y [B, L, d]. */
  async forward(x: Tensor, options: StreamOptions = {}): Promise<Tensor> {
    if (this.closed) throw errors.closed();
    return dispatch(this.executors, this.spec, 'msr', x, options, () => this.closed);
  }


  /** docs/architecture.md §1 step 5's output o [B, L, H·dv] (heads concatenated), before
   *  the group norm — where the normalisations and chunk-count drift show. */
  async retentionOutput(x: Tensor, options: StreamOptions = {}): Promise<Tensor> {
    if (this.closed) throw errors.closed();
    return dispatch(this.executors, this.spec, 'retention', x, options, () => this.closed);
  }


  /** See RetNet.forwardStream. */
  async forwardStream(source: RowSource, sink: RowSink, options: StreamOptions = {}): Promise<void> {
    if (this.closed) throw errors.closed();
    return streamThrough(this.executors, this.spec, 'msr', source, sink, options, () => this.closed);
  }

  /** See {@link RetNet.forwardRagged}. */
  async forwardRagged(xs: Tensor[], options: StreamOptions = {}): Promise<Tensor[]> {
    checkKnownKeys(options, OPTION_KEYS); // E_OPTION for null before options.backend is read (forwardStream checks the values)
    const backend = options.backend ?? DEFAULT_BACKEND;
    // js, the float64 reference: each sequence through forward, float64 in and out (before: through the streams'
    // float32 rows, rounded both ways, and a finite 1e39 reported as "non-finite Infinity")
    if (backend === 'js') return raggedJs(xs, this.dims.d, options, (x, o) => this.forward(x, o));
    return ragged(xs, this.dims.d, backend, (src, sink) => this.forwardStream(src, sink, options));
  }

  /** Engines and devices of the backends this layer has used so far (a Promise, like RetNet.backendInfo). */
  backendInfo(): Promise<BackendInfo[]> { return this.executors.info(); }

  /** See {@link RetNet.executor}. */
  executor(name: BackendName): Promise<Executor> {
    try { return this.executors.get(name, undefined); } catch (e) { return Promise.reject(e); } // after close(): E_CLOSED
  }

  /** See {@link RetNet.close}. */
  async close(): Promise<void> { this.closed = true; await this.executors.close(); }
}

// ---------------------------------------------------------------- retention alone

/** docs/architecture.md §1 step 5 alone: q, k [B, H, L, dk], v [B, H, L, dv], decay [H] → o [B, H, L, dv]
 *  (float64, js backend), before the group norm. */
export function retention(
  q: Tensor, k: Tensor, v: Tensor, decay: ArrayLike<number>,
  options: Pick<ForwardOptions, 'numChunks' | 'chunkSize' | 'normalizeAttn' | 'normalizeRetn'> = {},
): Tensor {
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!(t instanceof Tensor)) throw errors.input(`retention: ${n} must be a Tensor (got ${t === null ? 'null' : typeof t})`);
    if (t.rank !== 4) throw errors.input('retention: q, k, v must be [B, H, L, width]');
    const i = t.data.findIndex((x) => !Number.isFinite(x));
    if (i >= 0) throw errors.input(`retention: ${n} has a non-finite value ${t.data[i]} at element ${i}`);
  }
  if (decay === null || typeof decay !== 'object' || typeof decay.length !== 'number') throw errors.input('retention: decay must be an array of log-decays, one per head');
  for (let h = 0; h < decay.length; h++) {
    const g = Math.exp(decay[h]);
    if (!(g > 0 && g < 1)) throw errors.input(`retention: decay[${h}] = ${decay[h]} gives γ = exp(decay) = ${g}, not strictly between 0 and 1 (as a model's decay must)`);
  }
  const [B, H, L, dk] = q.shape;
  const dv = v.shape[3];
  if (k.shape.join() !== q.shape.join()) throw errors.input(`retention: k shape [${k.shape.join(', ')}] differs from q [${q.shape.join(', ')}]`);
  if (v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== L) throw errors.input(`retention: v shape [${v.shape.join(', ')}] does not match q [${q.shape.join(', ')}]`);
  if (decay.length !== H) throw errors.input(`retention: decay has ${decay.length} entries for ${H} heads`);
  // its own options only: it runs the float64 reference whatever the backend (before: backend, workers…
  // were taken and ignored)
  checkKnownKeys(options, ['numChunks', 'chunkSize', 'normalizeAttn', 'normalizeRetn', 'attnMask']);
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
