// Runtime faults: abort, a worker that dies mid-task, concurrent calls, bad
// streamed input, close-then-exit.
import { test } from 'uvu';
import { spawnSync } from 'node:child_process';
import { RetNet, RetNetError, Tensor } from '../src/index.js';
import type { WasmExecutor } from '../src/runtime/executor.js';
import { ROOT, expectError } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { engineMissing } from './helpers/engines.js';

const model = RetNet.init({ numLayer: 2, numHeads: 4, dimModel: 64, seed: 5 });
const x = Tensor.randn([2, 2000, 64], { seed: 6 });

test('an AbortSignal cancels a forward promptly, and the next call works', async () => {
  const ref = await model.forward(x, { backend: 'wasm', chunkSize: 64 });
  const ac = new AbortController();
  const t0 = performance.now();
  const p = model.forward(x, { backend: 'wasm', chunkSize: 64, signal: ac.signal, windowRows: 256 });
  setTimeout(() => ac.abort(new Error('stop')), 5);
  const e = await expectError(() => p, /operation aborted: stop/, 'abort');
  if ((e as RetNetError).code !== 'E_ABORTED') throw new Error(`code ${(e as RetNetError).code}`);
  const ms = performance.now() - t0;
  if (ms > 5000) throw new Error(`abort took ${ms.toFixed(0)} ms`);
  const again = await model.forward(x, { backend: 'wasm', chunkSize: 64 });
  for (let i = 0; i < again.size; i++) if (again.data[i] !== ref.data[i]) throw new Error('result after abort differs');
});

test('a worker that dies mid-task rejects the call with E_WORKER; the pool recovers', async () => {
  const ex = (await model.executor('wasm')) as WasmExecutor;
  const ref = await model.forward(x, { backend: 'wasm', chunkSize: 64 });
  ex.debugCrashNextTask();
  const e = await expectError(() => model.forward(x, { backend: 'wasm', chunkSize: 64 }), /chunk worker failed during phase A of layer 0/, 'crash');
  if ((e as RetNetError).code !== 'E_WORKER') throw new Error(`code ${(e as RetNetError).code}`);
  const again = await model.forward(x, { backend: 'wasm', chunkSize: 64 });
  for (let i = 0; i < again.size; i++) if (again.data[i] !== ref.data[i]) throw new Error('result after crash differs');
});

test('concurrent forward calls give the same results as sequential ones', async () => {
  const xs = [0, 1, 2].map((i) => Tensor.randn([1, 300 + 50 * i, 64], { seed: 30 + i }));
  const seq: Tensor[] = [];
  for (const xi of xs) seq.push(await model.forward(xi, { backend: 'wasm', chunkSize: 32 }));
  const par = await Promise.all(xs.map((xi, i) => model.forward(xi, { backend: 'wasm', chunkSize: i === 1 ? 32 : 32, normalizeRetn: false })));
  par.forEach((p, i) => { for (let j = 0; j < p.size; j++) if (p.data[j] !== seq[i].data[j]) throw new Error(`concurrent call ${i} differs at ${j}`); });
});

test('non-finite streamed input is an error naming the position', async () => {
  const xs = [Tensor.randn([10, 64], { seed: 1 })];
  xs[0].data[3 * 64 + 5] = NaN;
  await expectError(() => model.forwardRagged(xs, { backend: 'wasm', chunkSize: 4 }), /non-finite value NaN at \[0, 3, 5\]/, 'NaN');
});

test('a parallel form whose L² score tiles would not fit is refused on the CBLAS engine, naming the memory', async () => {
  if (!canRun('parallel form refused on the CBLAS engine (L² score tiles)', engineMissing('blas'))) return;
  const small = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
  const long = Tensor.randn([1, 40_000, 8], { seed: 2 });
  const e = await expectError(() => small.forward(long, { backend: 'wasm', kernels: 'blas', workers: 2 }), /parallel form with 40000 tokens per chunk needs 11\.92 GiB of score tiles .* use numChunks or chunkSize/, 'L² too big');
  if ((e as RetNetError).code !== 'E_MEMORY') throw new Error(`code ${(e as RetNetError).code}`);
  // the same input chunkwise runs
  const y = await small.forward(long, { backend: 'wasm', kernels: 'blas', workers: 2, chunkSize: 512 });
  if (y.shape.join() !== '1,40000,8') throw new Error(`shape ${y.shape}`);
  await small.close();
});

// The WASM kernels hold A 64 rows at a time (f32_retention_scratch_size), so the same parallel form
// needs (64 + dk + 8⌈dv/8⌉)·L floats per worker, not L²: it runs, and agrees with the chunkwise form
// (float32 sums over up to L terms in blocks of 32 on both sides: 1e-5 of the largest output).
test('the same parallel form runs on the WASM engine (no L² tile) and agrees with chunks of 512', async () => {
  const small = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
  const long = Tensor.randn([1, 40_000, 8], { seed: 2 });
  const par = await small.forward(long, { backend: 'wasm', kernels: 'wasm', workers: 2 });
  const chk = await small.forward(long, { backend: 'wasm', kernels: 'wasm', workers: 2, chunkSize: 512 });
  let maxRef = 0, maxDiff = 0;
  for (let i = 0; i < chk.size; i++) { maxRef = Math.max(maxRef, Math.abs(chk.data[i])); maxDiff = Math.max(maxDiff, Math.abs(par.data[i] - chk.data[i])); }
  if (!(maxDiff <= 1e-5 * maxRef)) throw new Error(`parallel vs chunkwise: max|Δ| ${maxDiff} > 1e-5 · ${maxRef}`);
  await small.close();
});

test('close() ends the pool so the process exits by itself', async () => {
  const code = `
    import { RetNet, Tensor } from ${JSON.stringify(ROOT + '/dist/src/index.js')};
    const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 16, seed: 1 });
    await m.forward(Tensor.randn([1, 50, 16]), { backend: 'wasm', chunkSize: 8, workers: 2 });
    await m.close();
    console.log('closed');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { timeout: 20000, encoding: 'utf8' });
  if (r.error || r.status !== 0 || !r.stdout.includes('closed')) throw new Error(`child: status ${r.status} ${r.error ?? ''} ${r.stderr}`);
});

test.after(async () => { await model.close(); });
test.run();
