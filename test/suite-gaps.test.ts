// Tests for what a mutation review (2026-12-07) showed the suite could not see: a deliberate bug in
// each of these places passed every test before. Each test here fails on that bug: a resumed
// partial over two read blocks, NaN in the comparisons, the attention projections' overflow
// refusals, the sampling arithmetic, the float64 head over a BF16 head wider than one block, rotary
// angles far from the start, the float64 carried state, the bf16 fallback's rounding of
// activations, a byte piece as the first token, and negative F16 subnormals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MultiScaleRetention, RetNet, RetNetLM, Tensor, maxAbsDiff, nmse, readSafetensors, relMaxError, writeSafetensors } from '../src/index.js';
import { OrderedWriter } from '../src/corpus/writer.js';
import { sample } from '../src/lm/retnet-lm.js';
import { Rng } from '../src/random.js';
import { halfToFloat } from '../src/safetensors.js';
import { bf16Rounding } from '../src/runtime/dnnl-kernels.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { createMemory } from '../src/wasm/loader.js';
import { FIXTURES } from './helpers.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-suite-gaps-'));
const codeOf = async (f: () => unknown): Promise<{ code?: string; message: string }> => {
  try { await f(); return { message: '(no error)' }; } catch (e) { return e as { code?: string; message: string }; }
};

test('a resumed partial output larger than two read blocks (1 MiB each) keeps every record once', async () => {
  const out = join(tmp, 'big', 'scores.jsonl');
  mkdirSync(join(tmp, 'big'));
  const identity = { runId: 'r1', model: 'x'.repeat(64), inputs: [['/in.jsonl', 1, 1]], options: {} };
  const rec = (i: number) => ({ id: `doc-${i}`, source: '/in.jsonl', bytes: 100, bits: 250 + (i % 7), bits_per_byte: (250 + (i % 7)) / 99 });
  const N = 40000, M = 45000;
  let w = await OrderedWriter.open(out, { identity, resume: false } as never);
  w.put(0, Array.from({ length: N }, (_, i) => rec(i)) as never);
  w.close(); // interrupted
  assert.ok(statSync(`${out}.partial`).size > 3 * 2 ** 20, 'the partial spans more than three read blocks');
  w = await OrderedWriter.open(out, { identity, resume: true } as never);
  assert.is(w.resumed.documents, N);
  w.put(0, Array.from({ length: M }, (_, i) => rec(i)) as never);
  await w.finish(); w.close();
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
  assert.is(lines.length, M);
  assert.is(new Set(lines.map((l) => (JSON.parse(l) as { id: string }).id)).size, M);
});

test('the comparisons see NaN: maxAbsDiff, relMaxError and nmse of an output with a NaN are not small', () => {
  const a = Float32Array.of(1, NaN, 3), b = Float32Array.of(1, 2, 3);
  for (const [name, v] of [['maxAbsDiff', maxAbsDiff(a, b)], ['relMaxError', relMaxError(a, b)], ['relMaxError (ref NaN)', relMaxError(b, a)], ['nmse', nmse(a, b)]] as const) {
    assert.not.ok(v <= 1e-3, `${name} = ${v}`);
  }
});

test('weights that overflow float32 through the attention projections are refused at load (fla attn_norm, seed q_proj)', async () => {
  const dir = join(tmp, 'attn-norm');
  mkdirSync(dir);
  copyFileSync(join(FIXTURES, 'fla', 'f32', 'config.json'), join(dir, 'config.json'));
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [n, v] of readSafetensors(join(FIXTURES, 'fla', 'f32', 'model.safetensors')).tensors) t[n] = { shape: [...v.shape], data: Float32Array.from(v.data as Float32Array) };
  t['model.layers.0.attn_norm.weight']!.data[3] = 1e38;
  writeSafetensors(join(dir, 'model.safetensors'), t);
  const e = await codeOf(() => RetNetLM.load(dir));
  assert.is(e.code, 'E_WEIGHTS', e.message);
  assert.match(e.message, /attn\.(q|k|v|g)_proj/);
  const src = readSafetensors(join(FIXTURES, 'retnet-tiny.safetensors'));
  const s: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [n, v] of src.tensors) s[n] = { shape: [...v.shape], data: Float32Array.from(v.data as Float32Array) };
  s['layers.0.0.q_proj.weight']!.data.fill(2e38, 0, 8);
  const p = join(tmp, 'q-overflow.safetensors');
  writeSafetensors(p, s, src.metadata);
  const f = await codeOf(() => RetNet.load(p));
  assert.is(f.code, 'E_WEIGHTS', f.message);
  assert.match(f.message, /q_proj/);
});

