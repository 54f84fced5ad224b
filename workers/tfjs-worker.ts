// The tfjs worker: one thread that owns the TensorFlow.js engine, exposed to
// the main thread with comlink as a long-lived object (TfjsWorkerApi). Weights
// are uploaded once per model id and stay on the device until released.
import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { forward, release, upload, type ForwardArgs, type Tf, type Uploaded, type WireModel } from '../src/backends/tfjs/compute.js';
import { ENGINE_PACKAGE, TFJS_ENGINES, type EngineFailure, type EngineInfo, type TfjsEngine } from '../src/backends/tfjs/engines.js';

const load = (spec: string): Promise<Record<string, unknown>> => import(spec) as Promise<Record<string, unknown>>;

function isNotFound(e: unknown, pkg: string): boolean {
  const err = e as { code?: string; message?: string };
  return (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') && String(err.message).includes(pkg);
}

/** Load one engine; throws an EngineFailure. */
async function loadEngine(engine: TfjsEngine): Promise<{ tf: Tf; info: Omit<EngineInfo, 'skipped'> }> {
  const pkg = ENGINE_PACKAGE[engine];
  let mod: Record<string, unknown>;
  try {
    mod = await load(pkg);
    if (engine === 'wasm') mod = await load('@tensorflow/tfjs');
  } catch (e) {
    const notInstalled = isNotFound(e, engine === 'wasm' ? '@tensorflow/tfjs' : pkg) || isNotFound(e, pkg);
    const failure: EngineFailure = {
      engine, notInstalled,
      reason: notInstalled ? `package ${pkg} is not installed` : `${pkg} failed to load: ${(e as Error)?.message ?? String(e)}`,
    };
    throw failure;
  }
  // tfjs-node(-gpu) default exports are CommonJS namespaces; unwrap `default` when present.
  const tf = ((mod.default && typeof (mod.default as Tf).tensor === 'function') ? mod.default : mod) as unknown as Tf;
  const want = engine === 'tfjs-node-gpu' || engine === 'tfjs-node' ? 'tensorflow' : engine;
  try {
    const ok = await tf.setBackend(want);
    await tf.ready();
    if (!ok || tf.getBackend() !== want) throw new Error(`tf.setBackend('${want}') did not take effect (backend is ${tf.getBackend()})`);
    tf.tidy(() => tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])).dataSync()); // smoke test
  } catch (e) {
    const failure: EngineFailure = { engine, notInstalled: false, reason: `backend '${want}' failed to initialise: ${(e as Error)?.message ?? String(e)}` };
    throw failure;
  }
  let device = 'CPU';
  if (engine === 'tfjs-node-gpu') {
    const be = tf.backend() as unknown as Record<string, unknown>;
    const flag = typeof be.isUsingGpuDevice === 'function' ? (be.isUsingGpuDevice as () => boolean)() : be.isUsingGpuDevice;
    device = flag === false ? 'CPU (tfjs-node-gpu found no usable CUDA GPU)' : 'CUDA GPU';
  } else if (engine === 'wasm') device = 'CPU (WASM, single thread)';
  else if (engine === 'tfjs-node') device = 'CPU (libtensorflow)';
  else device = 'CPU (JavaScript)';
  const version = String((tf as unknown as { version_core?: string }).version_core ?? '');
  return { tf, info: { engine, tfBackend: want, device, version } };
}

let tf: Tf | undefined;
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
        const r = await loadEngine(e);
        tf = r.tf;
        engineInfo = { ...r.info, skipped: failures.map((f) => ({ engine: f.engine, reason: f.reason })) };
        return engineInfo;
      } catch (f) {
        failures.push(f && typeof f === 'object' && 'engine' in f ? f as EngineFailure : { engine: e, notInstalled: false, reason: String(f) });
      }
    }
    return { failures };
  }

  upload(id: number, model: WireModel): void {
    const t = need();
    const old = models.get(id);
    if (old) release(old);
    models.set(id, upload(t, model));
  }

  release(id: number): void {
    const m = models.get(id);
    if (m) { release(m); models.delete(id); }
  }

  async forward(id: number, args: ForwardArgs, onProgress?: (tokensDone: number) => void): Promise<Float32Array> {
    const t = need();
    const m = models.get(id);
    if (!m) throw new Error(`tfjs worker: no model with id ${id} (not uploaded)`);
    const out = await forward(t, m, args, onProgress ? async (n) => { await onProgress(n); } : undefined);
    return Comlink.transfer(out, [out.buffer]);
  }

  /** Debug: the engine's tensor and byte counts (tests check they return to the baseline). */
  memory(): { numTensors: number; numBytes: number; models: number } {
    const mem = need().memory();
    return { numTensors: mem.numTensors, numBytes: mem.numBytes, models: models.size };
  }

  /** Debug: end this worker abruptly (tests of worker death). */
  crash(code = 7): void { setTimeout(() => process.exit(code), 0); }
}

function need(): Tf {
  if (!tf) throw new Error('tfjs worker: engine not initialised');
  return tf;
}

if (!parentPort) throw new Error('tfjs-worker.js must run in a worker thread');
Comlink.expose(new TfjsWorkerApi(), nodeEndpoint(parentPort as unknown as Parameters<typeof nodeEndpoint>[0]));
