// Helpers for the tfjs backend tests: an executor on a named engine, and
// ForwardRequests built the way the model layer builds them.
import { resolveOptions, type ForwardOptions } from '../src/options.js';
import type { ForwardRequest, ModelSpec } from '../src/backends/executor.js';
import { createTfjsExecutor, type TfjsEngine, type TfjsExecutor } from '../src/backends/tfjs/index.js';
import type { RetNet } from '../src/index.js';
import { Tensor } from '../src/tensor.js';

/** Engines the tests run on: the pure-JS cpu backend always, wasm too (it runs under Node). */
export const TEST_ENGINES: TfjsEngine[] = (process.env.RETNET_TFJS_TEST_ENGINES?.split(',') as TfjsEngine[] | undefined) ?? ['cpu', 'wasm'];

export function specOf(m: RetNet): ModelSpec {
  const cache = specs.get(m);
  if (cache) return cache;
  const s = { config: m.config, dims: m.dims, layers: m.layers };
  specs.set(m, s);
  return s;
}
const specs = new WeakMap<RetNet, ModelSpec>();

export function req(opts: ForwardOptions, mode: 'retnet' | 'msr' = 'retnet'): ForwardRequest {
  const r = resolveOptions(opts, { backend: 'tfjs' });
  return { mode, plan: r.plan, flags: { normalizeAttn: r.normalizeAttn, normalizeRetn: r.normalizeRetn }, stateDtype: r.stateDtype, signal: r.signal };
}

export const executor = (engine: TfjsEngine): Promise<TfjsExecutor> => createTfjsExecutor({ engine });

/** Every tensor disposed: after one forward (which uploads the weights), forwards and MSR calls
 *  over several plans and flags must leave the engine's numTensors at that baseline. */
export async function expectNoTensorLeak(ex: TfjsExecutor, model: RetNet, x: Tensor): Promise<void> {
  const spec = specOf(model);
  await ex.forward(spec, x, req({ numChunks: 3 }));
  const base = (await ex.debugMemory()).numTensors;
  for (const o of [{ numChunks: null }, { chunkSize: 7, normalizeRetn: true }, { numChunks: -1, normalizeAttn: true },
    { chunkSize: 4, stateDtype: 'float32' as const, normalizeAttn: true, normalizeRetn: true }]) {
    await ex.forward(spec, x, req(o));
    await ex.debugRetention(spec, x, req(o, 'msr'));
    const now = (await ex.debugMemory()).numTensors;
    if (now !== base) throw new Error(`numTensors ${now} after ${JSON.stringify(o)}, baseline ${base}`);
  }
}

/** [B, L, H·dv] → [B, H, L, dv] */
export function headsFirst(t: Tensor, H: number): Tensor {
  const [B, L, w] = t.shape;
  const dv = w / H;
  const out = new Float32Array(t.size);
  for (let b = 0; b < B; b++) for (let n = 0; n < L; n++) for (let h = 0; h < H; h++) for (let j = 0; j < dv; j++) {
    out[((b * H + h) * L + n) * dv + j] = t.data[((b * L + n) * H + h) * dv + j];
  }
  return new Tensor(out, [B, H, L, dv]);
}

/** The WebGPU engine forced (a software adapter allowed), or null with the reason it cannot run
 *  here: only "Dawn found no adapter" (no Vulkan driver outside CI) is a reason to skip; any
 *  other failure (a package missing, a broken load) throws. Tests pass the reason to canRun. */
export async function webgpuExecutor(opts: { windowElems?: number } = {}): Promise<{ ex: TfjsExecutor | null; missing: string | null }> {
  try {
    return { ex: await createTfjsExecutor({ engine: 'webgpu', ...opts }), missing: null };
  } catch (e) {
    const msg = (e as Error).message;
    if (/Dawn found no WebGPU adapter/.test(msg)) return { ex: null, missing: `no WebGPU adapter (a Vulkan driver; CI installs Mesa's llvmpipe): ${msg}` };
    throw e;
  }
}
