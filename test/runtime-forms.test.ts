// Runtime behaviour: bitwise identity across worker counts and window sizes,
// parallel = chunkwise = recurrent on the wasm backend, ragged batches, the
// float32 state option.
import { test } from 'uvu';
import { MultiScaleRetention, RetNet, Tensor } from '../src/index.js';
import { expectRel, NORM_FLAGS } from './helpers.js';
import { ENGINES, engineMissing } from './helpers/engines.js';
import { canRun } from './helpers/skip.js';

const FLAGS = NORM_FLAGS;
const model = RetNet.init({ numLayer: 2, numHeads: 4, dimModel: 32, valueFactor: 2, mlpMult: 2, seed: 11 });

function sameBits(a: Tensor, b: Tensor, what: string): void {
  const ua = new Uint32Array(a.data.buffer, a.data.byteOffset, a.size), ub = new Uint32Array(b.data.buffer, b.data.byteOffset, b.size);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) throw new Error(`${what}: first differing element ${i}: ${a.data[i]} vs ${b.data[i]}`);
}

for (const kernels of ENGINES) {
  const idTitle = `bitwise identical for workers = 1, 2, 3 and window sizes (${kernels} kernels)`;
  test(idTitle, async () => {
    if (!canRun(idTitle, engineMissing(kernels))) return;
    // chunkSize 20 (WASM intra-chunk kernels on either engine) and 100 (BLAS's when kernels = blas); slabs of 240 and 200 rows
    for (const chunkSize of [20, 100]) {
      const x = Tensor.randn([2, 700, 32], { seed: 1 });
      const opts = { backend: 'wasm', kernels, chunkSize, normalizeRetn: true, normalizeAttn: true } as const;
      const ref = await model.forward(x, { ...opts, workers: 1 });
      for (const workers of [2, 3]) sameBits(await model.forward(x, { ...opts, workers }), ref, `${kernels} C=${chunkSize} workers=${workers}`);
      for (const windowRows of [1, 300, 1000, 5000]) sameBits(await model.forward(x, { ...opts, workers: 2, windowRows }), ref, `${kernels} C=${chunkSize} windowRows=${windowRows}`);
    }
  });

  const formTitle = `parallel = chunkwise = recurrent on wasm (${kernels} kernels), all normalisation settings (float32: 2e-5·max|ref|)`;
  test(formTitle, async () => {
    if (!canRun(formTitle, engineMissing(kernels))) return;
    // float32 sums over ≤ L=150 terms of the retention and d-wide projections: ~1e-6 relative; 2e-5 leaves margin.
    const x = Tensor.randn([2, 150, 32], { seed: 2 });
    for (const flags of FLAGS) {
      const ref = await model.forward(x, { ...flags, backend: 'js' });
      for (const f of [{ numChunks: null }, { chunkSize: 1 }, { chunkSize: 3 }, { chunkSize: 7 }, { chunkSize: 37 }, { chunkSize: 64 }, { chunkSize: 150 }, { chunkSize: 155 }, { numChunks: -1 }]) {
        expectRel(await model.forward(x, { ...flags, ...f, backend: 'wasm', kernels }), ref, 2e-5, `wasm/${kernels} ${JSON.stringify(flags)} ${JSON.stringify(f)}`);
      }
    }
  });
}

test('ragged batch: sequences of different lengths in one call equal separate calls', async () => {
  const xs = [5, 300, 1, 77].map((L, i) => Tensor.randn([L, 32], { seed: 20 + i }));
  const outs = await model.forwardRagged(xs, { backend: 'wasm', chunkSize: 16, normalizeRetn: true });
  for (let i = 0; i < xs.length; i++) {
    const single = await model.forward(new Tensor(xs[i].data, [1, xs[i].shape[0], 32]), { backend: 'wasm', chunkSize: 16, normalizeRetn: true });
    sameBits(outs[i], single, `ragged sequence ${i}`);
    const ref = await model.forward(new Tensor(Float64Array.from(xs[i].data), [1, xs[i].shape[0], 32]), { backend: 'js', normalizeRetn: true });
    expectRel(outs[i], ref, 2e-5, `ragged sequence ${i} vs float64`);
  }
});

test('MSR alone through the pool; stateDtype float32 stays close to float64', async () => {
  const msr = MultiScaleRetention.init({ dimModel: 32, numHeads: 4, valueFactor: 2, gateFn: 'gelu', seed: 3 });
  const x = Tensor.randn([1, 500, 32], { seed: 4 });
  const ref = await msr.forward(x, { backend: 'js', normalizeRetn: true });
  const y64 = await msr.forward(x, { backend: 'wasm', chunkSize: 10, normalizeRetn: true });
  const y32 = await msr.forward(x, { backend: 'wasm', chunkSize: 10, normalizeRetn: true, stateDtype: 'float32' });
  expectRel(y64, ref, 2e-5, 'msr float64 state');
  expectRel(y32, ref, 2e-5, 'msr float32 state');
  await msr.close();
});

test('retentionOutput (before the group norm): wasm = js, all normalisation settings', async () => {
  const msr = MultiScaleRetention.fromRetNet(model, 1);
  const x = Tensor.randn([2, 90, 32], { seed: 7 });
  for (const flags of FLAGS) {
    const ref = await msr.retentionOutput(x, { ...flags, backend: 'js' });
    if (ref.shape.join() !== '2,90,64') throw new Error(`shape ${ref.shape}`);
    for (const f of [{ numChunks: null }, { chunkSize: 8 }, { numChunks: -1 }]) {
      expectRel(await msr.retentionOutput(x, { ...flags, ...f, backend: 'wasm' }), ref, 2e-5, `retention ${JSON.stringify(flags)} ${JSON.stringify(f)}`);
    }
  }
  await msr.close();
});

test('the pool with the scalar JS kernel twin (RETNET_KERNELS=js) = the pool with WASM kernels', async () => {
  // Both float32; the JS twin sums in double precision inside each kernel, so 2e-5 (the float32 bound) applies.
  const { WasmExecutor } = await import('../src/runtime/executor.js');
  const spec = { config: model.config, dims: model.dims, layers: model.layers };
  const x = Tensor.randn([2, 60, 32], { seed: 12 });
  const req = { mode: 'retnet' as const, plan: () => ({ form: 'chunkwise' as const, chunkSize: 7 }), flags: { normalizeAttn: true, normalizeRetn: true }, stateDtype: 'float64' as const };
  const exJs = await WasmExecutor.create({ kernels: 'js', workers: 2 });
  const exWasm = await WasmExecutor.create({ kernels: 'wasm', workers: 2 });
  try {
    const a = await exJs.forward(spec, x, req);
    const b = await exWasm.forward(spec, x, req);
    if (exJs.info().engine !== 'js-scalar') throw new Error(`engine ${exJs.info().engine}`);
    expectRel(a, b, 2e-5, 'js-kernel pool vs wasm-kernel pool');
  } finally {
    await exJs.close(); await exWasm.close();
  }
});

test.after(async () => { await model.close(); });
test.run();
