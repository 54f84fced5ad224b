// The runtime and the model API at their edges (found by a second review on 2026-12-07; each test
// failed before its fix): models built with a key width or family of their own, save/load of what
// the seed's names do not record, queued calls that close or abort, one tfjs call's abort, and
// options whose type was never checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { MultiScaleRetention, RetNet, Tensor, relMaxError, retention } from '../src/index.js';
import { createTfjsExecutor } from '../src/backends/tfjs/index.js';
import { req, specOf } from './tfjs-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-runtime-edges-'));
const codeOf = async (f: () => unknown): Promise<{ code?: string; message: string }> => {
  try { await f(); return { message: '(no error)' }; } catch (e) { return e as { code?: string; message: string }; }
};
// float32 kernels against the float64 reference on d = 8, 9 tokens: sums of ≤ 16 terms, values O(1)
const F32_TOL = 1e-5;

test('RetNet.init with keyDim ≠ dimModel, with arch fla, with a normEps: wasm and tfjs agree with js, save/load gives the same model (before: NaN, a RangeError, a 0.14 difference, LayerNorm at 1e-5 whatever normEps said, another model)', async () => {
  const x = Tensor.randn([1, 9, 8], { seed: 2 });
  const tfjs = await createTfjsExecutor({ engine: 'cpu' });
  for (const arch of ['seed', 'fla'] as const) for (const keyDim of [undefined, 4, 16]) {
    const what = `arch ${arch}, keyDim ${keyDim ?? '(d)'}`;
    const m = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 8, arch, ...(keyDim ? { keyDim } : {}), normEps: 1e-3, seed: 1 });
    const n = await (async () => { const p = join(tmp, `${arch}-${keyDim}.safetensors`); m.save(p); return RetNet.load(p); })();
    try {
      const ref = await m.forward(x, { backend: 'js', numChunks: null });
      assert.ok(Array.from(ref.data).every(Number.isFinite), `${what}: finite`);
      for (const numChunks of [null, 3, -1] as const) {
        const w = await m.forward(x, { backend: 'wasm', numChunks });
        const e = relMaxError(w, ref);
        assert.ok(e < F32_TOL, `${what}, numChunks ${numChunks}: wasm vs js ${e}`);
      }
      const t = await tfjs.forward(specOf(m), x, req({ numChunks: 3 }));
      assert.ok(relMaxError(t, ref) < F32_TOL, `${what}: tfjs vs js ${relMaxError(t, ref)}`);
      const again = await n.forward(x, { backend: 'js', numChunks: null });
      assert.is(relMaxError(again, ref), 0, `${what}: saved and loaded`);
    } finally { await m.close(); await n.close(); }
  }
  await tfjs.close();
  const msr = MultiScaleRetention.init({ dimModel: 8, numHeads: 2, arch: 'fla', keyDim: 4, seed: 3 });
  try {
    const e = relMaxError(await msr.forward(x, { backend: 'wasm', numChunks: 3 }), await msr.forward(x, { backend: 'js' }));
    assert.ok(e < F32_TOL, `MultiScaleRetention fla keyDim 4: ${e}`);
  } finally { await msr.close(); }
});

const threads = () => readdirSync('/proc/self/task').length;

test('close() with a queued call that asked for another pool size ends every pool (before: one more pool of threads per round)', async () => {
  if (!existsSync('/proc/self/task')) { console.log('  (skipped by name: no /proc/self/task to count threads)'); return; }
  const x = Tensor.randn([1, 2048, 32], { seed: 1 });
  const counts: number[] = [];
  for (let round = 0; round < 4; round++) {
    const m = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 32, seed: 0 });
    const a = m.forward(x, { backend: 'wasm', workers: 2, chunkSize: 64 }).then(() => 'ok', (e) => e.code);
    const b = m.forward(x, { backend: 'wasm', workers: 3, chunkSize: 64 }).then(() => 'ok', (e) => e.code);
    await new Promise((r) => setTimeout(r, 20));
    await m.close();
    assert.is(await b, 'E_CLOSED', 'the queued call');
    await a;
    await new Promise((r) => setTimeout(r, 200)); // terminated threads leave /proc
    counts.push(threads());
  }
  assert.ok(counts[3]! <= counts[0]!, `threads after each round: ${counts.join(', ')}`);
});

