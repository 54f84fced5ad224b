// The tfjs worker's life cycle: a clear error for a missing engine, no leaked
// tensors, a dead worker turning into E_WORKER and a fresh worker on the next
// call, abort, and close() letting the process exit.
import { test } from 'uvu';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { RetNet, Tensor } from '../src/index.js';
import { RetNetError } from '../src/errors.js';
import { createTfjsExecutor } from '../src/backends/tfjs/index.js';
import { ROOT, expectError, expectRel } from './helpers.js';
import { executor, expectNoTensorLeak, req, specOf } from './tfjs-helpers.js';

const model = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 8, valueFactor: 2, mlpMult: 2, seed: 3 });
const x = Tensor.randn([2, 30, 8], { seed: 4 });

test('asking for tfjs-node-gpu when it is not installed: E_ENGINE naming it and the install command', async () => {
  const err = await expectError(() => createTfjsExecutor({ engine: 'tfjs-node-gpu' }),
    /tfjs-node-gpu.*not installed.*npm install @tensorflow\/tfjs-node-gpu.*CUDA 11\.2.*cuDNN 8\.1/, 'missing engine');
  if (!(err instanceof RetNetError) || err.code !== 'E_ENGINE') throw new Error(`expected E_ENGINE, got ${(err as RetNetError).code}`);
  // the same through the environment variable and the model API
  const prev = process.env.RETNET_TFJS_ENGINE;
  process.env.RETNET_TFJS_ENGINE = 'tfjs-node-gpu';
  try {
    await expectError(() => model.forward(x, { backend: 'tfjs' }), /tfjs-node-gpu.*npm install @tensorflow\/tfjs-node-gpu/, 'missing engine via env');
    process.env.RETNET_TFJS_ENGINE = 'cuda';
    await expectError(() => model.forward(x, { backend: 'tfjs' }), /RETNET_TFJS_ENGINE must be one of tfjs-node-gpu, webgpu, tfjs-node, wasm, cpu/, 'bad env value');
  } finally {
    if (prev === undefined) delete process.env.RETNET_TFJS_ENGINE; else process.env.RETNET_TFJS_ENGINE = prev;
  }
});

test('the engine in use is reported by info()', async () => {
  const ex = await executor('cpu');
  try {
    const i = ex.info();
    if (i.backend !== 'tfjs' || i.engine !== 'cpu' || !/CPU/.test(i.device)) throw new Error(`info: ${JSON.stringify(i)}`);
  } finally { await ex.close(); }
});

test('every tensor is disposed: numTensors returns to its baseline after forwards', async () => {
  const ex = await executor('wasm');
  try {
    await expectNoTensorLeak(ex, model, x);
  } finally { await ex.close(); }
});

test('a worker that dies: the call rejects with E_WORKER, the next call starts a fresh worker', async () => {
  const ex = await executor('wasm');
  try {
    const spec = specOf(model);
    const want = await ex.forward(spec, x, req({ chunkSize: 5 }));
    await ex.debugCrash();
    // the dead worker is noticed: a new one is started and the weights uploaded again
    expectRel(await ex.forward(spec, x, req({ chunkSize: 5 })), want, 0, 'after a crash');
    // a crash while a forward is in flight rejects that forward
    const big = Tensor.randn([2, 2000, 8], { seed: 5 });
    const p = ex.forward(spec, big, req({ numChunks: null }));
    setTimeout(() => { void ex.debugCrash('kill').catch(() => {}); }, 50);
    const err = await expectError(() => p, /tfjs worker exited/, 'crash mid-forward');
    if ((err as RetNetError).code !== 'E_WORKER') throw new Error(`expected E_WORKER, got ${(err as RetNetError).code}`);
    expectRel(await ex.forward(spec, x, req({ chunkSize: 5 })), want, 0, 'after a crash mid-forward');
  } finally { await ex.close(); }
});

test('abort: the call rejects with E_ABORTED and the executor keeps working', async () => {
  const ex = await executor('wasm');
  try {
    const spec = specOf(model);
    const ac = new AbortController();
    const p = ex.forward(spec, Tensor.randn([2, 2000, 8], { seed: 6 }), { ...req({ numChunks: null }), signal: ac.signal });
    setTimeout(() => ac.abort('stop'), 50);
    await expectError(() => p, /aborted: stop/, 'abort');
    await ex.forward(spec, x, req({ chunkSize: 5 }));
  } finally { await ex.close(); }
});

test('a chunk whose score tensor would be too big is refused with E_MEMORY before the engine runs', async () => {
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
  const x = Tensor.randn([1, 9000, 8], { seed: 2 });
  const e = await expectError(() => m.forward(x, { backend: 'tfjs' }), /tfjs: 9000 tokens per chunk need a \[2, 9000, 9000\] score tensor \(0\.60 GiB\), over the 512 MiB limit/, 'too big');
  if ((e as RetNetError).code !== 'E_MEMORY') throw new Error(`code ${(e as RetNetError).code}`);
  const y = await m.forward(x, { backend: 'tfjs', chunkSize: 1000 });
  if (y.shape.join() !== '1,9000,8') throw new Error(`shape ${y.shape}`);
  await m.close();
});

test('close() ends the worker: a process that used the tfjs backend exits by itself', () => {
  const script = `
    import { RetNet, Tensor } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'index.js'))};
    const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, mlpMult: 2, seed: 1 });
    const y = await m.forward(Tensor.randn([1, 10, 8], { seed: 1 }), { backend: 'tfjs', numChunks: 2 });
    await m.close();
    console.log('done', y.shape.join('x'));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, RETNET_TFJS_ENGINE: 'wasm' }, timeout: 30_000, encoding: 'utf8' });
  if (r.error || r.status !== 0 || !/done 1x10x8/.test(r.stdout)) {
    throw new Error(`child did not exit cleanly: status ${r.status}, signal ${r.signal}, error ${r.error?.message}\n${r.stdout}\n${r.stderr}`);
  }
});

test.run();