test('sampling: temperature → 0 and topK 1 pick the most likely token; topP samples the nucleus in proportion (20,000 draws, within 5σ)', () => {
  const probs = [0.35, 0.25, 0.15, 0.1, 0.08, 0.07];
  const lp = Float64Array.from([0.1, 0.25, 0.07, 0.35, 0.15, 0.08].map(Math.log)); // most likely: id 3, then 1, 4, 0, 5, 2
  const rng = new Rng(5);
  for (let i = 0; i < 200; i++) {
    assert.is(sample(lp, 0.01, rng), 3, 'temperature 0.01');
    assert.is(sample(lp, 1, rng, 1), 3, 'topK 1');
  }
  // topP 0.74: the nucleus is ids 3, 1, 4 (0.35 + 0.25 + 0.15 = 0.75 ≥ 0.74), renormalised over 0.75
  const N = 20000, counts = new Map<number, number>();
  for (let i = 0; i < N; i++) { const id = sample(lp, 1, rng, 0, 0.74); counts.set(id, (counts.get(id) ?? 0) + 1); }
  assert.equal([...counts.keys()].sort(), [1, 3, 4], 'only the nucleus');
  for (const [id, p] of [[3, probs[0]!], [1, probs[1]!], [4, probs[2]!]] as const) {
    const q = p / 0.75, got = counts.get(id)! / N, sigma = Math.sqrt(q * (1 - q) / N);
    assert.ok(Math.abs(got - q) < 5 * sigma, `id ${id}: sampled ${got}, expected ${q.toFixed(4)} ± ${sigma.toExponential(1)}`);
  }
  // topK 2 at temperature 2: ids 3 and 1 in proportion (0.35/0.25)^(1/2)
  counts.clear();
  for (let i = 0; i < N; i++) { const id = sample(lp, 2, rng, 2); counts.set(id, (counts.get(id) ?? 0) + 1); }
  const q3 = Math.sqrt(0.35) / (Math.sqrt(0.35) + Math.sqrt(0.25)), got3 = counts.get(3)! / N;
  assert.ok(counts.size === 2 && Math.abs(got3 - q3) < 5 * Math.sqrt(q3 * (1 - q3) / N), `topK 2, T 2: ${got3} vs ${q3}`);
});

test('sampling: top-k keeps every id tied with the k-th, as transformers does (before: ties cut by id, so id 2 of three equal ones was never drawn; 30,000 draws, within 5σ)', () => {
  const lp = Float64Array.from([0.3, 0.3, 0.3, 0.1].map(Math.log));
  const rng = new Rng(11), N = 30000, counts = [0, 0, 0, 0];
  for (let i = 0; i < N; i++) counts[sample(lp, 1, rng, 2)]!++;
  assert.is(counts[3], 0, 'the fourth is below the k-th');
  const sigma = Math.sqrt((1 / 3) * (2 / 3) / N);
  for (let id = 0; id < 3; id++) assert.ok(Math.abs(counts[id]! / N - 1 / 3) < 5 * sigma, `id ${id}: ${counts[id]! / N}`);
});

