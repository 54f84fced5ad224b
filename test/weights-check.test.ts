// Issue #10 item 3: non-finite or exploding weights and decays with γ ∉ (0, 1)
// are refused when a model is built (load, constructors, LM), as E_WEIGHTS
// naming the tensor and the first bad index; and an input a float32 backend
// would turn into ±Infinity is an error on wasm and tfjs alike, while rows of
// ±1e38 (finite in float32) give the same answer on js, wasm and tfjs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MultiScaleRetention, RetNet, RetNetError, RetNetLM, Tensor, DEFAULT_LM_PATH, readSafetensors, writeSafetensors, type BackendName,
} from '../src/index.js';
import type { LayerWeights } from '../src/model/weights.js';
import { ROOT, expectError, expectRel } from './helpers.js';
import { canRunPart } from './helpers/skip.js';

const dir = mkdtempSync(join(tmpdir(), 'retnet-wcheck-'));
const model = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 8, seed: 1 });
const good = join(dir, 'good.safetensors');
model.save(good);

type Named = Record<string, { shape: number[]; data: Float32Array | Float64Array }>;
function tensorsOf(path: string): { w: Named; meta: Record<string, string> } {
  const { tensors, metadata } = readSafetensors(path);
  const w: Named = {};
  for (const [k, t] of tensors) w[k] = { shape: [...t.shape], data: (t.data as Float32Array).slice() };
  return { w, meta: metadata };
}

/** The good checkpoint with one value changed (optionally stored as F64). */
function mutated(name: string, index: number, value: number, f64 = false): string {
  const { w, meta } = tensorsOf(good);
  if (f64) w[name].data = Float64Array.from(w[name].data);
  w[name].data[index] = value;
  const p = join(dir, `bad-${name}-${index}-${String(value).replace(/\W/g, '_')}.safetensors`);
  writeSafetensors(p, w, meta);
  return p;
}

async function expectWeights(fn: () => unknown, pattern: RegExp, what: string): Promise<void> {
  const e = await expectError(fn, pattern, what);
  assert.ok(e instanceof RetNetError && e.code === 'E_WEIGHTS', `${what}: E_WEIGHTS (got ${(e as RetNetError).code})`);
}

test('a NaN, an Infinity or a float64 value beyond float32 in any weight is refused at load, naming tensor and index', async () => {
  // layers.1.1.net.2.1.weight is [8, 32]: flat 29 is [0, 29]; q_proj.weight [8, 8]: flat 19 is [2, 3]
  await expectWeights(() => RetNet.load(mutated('layers.1.1.net.2.1.weight', 29, NaN)),
    /bad-layers\.1\.1\.net\.2\.1\.weight-29-NaN\.safetensors: weight layers\.1\.1\.net\.2\.1\.weight has a non-finite value NaN at \[0, 29\]$/, 'NaN');
  await expectWeights(() => RetNet.load(mutated('layers.0.0.q_proj.weight', 19, -Infinity)),
    /weight layers\.0\.0\.q_proj\.weight has a non-finite value -Infinity at \[2, 3\]/, '-Infinity');
  await expectWeights(() => RetNet.load(mutated('layers.0.0.pre_norm.bias', 7, 1e39, true)),
    /weight layers\.0\.0\.pre_norm\.bias has the value 1e\+39 at \[7\], beyond float32's range/, 'F64 1e39');
  await expectWeights(() => RetNet.load(mutated('layers.1.0.angle', 1, NaN)),
    /weight layers\.1\.0\.angle has a non-finite value NaN at \[0, 1\]/, 'angle');
  // the first bad index, not any bad index
  const { w, meta } = tensorsOf(good);
  w['layers.0.0.o_proj.weight'].data[40] = NaN; w['layers.0.0.o_proj.weight'].data[70] = Infinity;
  const two = join(dir, 'two.safetensors');
  writeSafetensors(two, w, meta);
  await expectWeights(() => RetNet.load(two), /o_proj\.weight has a non-finite value NaN at \[2, 8\]/, 'first of two');
});

test('a decay giving γ = exp(decay) ≥ 1 or ≤ 0 is refused at load', async () => {
  await expectWeights(() => RetNet.load(mutated('layers.0.0.decay', 1, 0.1)),
    /weight layers\.0\.0\.decay has 0\.1\d* at \[1\], which gives the retention factor γ = exp\(decay\) = 1\.105\d*; retention needs 0 < γ < 1/, 'γ > 1');
  await expectWeights(() => RetNet.load(mutated('layers.1.0.decay', 0, 0)), /layers\.1\.0\.decay has 0 at \[0\].*γ = exp\(decay\) = 1;/, 'γ = 1');
  await expectWeights(() => RetNet.load(mutated('layers.1.0.decay', 1, -800)), /layers\.1\.0\.decay has -800 at \[1\].*= 0;/, 'γ underflows to 0');
  // the good file still loads and runs
  const m = await RetNet.load(good);
  const x = Tensor.randn([1, 4, 8], { seed: 3 });
  expectRel(await m.forward(x, { backend: 'js' }), await model.forward(x, { backend: 'js' }), 0, 'reloaded model, same float64 forward');
  await m.close();
});

test('RetNet and MultiScaleRetention constructors check user weights; MSR names its own keys', async () => {
  const layers = structuredClone(model.layers) as LayerWeights[];
  layers[1].mlp.linears[0].b![5] = NaN;
  await expectWeights(() => new RetNet(model.config, layers), /^RetNet weights: weight layers\.1\.1\.net\.1\.1\.bias has a non-finite value NaN at \[5\]$/, 'RetNet ctor');
  const msr = MultiScaleRetention.fromRetNet(model, 0);
  const ws = structuredClone(msr.weights);
  (ws.g.W as Float32Array)[9] = Infinity;
  await expectWeights(() => new MultiScaleRetention(msr.config, ws), /^MultiScaleRetention weights: weight g_proj\.weight has a non-finite value Infinity at \[1, 1\]$/, 'MSR ctor');
  const ws2 = structuredClone(msr.weights);
  ws2.decay[0] = 0.5;
  await expectWeights(() => new MultiScaleRetention(msr.config, ws2), /weight decay has 0\.5 at \[0\].*γ = exp\(decay\)/, 'MSR decay');
});

test('an LM checkpoint with a NaN in the embedding names the row and its byte', async () => {
  const { w, meta } = tensorsOf(DEFAULT_LM_PATH.pathname);
  const d = w['embed.weight'].shape[1];
  w['embed.weight'].data[65 * d + 3] = NaN;
  const p = join(dir, 'lm-nan.safetensors');
  writeSafetensors(p, w, meta);
  await expectWeights(() => RetNetLM.load(p), /weight embed\.weight has a non-finite value NaN at \[65, 3\] \(embedding row 65, the vector of byte 65 = 0x41/, 'embedding');
  const { w: w2 } = tensorsOf(DEFAULT_LM_PATH.pathname);
  w2['head.weight'].data[2 * d] = Infinity;
  writeSafetensors(p, w2, meta);
  await expectWeights(() => RetNetLM.load(p), /weight head\.weight has a non-finite value Infinity at \[2, 0\]/, 'head');
});

test('CLI: run and score refuse a bad checkpoint with exit 1 and the E_WEIGHTS message', () => {
  const bad = mutated('layers.0.0.v_proj.bias', 3, NaN);
  const x = join(dir, 'x.safetensors');
  writeSafetensors(x, { x: { shape: [1, 4, 8], data: Tensor.randn([1, 4, 8], { seed: 1 }).data } });
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'run', '--model', bad, '--input', x, '--out', join(dir, 'y.safetensors'), '--backend', 'js'], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 1, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /weight layers\.0\.0\.v_proj\.bias has a non-finite value NaN at \[3\]/);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
});

