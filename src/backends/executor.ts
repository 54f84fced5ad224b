// The contract between the model layer and a compute backend. The model
// validates inputs and options, then hands an Executor the weights and a
// ForwardRequest; the executor owns threads, device memory and caches.
import { errors } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Dims, RetNetConfig } from '../model/config.js';
import type { LayerWeights } from '../model/weights.js';
import type { BackendName, ChunkPlan, KernelsRequest, Precision } from '../options.js';
import type { RetentionFlags } from '../reference/ops.js';

/** What to run. The same object identity is passed on every call for one
 *  model, so an executor may cache packed/uploaded weights keyed on it (WeakMap). */
export interface ModelSpec {
  config: RetNetConfig;
  dims: Dims;
  layers: LayerWeights[];
}

export interface ForwardRequest {
  /** 'retnet': numLayer × (x += MSR(x); x += MLP(x)). 'msr': y = MSR(x) of layers[0], no residual, no MLP.
   *  'retention': layers[0]'s retention output o [L, H·dv] (docs/architecture.md §1 step 5, before the group norm). */
  mode: 'retnet' | 'msr' | 'retention';
  /** Chunking for a sequence of length L. */
  plan: (L: number) => ChunkPlan;
  flags: RetentionFlags;
  /** Precision of the cross-chunk scan. */
  stateDtype: 'float64' | 'float32';
  signal?: AbortSignal;
  /** Worker count (executors with a pool). */
  workers?: number;
  /** Tokens per streaming window. */
  windowRows?: number;
  /** Called with the number of tokens finished so far (of B·L), for progress bars. */
  onProgress?: (tokensDone: number, tokensTotal: number) => void;
}

/** What ran a forward: backend, engine and device (from {@link RetNet.backendInfo}). */
export interface BackendInfo {
  /** the backend */
  backend: BackendName;
  /** e.g. 'wasm-relaxed-simd', 'tfjs-node-gpu' */
  engine: string;
  /** e.g. 'CPU, 2 worker threads' or the GPU name */
  device: string;
  [key: string]: unknown;
}

/** A source of input rows and a sink for output rows, so inputs and outputs
 *  need never be held whole (streaming from and to files, ragged batches). */
export interface RowSource {
  /** length of each sequence */
  lengths: readonly number[];
  /** fill `into` ([rows, d] float32) with rows [start, start + rows) of sequence `seq` */
  read(seq: number, start: number, into: Float32Array): void;
}
/** E_INPUT when RowSource.read returned a promise: the rows must be in `into` when read returns (an
 *  async read would fill them after the engine has used them — before: a silently wrong output). */
export function checkSync(returned: unknown): void {
  if (returned !== undefined && returned !== null && typeof (returned as { then?: unknown }).then === 'function') {
    throw errors.input('source.read returned a Promise: it must fill `into` before it returns (read the data first, e.g. into memory or a file, then stream it)');
  }
}

/** Where {@link RetNet.forwardStream} puts output rows as they are finished. */
export interface RowSink {
  /** rows [start, start + rows.length/d) of sequence `seq` are final; copy them out before returning */
  write(seq: number, start: number, rows: Float32Array): void;
}

/** A backend's implementation of the forward pass (what `backend` selects). */
export interface Executor {
  /** the backend it implements */
  readonly name: BackendName;
  /** x [B, L, d] (float32 or float64) → [B, L, d] float32. */
  forward(spec: ModelSpec, x: Tensor, req: ForwardRequest): Promise<Tensor>;
  /** Sequences of any lengths, streamed (optional: executors without it get per-sequence forwards). */
  run?(spec: ModelSpec, source: RowSource, sink: RowSink, req: ForwardRequest): Promise<void>;
  /** engine and device */
  info(): BackendInfo;
  /** Release threads and device memory; the executor is unusable afterwards. Idempotent. */
  close(): Promise<void>;
}

/** Factories registered by backend modules (keeps the model layer free of
 *  imports of heavy optional dependencies). */
export type ExecutorFactory = (opts: { workers?: number; kernels?: KernelsRequest; precision?: Precision }) => Promise<Executor>;
const factories = new Map<BackendName, () => Promise<ExecutorFactory>>();

export function registerExecutor(name: BackendName, load: () => Promise<ExecutorFactory>): void {
  factories.set(name, load);
}

export async function createExecutor(name: BackendName, opts: { workers?: number; kernels?: KernelsRequest; precision?: Precision }): Promise<Executor> {
  const load = factories.get(name);
  if (!load) throw new Error(`no executor registered for backend '${name}'`);
  return (await load())(opts);
}

export function hasExecutor(name: BackendName): boolean {
  return factories.has(name);
}
