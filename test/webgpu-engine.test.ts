// The WebGPU engine's life cycle: which adapter the automatic choice takes (a
// software one never), the adapter named in backendInfo, a clear E_ENGINE when
// its packages are missing, tensors released, the E_MEMORY refusal sized to the
// adapter's buffer limits, and a lost device turning into E_ENGINE followed by a
// working fresh worker.
import { test } from 'uvu';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RetNet, Tensor } from '../src/index.js';
import { RetNetError } from '../src/errors.js';
import { createTfjsExecutor, MAX_SCORE_BYTES } from '../src/backends/tfjs/index.js';
import { ROOT, expectError, expectRel } from './helpers.js';
import { canRun, canRunPart } from './helpers/skip.js';
import { expectNoTensorLeak, req, specOf, webgpuExecutor } from './tfjs-helpers.js';

const model = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 8, valueFactor: 2, mlpMult: 2, seed: 3 });
const x = Tensor.randn([2, 30, 8], { seed: 4 });

test('automatic choice: a software adapter is never taken; asked for by name it is, and named', async () => {
  const { ex: forced, missing } = await webgpuExecutor();
  if (!canRun('tfjs/webgpu engine choice', missing) || !forced) return;
  const f = forced.info();
  await forced.close();
  const a = f.adapter;
  if (f.engine !== 'webgpu' || f.tfBackend !== 'webgpu' || !a) throw new Error(`forced: ${JSON.stringify(f)}`);
  // the device string names the adapter: description, vendor, architecture
  for (const part of [a.description, `vendor ${a.vendor}`, `architecture ${a.architecture}`]) {
    if (!f.device.includes(part)) throw new Error(`device ${JSON.stringify(f.device)} lacks ${JSON.stringify(part)}`);
  }
  if (!(a.maxStorageBufferBindingSize > 0)) throw new Error(`adapter limits missing: ${JSON.stringify(a)}`);
  const auto = await createTfjsExecutor({ engine: 'auto' });
  try {
    const i = auto.info();
    const skip = i.skipped.find((s) => s.engine === 'webgpu');
    if (a.software) {
      if (i.engine === 'webgpu') throw new Error(`auto took the software adapter: ${JSON.stringify(i)}`);
      if (!skip || !/software/.test(skip.reason) || !skip.reason.includes(a.description) || !/RETNET_TFJS_ENGINE=webgpu/.test(skip.reason)) {
        throw new Error(`auto should say it passed over the software adapter: ${JSON.stringify(i.skipped)}`);
      }
    } else if (i.engine !== 'webgpu' && i.engine !== 'tfjs-node-gpu') {
      throw new Error(`auto passed over a real GPU adapter (${f.device}): ${JSON.stringify(i)}`);
    }
  } finally { await auto.close(); }
  // by the environment variable, through the model API
  const prev = process.env.RETNET_TFJS_ENGINE;
  process.env.RETNET_TFJS_ENGINE = 'webgpu';
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, mlpMult: 2, seed: 1 });
  try {
    const y = await m.forward(x, { backend: 'tfjs', chunkSize: 7 });
    expectRel(y, await m.forward(x, { backend: 'js', chunkSize: 7 }), 2e-5, 'RETNET_TFJS_ENGINE=webgpu vs js (float32 tolerance)');
    const info = (await m.backendInfo())[0];
    if (info?.engine !== 'webgpu' || info.device !== f.device) throw new Error(`backendInfo: ${JSON.stringify(info)}`);
  } finally {
    await m.close();
    if (prev === undefined) delete process.env.RETNET_TFJS_ENGINE; else process.env.RETNET_TFJS_ENGINE = prev;
  }
});