// ---------------------------------------------------------------- inputs at float32's edge

const tfjsMissing = await import('@tensorflow/tfjs').then(() => null, () => '@tensorflow/tfjs is not installed');

test('a float64 input beyond float32 range: the same E_INPUT on wasm and tfjs; js (float64) computes it', async () => {
  const x = Tensor.randn([2, 5, 8], { seed: 4 }).toFloat64();
  x.data[40 + 2 * 8 + 6] = -1e39;
  const backends: BackendName[] = ['wasm', ...(canRunPart('float32 range on tfjs', tfjsMissing) ? ['tfjs' as const] : [])];
  for (const backend of backends) {
    const e = await expectError(() => model.forward(x, { backend }),
      new RegExp(`^x has the value -1e\\+39 at \\[1, 2, 6\\], beyond float32's range \\(±3\\.4028235e38\\) in which the ${backend} backend computes; use backend 'js'`), backend);
    assert.is((e as RetNetError).code, 'E_INPUT', `${backend} code`);
    await expectError(() => model.forwardRagged([x.slice(0, 1, 2).slice(0, 0, 1)], { backend }), /sequence 0 has the value -1e\+39 at \[0, 2, 6\], beyond float32's range/, `${backend} ragged`);
  }
  const y = await model.forward(x, { backend: 'js' });
  assert.ok(y.data.every(Number.isFinite), 'js output finite');
});

test('rows of ±1e38 (finite in float32): wasm and tfjs agree with the float64 reference', async () => {
  const x = Tensor.randn([1, 6, 8], { seed: 5 });
  for (let i = 8; i < 16; i++) x.data[i] = (i % 2 ? 1 : -1) * 1e38; // row 1
  for (let i = 24; i < 32; i++) x.data[i] = 1e38;                  // row 3, all one sign: the row mean alone overflows a float32 sum
  for (let i = 40; i < 48; i++) x.data[i] = -1e38;                 // row 5, constant: variance 0, LayerNorm gives its bias
  const ref = await model.forward(x, { backend: 'js', numChunks: 2 });
  const backends: BackendName[] = ['wasm', ...(canRunPart('±1e38 rows on tfjs', tfjsMissing) ? ['tfjs' as const] : [])];
  for (const backend of backends) {
    const y = await model.forward(x, { backend, numChunks: 2 });
    assert.ok(y.data.every(Number.isFinite), `${backend}: finite`);
    // Per row, scale-free: a huge row is compared on its own scale, so the small rows are not hidden by it.
    // 2e-5: float32 forward vs float64 reference, the bound of test/runtime-golden.test.ts.
    for (let t = 0; t < 6; t++) expectRel(y.data.subarray(t * 8, t * 8 + 8), ref.data.subarray(t * 8, t * 8 + 8), 2e-5, `${backend} row ${t}`);
  }
});

test.after(async () => { await model.close(); });
test.run();