test('sampling over 32,000 ids: top-k and top-p select from only their candidates, the same draws as a full sort of the vocabulary', () => {
  // the rule as written before (every id sorted, most likely first, ties by id), for comparison
  const full = (lp: Float64Array, T: number, rng: Rng, k: number, p: number): number => {
    let ids = Array.from({ length: lp.length }, (_, i) => i).sort((a, b) => lp[b]! - lp[a]! || a - b);
    if (k > 0) ids = ids.filter((i) => lp[i]! >= lp[ids[k - 1]!]!);
    const m = lp[ids[0]!]! / T, w = ids.map((i) => Math.exp(lp[i]! / T - m));
    let all = 0;
    if (k > 0) for (const x of w) all += x; else for (let i = 0; i < lp.length; i++) all += Math.exp(lp[i]! / T - m);
    let count = ids.length;
    if (p < 1) { let acc = 0; for (let j = 0; j < ids.length; j++) { acc += w[j]! / all; if (acc >= p) { count = j + 1; break; } } }
    let s = 0;
    for (let j = 0; j < count; j++) s += w[j]!;
    let u = rng.uniform() * s;
    for (let j = 0; j < count; j++) { u -= w[j]!; if (u < 0) return ids[j]!; }
    return ids[count - 1]!;
  };
  const g = new Rng(3);
  for (const spread of [1, 4, 12]) {
    const lp = Float64Array.from({ length: 32000 }, () => -Math.abs(g.normal()) * spread);
    for (const [k, p, T] of [[50, 1, 1], [1, 1, 0.7], [0, 0.5, 1], [0, 0.95, 1.5], [40, 0.9, 1]] as const) {
      const r1 = new Rng(spread * 100 + k), r2 = new Rng(spread * 100 + k);
      for (let i = 0; i < 20; i++) assert.is(sample(lp, T, r1, k, p), full(lp, T, r2, k, p), `spread ${spread}, k ${k}, p ${p}, T ${T}, draw ${i}`);
    }
  }
});

test('a BF16 fla model with a vocabulary wider than one head block (V = 3000): the float64 head agrees with the WASM head', async () => {
  const dir = await makeTinyFlaFolder(join(tmp, 'bf16-wide'), { vocab: 3000, tokenizer: false });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, tie_word_embeddings: false }));
  const ts = readSafetensors(join(dir, 'model.safetensors')).tensors;
  const entries: [string, number[], Float32Array][] = [...ts].map(([n, t]) => [n, t.shape, Float32Array.from(t.data as Float32Array)]);
  const emb = ts.get('model.embeddings.weight')!;
  entries.push(['lm_head.weight', emb.shape, Float32Array.from(emb.data as Float32Array, (_, i) => Math.sin(i * 0.37))]);
  const header: Record<string, unknown> = {}, bufs: Buffer[] = [];
  let off = 0;
  for (const [n, shape, data] of entries) {
    const u = new Uint32Array(data.buffer), bits = Uint16Array.from(u, (v) => v >>> 16);
    header[n] = { dtype: 'BF16', shape, data_offsets: [off, off + bits.byteLength] }; off += bits.byteLength; bufs.push(Buffer.from(bits.buffer));
  }
  let h = JSON.stringify(header); while ((8 + h.length) % 8) h += ' ';
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, Buffer.from(h), ...bufs]));
  const lm = await RetNetLM.load(dir);
  try {
    const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 271) % 3000);
    const a = (await lm.logits(ids, { backend: 'js' })).logits, b = (await lm.logits(ids, { backend: 'wasm' })).logits;
    // float32 head (d = 32 terms) against float64: measured 4e-7
    const e = relMaxError(a, b);
    assert.ok(e < 1e-5, `js vs wasm logits ${e}`);
  } finally { await lm.close(); }
});

test('fla rotary far from the start: wasm logits at positions 5,000–6,000 agree with the float64 reference as at the start (t·θ rounded to float32 as fla does)', async () => {
  const lm = await RetNetLM.load(join(FIXTURES, 'fla', 'f32'));
  try {
    const L = 6000, V = lm.vocab;
    const ids = Int32Array.from({ length: L }, (_, i) => (i * 37 + ((i * i) % 13)) % V);
    const a = (await lm.logits(ids, { backend: 'js', chunkSize: 64 })).logits;
    const b = (await lm.logits(ids, { backend: 'wasm', chunkSize: 64 })).logits;
    let scale = 0; for (const v of a) scale = Math.max(scale, Math.abs(v));
    let e = 0; for (let i = 5000 * V; i < L * V; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!) / scale);
    // measured 4e-7 (float32 kernels); angles computed another way than fla's give 1.5e-5 there
    assert.ok(e < 3e-6, `positions 5000–6000: max|Δ|/max|logit| ${e}`);
  } finally { await lm.close(); }
});