test('a call queued behind another is rejected when its signal aborts, before the call ahead of it ends (before: only after)', async () => {
  const m = RetNet.init({ numLayer: 4, numHeads: 2, dimModel: 64, seed: 0 });
  try {
    const small = Tensor.randn([1, 100, 64], { seed: 1 });
    await m.forward(small, { backend: 'wasm' });
    const events: string[] = [];
    const first = m.forward(Tensor.randn([1, 32768, 64], { seed: 3 }), { backend: 'wasm', chunkSize: 64 }).then(() => events.push('first ended'));
    const ac = new AbortController();
    const queued = m.forward(small, { backend: 'wasm', signal: ac.signal }).then(() => events.push('queued resolved'), (e) => events.push(`queued ${e.code}`));
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await Promise.all([first, queued]);
    assert.equal(events, ['queued E_ABORTED', 'first ended']);
    const again = await m.forward(small, { backend: 'wasm' });
    assert.ok(Array.from(again.data).every(Number.isFinite), 'still usable');
  } finally { await m.close(); }
});

test('tfjs: aborting one forward leaves another caller\'s forward on the same executor alone (before: "the tfjs worker exited")', async () => {
  const ex = await createTfjsExecutor({ engine: 'cpu' });
  try {
    const m = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 32, seed: 0 });
    const spec = specOf(m);
    const small = Tensor.randn([1, 16, 32], { seed: 1 });
    const want = await m.forward(small, { backend: 'js' });
    const ac = new AbortController();
    const big = ex.forward(spec, Tensor.randn([1, 4096, 32], { seed: 2 }), { ...req({ chunkSize: 64 }), signal: ac.signal }).then(() => 'ok', (e) => e.code);
    const other = ex.forward(spec, small, req({ numChunks: 2 })).then((y) => relMaxError(y, want), (e) => `${e.code}: ${e.message}`);
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    assert.is(await big, 'E_ABORTED');
    const e = await other;
    assert.ok(typeof e === 'number' && e < F32_TOL, `the other call: ${e}`);
    await m.close();
  } finally { await ex.close(); }
});

test('options of the wrong type or for another call are E_OPTION (before: TypeErrors after the work, a RangeError, or taken and ignored)', async () => {
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 0 });
  try {
    const x = Tensor.randn([1, 5, 8], { seed: 1 });
    for (const backend of ['js', 'wasm'] as const) {
      const e = await codeOf(() => m.forward(x, { backend, onProgress: 5 } as never));
      assert.is(e.code, 'E_OPTION', `${backend} onProgress: ${e.message}`);
    }
    // null options: E_OPTION, as forward's and every other call's (the fla family's step failed with a TypeError on
    // them, the seed's took them for {})
    const sn = await codeOf(() => m.step(Tensor.randn([1, 8], { seed: 2 }), undefined, null as never));
    assert.is(sn.code, 'E_OPTION', `step with options null: ${sn.message}`);
    for (const bad of [{ mlpMult: Infinity }, { valueFactor: Infinity }]) {
      const e = await codeOf(() => RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, ...bad }));
      assert.is(e.code, 'E_OPTION', `${JSON.stringify(bad)}: ${e.message}`);
    }
    const q = Tensor.randn([1, 2, 4, 4], { seed: 3 });
    const e = await codeOf(() => retention(q, q, q, [-0.1, -0.2], { backend: 'wasm', workers: 3 } as never));
    assert.is(e.code, 'E_OPTION', e.message);
  } finally { await m.close(); }
});

