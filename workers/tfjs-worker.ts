// The tfjs worker: one thread that owns the TensorFlow.js engine, exposed to
// the main thread with comlink as a long-lived object (TfjsWorkerApi). Weights
// are uploaded once per model id and stay on the device until released.
import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { forward, release, upload, type ForwardArgs, type Tf, type Uploaded, type WireModel } from '../src/backends/tfjs/compute.js';
import { ENGINE_PACKAGE, TFJS_ENGINES, describeAdapter, type EngineFailure, type EngineInfo, type TfjsEngine } from '../src/backends/tfjs/engines.js';
import { EngineFault, openWebGpu, type WebGpuDevice } from '../src/backends/tfjs/webgpu.js';

const load = (spec: string): Promise<Record<string, unknown>> => import(spec) as Promise<Record<string, unknown>>;

/** Whether e is Node's resolution failure for package `pkg` itself (quoted in the message, so
 *  '@tensorflow/tfjs' is not mistaken for '@tensorflow/tfjs-backend-webgpu', nor a package
 *  that is present but lacks a file, such as another platform's dawn.node, for a missing one). */
function isNotFound(e: unknown, pkg: string): boolean {
  const err = e as { code?: string; message?: string };
  const msg = String(err?.message);
  return (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') && (msg.includes(`'${pkg}'`) || msg.includes(`"${pkg}"`));
}

/** The packages an engine imports, in order (the engine's own package first). */
const PACKAGES: Record<TfjsEngine, string[]> = {
  'tfjs-node-gpu': ['@tensorflow/tfjs-node-gpu'], 'tfjs-node': ['@tensorflow/tfjs-node'],
  webgpu: ['@tensorflow/tfjs', 'webgpu', '@tensorflow/tfjs-backend-webgpu'],
  wasm: ['@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs'], cpu: ['@tensorflow/tfjs'],
};

function loadFailure(engine: TfjsEngine, e: unknown): EngineFailure {
  const missing = PACKAGES[engine].find((p) => isNotFound(e, p));
  const pkg = missing ?? ENGINE_PACKAGE[engine];
  return {
    engine, notInstalled: missing !== undefined,
    reason: missing ? `package ${missing} is not installed` : `${pkg} failed to load: ${(e as Error)?.message ?? String(e)}`,
  };
}

/** Load one engine; throws an EngineFailure. `forced`: the engine was asked for by name
 *  (a software WebGPU adapter is used only then). */
async function loadEngine(engine: TfjsEngine, forced: boolean): Promise<{ tf: Tf; info: Omit<EngineInfo, 'skipped'> }> {
  let mod: Record<string, unknown>;
  try {
    mod = await load(PACKAGES[engine][0]);
    if (engine === 'wasm') mod = await load('@tensorflow/tfjs');
  } catch (e) {
    throw loadFailure(engine, e);
  }
  // tfjs-node(-gpu) default exports are CommonJS namespaces; unwrap `default` when present.
  const tf = ((mod.default && typeof (mod.default as Tf).tensor === 'function') ? mod.default : mod) as unknown as Tf;
  const want = engine === 'tfjs-node-gpu' || engine === 'tfjs-node' ? 'tensorflow' : engine;
  let gpu: WebGpuDevice | undefined;
  if (engine === 'webgpu') {
    try {
      gpu = await openWebGpu(tf, load, forced);
    } catch (e) {
      const f = loadFailure(engine, e);
      throw f.notInstalled ? f : { engine, notInstalled: false, reason: (e as Error)?.message ?? String(e) } satisfies EngineFailure;
    }
  }
  try {
    const ok = await tf.setBackend(want);
    await tf.ready();
    if (!ok || tf.getBackend() !== want) throw new Error(`tf.setBackend('${want}') did not take effect (backend is ${tf.getBackend()})`);
    // smoke test (async read: the webgpu backend's dataSync needs OffscreenCanvas, absent in Node)
    const t = tf.tidy(() => tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])));
    try {
      const v = await t.data();
      if (v[0] !== 2) throw new Error(`smoke test: [[1,1],[1,1]]² gave ${Array.from(v).join(',')}`);
    } finally { t.dispose(); }
  } catch (e) {
    const failure: EngineFailure = { engine, notInstalled: false, reason: `backend '${want}' failed to initialise: ${(e as Error)?.message ?? String(e)}` };
    throw failure;
  }
  webgpu = gpu;
  let device = 'CPU';
  if (engine === 'tfjs-node-gpu') {
    const be = tf.backend() as unknown as Record<string, unknown>;
    const flag = typeof be.isUsingGpuDevice === 'function' ? (be.isUsingGpuDevice as () => boolean)() : be.isUsingGpuDevice;
    device = flag === false ? 'CPU (tfjs-node-gpu found no usable CUDA GPU)' : 'CUDA GPU';
  } else if (engine === 'wasm') device = 'CPU (WASM, single thread)';
  else if (engine === 'tfjs-node') device = 'CPU (libtensorflow)';
  else if (gpu) device = describeAdapter(gpu.adapter);
  else device = 'CPU (JavaScript)';
  const version = String((tf as unknown as { version_core?: string }).version_core ?? '');
  return {
    tf, info: {
      engine, tfBackend: want, device, version,
      ...(gpu ? { adapter: gpu.adapter, maxTensorBytes: Math.min(gpu.adapter.maxStorageBufferBindingSize, gpu.adapter.maxBufferSize) } : {}),
    },
  };
}

