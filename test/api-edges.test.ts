// The library as a user's script calls it, where a read-only review found it wrong: float64 step inputs
// beyond float32's range on wasm (NaN states, no error), null options (TypeErrors), forwardRagged on js
// (float32 in and out), RETNET_KERNELS breaking backends that run no kernels, a misspelt key of
// initState's `on`, executor() after close() (a new pool nothing ends), configs too large to allocate
// (a bare RangeError), dropout and mlpBias that the model does not have, save's argument errors, and
// misspelt options of allclose / Tensor.randn. Each case was wrong before (see "before" notes in src/).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG, MultiScaleRetention, RetNet, RetNetLM, Tensor, allclose, relMaxError, retention, writeSafetensors } from '../src/index.js';
import { FIXTURES, ROOT } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-api-edges-'));

/** `f` must throw (or reject) a RetNetError with this code, its message matching `re`. */
async function fails(f: () => unknown, code: string, re: RegExp, what: string): Promise<void> {
  let err: unknown = null;
  try { await f(); } catch (e) { err = e; }
  if (err === null) assert.unreachable(`${what}: no error`);
  const e = err as Error & { code?: string };
  assert.is(e.code, code, `${what}: ${e.constructor.name} ${e.message}`);
  assert.match(e.message, re, what);
}

test('a float64 step or prefill input beyond float32\'s range on wasm is E_INPUT, as forward\'s (before: NaN out and a NaN state)', async () => {
  const m = RetNet.init({ numLayer: 1, dimModel: 16, numHeads: 2, seed: 1 });
  try {
    const x = new Float64Array(16).fill(0.5);
    x[3] = 1e39;
    const st = m.initState(1);
    await fails(() => m.step(new Tensor(x, [1, 16]), st, { backend: 'wasm' }), 'E_INPUT', /step input has the value 1e\+39 at \[0, 3\], beyond float32's range/, 'step');
    await fails(() => m.prefill(new Tensor(x, [1, 16]), undefined, { backend: 'wasm' }), 'E_INPUT', /prefill input has the value 1e\+39 at \[0, 3\]/, 'prefill');
    assert.ok(st.layers[0]![0]!.S.every((v) => v === 0), 'the state is untouched');
    // the js backend (float64) takes it
    const y = m.step(new Tensor(x, [1, 16]), undefined, { backend: 'js' }).y;
    assert.ok(y.data.every(Number.isFinite));
  } finally { await m.close(); }
});

test('null options are E_OPTION everywhere (before: TypeErrors in step and prefill of the fla family, the loads and loadFolder)', async () => {
  const fla = RetNet.init({ numLayer: 1, dimModel: 16, numHeads: 2, arch: 'fla', seed: 1 });
  const seed = RetNet.init({ numLayer: 1, dimModel: 16, numHeads: 2, seed: 1 });
  try {
    const x = Tensor.randn([1, 16], { seed: 2 });
    for (const [name, m] of [['fla', fla], ['seed', seed]] as const) {
      await fails(() => m.step(x, undefined, null as never), 'E_OPTION', /options must be an object or left out \(got null\)/, `${name} step`);
      await fails(() => m.prefill(x, undefined, null as never), 'E_OPTION', /options must be an object/, `${name} prefill`);
    }
    await fails(() => RetNet.load(join(FIXTURES, 'retnet-tiny.safetensors'), null as never), 'E_OPTION', /options must be an object/, 'RetNet.load');
    await fails(() => RetNetLM.load(undefined, null as never), 'E_OPTION', /options must be an object/, 'RetNetLM.load');
    await fails(() => RetNetLM.loadFolder(join(FIXTURES, 'fla', 'f32'), null as never), 'E_OPTION', /options must be an object/, 'loadFolder');
    await fails(() => retention(Tensor.randn([1, 1, 3, 4], { seed: 1, dtype: 'float64' }), Tensor.randn([1, 1, 3, 4], { seed: 2, dtype: 'float64' }),
      Tensor.randn([1, 1, 3, 4], { seed: 3, dtype: 'float64' }), [-0.5], null as never), 'E_OPTION', /options must be an object/, 'retention');
  } finally { await fla.close(); await seed.close(); }
});

test('forwardRagged on js is the float64 reference: each sequence equals forward on js bit for bit, and a finite 1e39 goes through (before: float32 rows, "non-finite Infinity")', async () => {
  const m = RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2, seed: 3 });
  try {
    const xs = [Tensor.randn([5, 8], { seed: 1, dtype: 'float64' }), Tensor.randn([1, 9, 8], { seed: 2, dtype: 'float64' })];
    const seen: [number, number][] = [];
    const ys = await m.forwardRagged(xs, { backend: 'js', numChunks: 2, onProgress: (d, t) => seen.push([d, t]) });
    for (let i = 0; i < xs.length; i++) {
      const L = xs[i]!.size / 8;
      const ref = await m.forward(new Tensor(xs[i]!.data, [1, L, 8]), { backend: 'js', numChunks: 2 });
      assert.ok(ys[i]!.data instanceof Float64Array, 'float64 out');
      assert.equal(ys[i]!.shape, xs[i]!.shape);
      assert.equal([...ys[i]!.data], [...ref.data], `sequence ${i}`);
    }
    assert.equal(seen.at(-1), [14, 14], 'progress over both sequences');
    const big = Tensor.randn([3, 8], { seed: 4, dtype: 'float64' });
    big.data[2] = 1e39;
    const [yb] = await m.forwardRagged([big], { backend: 'js' });
    assert.ok(yb!.data.every(Number.isFinite));
    // wasm still refuses it, naming float32's range
    await fails(() => m.forwardRagged([big], { backend: 'wasm' }), 'E_INPUT', /beyond float32's range/, 'wasm');
  } finally { await m.close(); }
});