/** Run a script in a child Node whose module resolution fails for `hide` (test/helpers/hide-packages). */
function withHidden(hide: string, script: string): { status: number | null; out: string } {
  const hook = pathToFileURL(join(ROOT, 'dist', 'test', 'helpers', 'hide-packages.js')).href;
  const env: NodeJS.ProcessEnv = { ...process.env, RETNET_HIDE_PACKAGES: hide };
  delete env.RETNET_TFJS_ENGINE;
  const r = spawnSync(process.execPath, [`--import=${hook}`, '--input-type=module', '-e', script], { env, timeout: 120_000, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test('missing packages: E_ENGINE naming the package and the install command; auto passes over it', () => {
  const index = JSON.stringify(join(ROOT, 'dist', 'src', 'backends', 'tfjs', 'index.js'));
  const script = `
    const { createTfjsExecutor } = await import(${index});
    try { await createTfjsExecutor({ engine: 'webgpu' }); console.log('LOADED'); }
    catch (e) { console.log('FORCED', e.code, e.message); }
    const ex = await createTfjsExecutor({ engine: 'auto' });
    console.log('AUTO', JSON.stringify(ex.info()));
    await ex.close();`;
  const r = withHidden('webgpu', script);
  const want = /FORCED E_ENGINE tfjs engine 'webgpu' is not available: package webgpu is not installed; install it with `npm install webgpu @tensorflow\/tfjs @tensorflow\/tfjs-backend-webgpu`/;
  if (r.status !== 0 || !want.test(r.out)) throw new Error(`hidden webgpu: status ${r.status}\n${r.out}`);
  const auto = JSON.parse(/AUTO (.*)/.exec(r.out)![1]!) as { engine: string; skipped: { engine: string; reason: string }[] };
  if (auto.engine === 'webgpu' || !auto.skipped.some((s) => s.engine === 'webgpu' && s.reason === 'package webgpu is not installed')) {
    throw new Error(`auto with webgpu hidden: ${JSON.stringify(auto)}`);
  }
  // tfjs's WebGPU backend missing (Dawn present): the same, naming that package
  const r2 = withHidden('@tensorflow/tfjs-backend-webgpu', script);
  if (/Dawn found no WebGPU adapter/.test(r2.out)) {
    canRunPart('tfjs/webgpu missing @tensorflow/tfjs-backend-webgpu', 'no WebGPU adapter here (checked only with one)');
    return;
  }
  if (r2.status !== 0 || !/FORCED E_ENGINE tfjs engine 'webgpu' is not available: package @tensorflow\/tfjs-backend-webgpu is not installed; install it with `npm install webgpu/.test(r2.out)) {
    throw new Error(`hidden @tensorflow/tfjs-backend-webgpu: status ${r2.status}\n${r2.out}`);
  }
});

test('every tensor is disposed on WebGPU: numTensors returns to its baseline', async () => {
  const { ex, missing } = await webgpuExecutor();
  if (!canRun('tfjs/webgpu numTensors', missing) || !ex) return;
  try {
    await expectNoTensorLeak(ex, model, x);
  } finally { await ex.close(); }
});

test('a lost device: the call rejects with E_ENGINE giving the reason; the next call runs on a fresh worker', async () => {
  const { ex, missing } = await webgpuExecutor();
  if (!canRun('tfjs/webgpu device loss', missing) || !ex) return;
  try {
    const spec = specOf(model);
    const want = await ex.forward(spec, x, req({ chunkSize: 5 }));
    if (!(await ex.debugLoseDevice())) throw new Error('debugLoseDevice: no device');
    const err = await expectError(() => ex.forward(spec, x, req({ chunkSize: 5 })), /tfjs engine 'webgpu' failed .*WebGPU device was lost \(destroyed.*its worker was restarted/, 'lost device');
    if (!(err instanceof RetNetError) || err.code !== 'E_ENGINE') throw new Error(`expected E_ENGINE, got ${(err as RetNetError).code}`);
    // a fresh worker and device; the same shaders on the same inputs give the same bits
    expectRel(await ex.forward(spec, x, req({ chunkSize: 5 })), want, 0, 'after the device was lost');
    if (ex.info().engine !== 'webgpu') throw new Error(`engine after recovery: ${JSON.stringify(ex.info())}`);
  } finally { await ex.close(); }
});

test('E_MEMORY: a chunk over the adapter\'s largest storage buffer is refused before the engine runs', async () => {
  const { ex, missing } = await webgpuExecutor();
  if (!canRun('tfjs/webgpu E_MEMORY', missing) || !ex) return;
  try {
    const a = ex.info().adapter!;
    const limit = Math.min(a.maxStorageBufferBindingSize, a.maxBufferSize);
    const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
    if (limit >= MAX_SCORE_BYTES) {
      canRunPart('tfjs/webgpu E_MEMORY sized to the adapter', `this adapter's buffers (${limit} bytes) exceed the fixed ${MAX_SCORE_BYTES}-byte bound, which then applies`);
      return;
    }
    // the smallest chunk whose [B·H, C, C] float32 score tensor exceeds the adapter's limit
    const C = Math.floor(Math.sqrt(limit / 4 / 2)) + 1;
    const mib = String(Math.round(limit / 2 ** 20 * 100) / 100);
    const e = await expectError(() => ex.forward(specOf(m), Tensor.randn([1, C, 8], { seed: 2 }), req({ chunkSize: C })),
      new RegExp(`tfjs: ${C} tokens per chunk need a \\[2, ${C}, ${C}\\] score tensor .* over the ${mib.replace('.', '\\.')} MiB limit \\(the WebGPU adapter's largest storage buffer\\)`), 'score over the adapter limit');
    if ((e as RetNetError).code !== 'E_MEMORY') throw new Error(`code ${(e as RetNetError).code}`);
    // a batch whose one-chunk projection [B·C, widest] exceeds it (the score tensor does not)
    const widest = Math.max(2 * 8 + 2 * m.dims.H * m.dims.dv, ...m.dims.hidden);
    const B = Math.floor(limit / 4 / (4 * widest)) + 1;
    const e2 = await expectError(() => ex.forward(specOf(m), Tensor.zeros([B, 4, 8]), req({ chunkSize: 4 })),
      new RegExp(`tfjs: ${B}×4 tokens per chunk need a \\[${B * 4}, ${widest}\\] projection .* over the ${mib.replace('.', '\\.')} MiB limit`), 'projection over the adapter limit');
    if ((e2 as RetNetError).code !== 'E_MEMORY') throw new Error(`code ${(e2 as RetNetError).code}`);
    // the executor still works
    await ex.forward(specOf(m), Tensor.randn([1, 20, 8], { seed: 3 }), req({ chunkSize: 10 }));
    await m.close();
  } finally { await ex.close(); }
});

test.run();