let tf: Tf | undefined;
/** The WebGPU device (engine 'webgpu'): every device call runs inside its error guard. */
let webgpu: WebGpuDevice | undefined;
const guarded = <R>(what: string, fn: () => Promise<R>): Promise<R> => webgpu ? webgpu.guard(what, fn) : fn();
let engineInfo: EngineInfo | undefined;
const models = new Map<number, Uploaded>();

export class TfjsWorkerApi {
  /** Load the named engine, or the first that loads ('auto'). Resolves to info, or rejects with EngineFailure(s). */
  async init(choice: TfjsEngine | 'auto'): Promise<EngineInfo | { failures: EngineFailure[] }> {
    if (engineInfo) return engineInfo;
    const order = choice === 'auto' ? TFJS_ENGINES : [choice];
    const failures: EngineFailure[] = [];
    for (const e of order) {
      try {
        const r = await loadEngine(e, choice !== 'auto');
        tf = r.tf;
        engineInfo = { ...r.info, skipped: failures.map((f) => ({ engine: f.engine, reason: f.reason })) };
        return engineInfo;
      } catch (f) {
        failures.push(f && typeof f === 'object' && 'engine' in f ? f as EngineFailure : { engine: e, notInstalled: false, reason: String(f) });
      }
    }
    return { failures };
  }

  async upload(id: number, model: WireModel): Promise<void> {
    const t = need();
    const old = models.get(id);
    if (old) { release(old); models.delete(id); }
    await guarded('uploading the weights', async () => { models.set(id, upload(t, model)); });
  }

  release(id: number): void {
    const m = models.get(id);
    if (m) { release(m); models.delete(id); }
  }

  async forward(id: number, args: ForwardArgs, onProgress?: (tokensDone: number) => void): Promise<Float32Array> {
    const t = need();
    const m = models.get(id);
    if (!m) throw new Error(`tfjs worker: no model with id ${id} (not uploaded)`);
    const out = await guarded('the forward', () => forward(t, m, args, onProgress ? async (n) => { await onProgress(n); } : undefined));
    return Comlink.transfer(out, [out.buffer]);
  }

  /** Debug: the engine's tensor and byte counts (tests check they return to the baseline). */
  memory(): { numTensors: number; numBytes: number; models: number } {
    const mem = need().memory();
    return { numTensors: mem.numTensors, numBytes: mem.numBytes, models: models.size };
  }

  /** Debug: end this worker abruptly (tests of worker death). */
  crash(code = 7): void { setTimeout(() => process.exit(code), 0); }

  /** Debug (engine 'webgpu'): destroy the device, as a GPU reset would lose it. */
  loseDevice(): boolean {
    if (!webgpu) return false;
    webgpu.lose();
    return true;
  }
}

function need(): Tf {
  if (!tf) throw new Error('tfjs worker: engine not initialised');
  const lost = webgpu?.fault();
  if (lost) throw new EngineFault(lost);
  return tf;
}

if (!parentPort) throw new Error('tfjs-worker.js must run in a worker thread');
Comlink.expose(new TfjsWorkerApi(), nodeEndpoint(parentPort as unknown as Parameters<typeof nodeEndpoint>[0]));