test('a bad RETNET_KERNELS does not break the js backend and retention(), which run no kernels (before: E_OPTION from the variable)', async () => {
  const saved = process.env.RETNET_KERNELS;
  process.env.RETNET_KERNELS = 'bogus';
  const m = RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2, seed: 3 });
  try {
    const y = await m.forward(Tensor.randn([1, 4, 8], { seed: 1 }), { backend: 'js' });
    assert.is(y.shape[1], 4);
    const q = Tensor.randn([1, 1, 3, 4], { seed: 1, dtype: 'float64' });
    assert.is(retention(q, q, q, [-0.5]).shape[2], 3);
    await fails(() => m.forward(Tensor.randn([1, 4, 8], { seed: 1 }), { backend: 'wasm' }), 'E_OPTION', /RETNET_KERNELS/, 'wasm still reads it');
    // the CLI's corpus mode on js (before: exit 1 on the variable)
    const txt = join(tmp, 'k.txt');
    writeFileSync(txt, 'hello there\n');
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'score', '--backend', 'js', '--out', join(tmp, 'k.jsonl'), txt],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, RETNET_KERNELS: 'bogus' } });
    assert.is(r.status, 0, r.stderr);
  } finally {
    if (saved === undefined) delete process.env.RETNET_KERNELS; else process.env.RETNET_KERNELS = saved;
    await m.close();
  }
});

test('initState\'s `on` refuses a misspelt key (before: { precison: \'bf16\' } ran f32); executor() after close() is E_CLOSED (before: a new pool)', async () => {
  const m = RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2, seed: 3 });
  await fails(() => m.initState(1, 'float64', { backend: 'wasm', precison: 'bf16' } as never), 'E_OPTION', /options\.precison is not an option \(did you mean precision\?\)/, 'on');
  await m.close();
  await fails(() => m.executor('wasm'), 'E_CLOSED', /closed/, 'RetNet.executor');
  assert.equal(await m.backendInfo(), [], 'no pool started');
  const msr = MultiScaleRetention.init({ dimModel: 8, numHeads: 2 });
  await msr.close();
  await fails(() => msr.executor('wasm'), 'E_CLOSED', /closed/, 'MultiScaleRetention.executor');
});