test('RETNET_HUGEPAGES and RETNET_PROFILE name the variable, and a value other than 0 or 1 is refused (before: "options.RETNET_HUGEPAGES", RETNET_PROFILE=yes silently off)', async () => {
  for (const name of ['RETNET_HUGEPAGES', 'RETNET_PROFILE']) {
    const old = process.env[name];
    process.env[name] = 'yes';
    const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 0 });
    try {
      const e = await codeOf(() => m.forward(Tensor.randn([1, 4, 8], { seed: 1 }), { backend: 'wasm' }));
      assert.is(e.code, 'E_OPTION', `${name}: ${e.message}`);
      assert.match(e.message, new RegExp(`^the environment variable ${name} must be`));
    } finally {
      if (old === undefined) delete process.env[name]; else process.env[name] = old;
      await m.close();
    }
  }
});


// Found by a third review (2026-12-07, evening): the slab's retention output moved to per-task scratch,
// allocated once per worker; the parallel form's one slab of L rows then took `workers` copies of it.
// d 512, 8 heads, dv 128, L 65,536, 10 workers: 10 × 256 MiB of it (and 10 score tiles) passed the 4 GiB
// shared memory — E_MEMORY at once — where one slot (one slab, one task) fits. The forward itself is
// O(L²) here, so the test aborts it after 5 s: E_ABORTED shows it got past the allocation.
test('the parallel form with more workers than slabs allocates one task slot, not one per worker (before: E_MEMORY at once on 10 workers)', async () => {
  const msr = MultiScaleRetention.init({ dimModel: 512, numHeads: 8, valueFactor: 2, seed: 4 });
  const x = new Tensor(new Float32Array(65536 * 512).fill(0.01), [1, 65536, 512]);
  const t0 = performance.now();
  const e = await codeOf(() => msr.forward(x, { backend: 'wasm', kernels: 'wasm', numChunks: 1, workers: 10, signal: AbortSignal.timeout(5000) }));
  assert.is(e.code, 'E_ABORTED', `${e.code}: ${e.message} after ${Math.round(performance.now() - t0)} ms`);
  await msr.close();
});

test('forwardStream of a huge declared length holds no plan: the first window is read with the heap flat, and an abort is seen', async () => {
  // before: every window of the plan was built up front (~85 bytes of heap per 256 tokens): 2^31 tokens
  // took ~700 MB of heap and seconds of synchronous work before the first read; 2^40 ended the process
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 16, seed: 0 });
  const ac = new AbortController();
  const before = process.memoryUsage().heapUsed;
  let grew: number | null = null;
  try {
    await m.forwardStream({ lengths: [2 ** 31], read: (_s, _st, into) => { grew ??= process.memoryUsage().heapUsed - before; ac.abort(); into.fill(0); } },
      { write() {} }, { chunkSize: 64, signal: ac.signal, workers: 1 });
    assert.unreachable('aborted');
  } catch (e) { assert.is((e as { code?: string }).code, 'E_ABORTED', String(e)); }
  assert.ok(grew !== null, 'the first rows were read');
  assert.ok(grew! < 64 * 2 ** 20, `heap grew ${(grew! / 2 ** 20).toFixed(1)} MiB before the first read`);
  await m.close();
});

test('workers sizes the pool of its call\'s kernels and precision, which keeps that size; a pool made later starts at the core count (what docs/library.md now says; it said every later call kept the size)', async () => {
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
  try {
    const x = Tensor.randn([1, 9, 8], { seed: 2 });
    await m.forward(x, { kernels: 'wasm', workers: 1 });
    await m.forward(x, { kernels: 'wasm' });
    await m.forward(x, { kernels: 'wasm', precision: 'bf16' });
    const info = await m.backendInfo();
    const cores = availableParallelism();
    const threads = (k: number) => `CPU, ${k} worker thread${k === 1 ? '' : 's'}`; // the form of the TSDoc example
    assert.equal(info.map((i) => [i.precision, i.device]), [['f32', threads(1)], ['bf16', threads(cores)]]);
  } finally { await m.close(); }
});

test.run();
