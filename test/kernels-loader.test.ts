// Loader: variant selection, the relaxed probe, the ARENA_BASE check, rejection
// of a non-shared memory, and instantiation inside worker threads over the
// same shared memory (what the runtime's workers do at start-up).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import {
  ARENA_BASE, SIMD_PROBE, relaxedSimdSupported, resolveVariant, loadKernels, loadKernelsSync, instantiateKernels, createMemory, wasmUrl,
} from '../src/wasm/loader.js';
import { readFileSync } from 'node:fs';

test('probes: plain SIMD validates, relaxed validates with the flag set by the loader', () => {
  assert.ok(WebAssembly.validate(SIMD_PROBE));
  assert.ok(relaxedSimdSupported());
});

test("'auto' picks relaxed; RETNET_WASM_VARIANT=simd forces plain", async () => {
  const memory = createMemory();
  assert.is((await loadKernels({ memory })).variant, 'relaxed');
  assert.is((await loadKernels({ memory, variant: 'simd' })).variant, 'simd');
  const saved = process.env.RETNET_WASM_VARIANT;
  process.env.RETNET_WASM_VARIANT = 'simd';
  try {
    assert.is(resolveVariant('auto'), 'simd');
    assert.is(resolveVariant('relaxed'), 'simd');
    assert.is(loadKernelsSync({ memory }).variant, 'simd');
  } finally {
    if (saved === undefined) delete process.env.RETNET_WASM_VARIANT; else process.env.RETNET_WASM_VARIANT = saved;
  }
});

test('module has no static data above ARENA_BASE, and is the build it claims', () => {
  const memory = createMemory();
  for (const v of ['simd', 'relaxed'] as const) {
    const k = instantiateKernels(readFileSync(wasmUrl(v)), memory, v);
    assert.ok(k.data_end() <= ARENA_BASE, `data_end ${k.data_end()}`);
    assert.is(k.is_relaxed(), v === 'relaxed' ? 1 : 0);
  }
  assert.throws(() => instantiateKernels(readFileSync(wasmUrl('simd')), memory, 'relaxed'), /not the relaxed build/);
});

test('a non-shared memory is rejected with a clear error', () => {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
  assert.throws(() => loadKernelsSync({ memory, variant: 'simd' }), /must be shared/);
});

test('two worker threads instantiate the module over the same shared memory and run kernels', async () => {
  const memory = createMemory();
  const k = loadKernelsSync({ memory });
  const f = new Float32Array(memory.buffer);
  const base = ARENA_BASE / 4;
  for (let i = 0; i < 16; i++) f[base + i] = i + 1; // x [2, 8]
  const loaderUrl = new URL('../src/wasm/loader.js', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.loaderUrl).then(({ loadKernelsSync }) => {
      const k = loadKernelsSync({ memory: workerData.memory });
      k.f32_act__wasmsimd(1, 8, workerData.ptr, 8, 3); // relu in place on one row
      k.f32_add__wasmsimd(1, 8, workerData.ptr, 8, workerData.ptr, 8); // then double it
      parentPort.postMessage(k.variant);
    }, (e) => parentPort.postMessage('error: ' + e.message));`;
  const run = (ptr: number) => new Promise<string>((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { memory, ptr, loaderUrl } });
    w.once('message', (m) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
  });
  const variants = await Promise.all([run(ARENA_BASE), run(ARENA_BASE + 32)]);
  assert.equal(variants, [k.variant, k.variant]);
  for (let i = 0; i < 16; i++) assert.is(f[base + i], 2 * (i + 1), `x[${i}]`);
});

test.run();