test('configs too large to allocate are E_MEMORY (before: a bare RangeError); dropout outside [0, 1) and mlpBias true for the fla family are refused', async () => {
  await fails(() => RetNet.init({ dimModel: 2 ** 20, numHeads: 2, numLayer: 1 }), 'E_MEMORY', /dimModel 1048576, 1 layers and 2 heads cannot be allocated/, 'RetNet.init');
  await fails(() => MultiScaleRetention.init({ dimModel: 2 ** 20, numHeads: 2 }), 'E_MEMORY', /cannot be allocated/, 'MultiScaleRetention.init');
  for (const dropout of ['lots', Number.NaN, 1, -0.1]) {
    await fails(() => RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2, dropout: dropout as never }), 'E_OPTION', /config\.dropout must be a number in \[0, 1\)/, `dropout ${String(dropout)}`);
  }
  await fails(() => RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2, arch: 'fla', mlpBias: true }), 'E_OPTION', /config\.mlpBias must be false for the fla family/, 'fla mlpBias');
  // a config spread from DEFAULT_CONFIG (the seed family's mlpBias true) is told what to set
  await fails(() => RetNet.init({ ...DEFAULT_CONFIG, arch: 'fla', numLayer: 1, dimModel: 8, numHeads: 2 }), 'E_OPTION', /spread from DEFAULT_CONFIG.*needs mlpBias: false/, 'DEFAULT_CONFIG spread');
  const spread = RetNet.init({ ...DEFAULT_CONFIG, arch: 'fla', numLayer: 1, dimModel: 8, numHeads: 2, mlpBias: false });
  await spread.close();
  const fla = RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2, arch: 'fla' });
  assert.is(fla.config.mlpBias, false, 'the fla family reports no MLP bias');
  await fla.close();
});

test('save / writeSafetensors: bad arguments are E_INPUT (before: Node TypeErrors); allclose and Tensor.randn refuse misspelt options; a BigInt array is E_INPUT to compare', async () => {
  const m = RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2 });
  await fails(() => m.save(5 as never), 'E_INPUT', /the path must be a non-empty string \(got number\)/, 'save(5)');
  await fails(() => writeSafetensors(join(tmp, 'x.safetensors'), null as never), 'E_INPUT', /tensors must be an object/, 'null tensors');
  await fails(() => writeSafetensors(join(tmp, 'x.safetensors'), { a: null } as never), 'E_INPUT', /tensor "a" must be \{ shape/, 'null tensor');
  await m.close();
  await fails(() => allclose([1], [1], { rtl: 1 } as never), 'E_OPTION', /options\.rtl is not an option \(did you mean rtol\?\)/, 'allclose');
  await fails(() => Tensor.randn([2], { sed: 1 } as never), 'E_OPTION', /options\.sed is not an option \(did you mean seed\?\)/, 'randn');
  await fails(() => relMaxError(new BigInt64Array(2) as never, [1, 2]), 'E_INPUT', /cannot compare/, 'BigInt64Array');
});

test('a RetNetLM built in memory holds its head to the float32 overflow rule, as a loaded one (before: only fromCheckpoint, and a head of ±3e37 scored NaN)', async () => {
  const d = 32;
  const model = RetNet.init({ numLayer: 1, dimModel: d, numHeads: 2, seed: 1 });
  const parts = { embed: Tensor.randn([256, d], { seed: 2 }).data as Float32Array, head: Tensor.randn([256, d], { seed: 3 }).data as Float32Array,
    normWeight: new Float32Array(d).fill(1), normBias: new Float32Array(d), vocab: 256 };
  parts.head[5] = 3e37;
  await fails(() => new RetNetLM(model, parts), 'E_WEIGHTS', /weight head\.weight has the value 3e\+37 at \[0, 5\], which can overflow float32/, 'constructor');
  parts.head[5] = 0.5;
  const lm = new RetNetLM(model, parts);
  await lm.close();
});

test.run();