test('the wasm pool carries a float64 state unless stateDtype float32 is asked for (the two differ on 4,000 tokens)', async () => {
  const msr = MultiScaleRetention.init({ dimModel: 32, numHeads: 4, valueFactor: 2, gateFn: 'gelu', seed: 3 });
  try {
    const x = Tensor.randn([1, 4000, 32], { seed: 4 });
    const y64 = await msr.forward(x, { backend: 'wasm', chunkSize: 8, normalizeRetn: true, stateDtype: 'float64' });
    const y32 = await msr.forward(x, { backend: 'wasm', chunkSize: 8, normalizeRetn: true, stateDtype: 'float32' });
    const yd = await msr.forward(x, { backend: 'wasm', chunkSize: 8, normalizeRetn: true });
    assert.ok(relMaxError(y32, y64) > 0, 'float32 and float64 states give different outputs');
    assert.is(relMaxError(yd, y64), 0, 'the default is the float64 state');
  } finally { await msr.close(); }
});

test('the bf16 fallback rounds the activations of both GEMMs (gemm, gemmBf16) to bfloat16, not only the weights', () => {
  const memory = createMemory(64);
  const K = bf16Rounding(bindWasmKernels(memory, 'auto'), memory);
  const x = 1 << 20;
  for (const which of ['gemm', 'gemmBf16'] as const) {
    new Float32Array(memory.buffer, x, 4).set([1 + 2 ** -20, Math.PI, -Math.E, 0.1]);
    if (which === 'gemm') K.gemm(x, 1, 4, 4, x + 1024, 0, 0, x + 2048, 0, 0, false, x + 4096);
    else K.gemmBf16(x, 1, 4, 4, x + 1024, 0, 0, x + 2048, 0, 0, false, x + 4096, x + 8192);
    for (const u of new Uint32Array(memory.buffer, x, 4)) assert.is(u & 0xffff, 0, `${which}: a low half left`);
  }
});

test('bits per byte when the first token is a byte-fallback piece (no BOS, no dummy prefix): its one byte leaves the denominator', async () => {
  const dir = await makeTinyFlaFolder(join(tmp, 'byte-first'));
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { normalizer: unknown; decoder: { decoders: { type: string }[] } };
  tj.normalizer = { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' };
  tj.decoder.decoders = tj.decoder.decoders.filter((d) => d.type !== 'Strip');
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false, add_eos_token: false }));
  const lm = await RetNetLM.load(dir);
  try {
    const text = '\u{13000}ab'; // 4 + 2 bytes; no piece for U+13000: four byte pieces
    const ids = lm.tokenizer.encode(text);
    assert.is(lm.tokenizer.decode(ids.subarray(0, 1)).length <= 1, true);
    const r = await lm.score(text, { backend: 'js' });
    assert.is(r.bytes, 6);
    assert.ok(Math.abs(r.bits / r.bitsPerByte! - 5) < 1e-9, `denominator ${r.bits / r.bitsPerByte!}, want 5`);
  } finally { await lm.close(); }
});

test('F16 widening keeps the sign of subnormals and zeros, and NaN stays NaN', () => {
  assert.is(halfToFloat(0x0001), 2 ** -24);
  assert.is(halfToFloat(0x8001), -(2 ** -24));
  assert.is(halfToFloat(0x83ff), -(1023 * 2 ** -24));
  assert.ok(Object.is(halfToFloat(0x8000), -0));
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  assert.is(halfToFloat(0xfc00), -Infinity);
});

test.run();
