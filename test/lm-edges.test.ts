// The language-model API at its edges (found by a review on 2026-12-07; each test failed before its
// fix): states given back, a fla model asked for the seed's normalisations, Uint8Array prompts, the
// step's and prefill's own options, load options against what a checkpoint records, option values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNetLM, Tensor } from '../src/index.js';
import { embedRow } from '../src/lm/retnet-lm.js';
import { FIXTURES } from './helpers.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

const codeOf = async (f: () => unknown): Promise<{ code?: string; message: string }> => {
  try { await f(); return { message: '(no error)' }; } catch (e) { return e as { code?: string; message: string }; }
};

test('releaseState gives a wasm state\'s memory back at once (before: only a garbage collection did, and many dropped states ended in E_MEMORY); a released state is refused', async () => {
  const lm = await RetNetLM.load();
  try {
    const prompt = new TextEncoder().encode('def f(x):\n    return x\n');
    let r = lm.prefill(prompt, 16, 'wasm');
    lm.releaseState(r.state);
    const arena = (lm.model as unknown as { stepper: { A: { used: number } } }).stepper.A;
    const used = arena.used;
    for (let i = 0; i < 200; i++) { r = lm.prefill(prompt, 16, 'wasm'); lm.releaseState(r.state); }
    assert.is(arena.used, used, 'no memory taken by 200 released states');
    const e = await codeOf(() => lm.step(65, r.state, { backend: 'wasm' }));
    assert.is(e.code, 'E_INPUT'); assert.match(e.message, /released/);
  } finally { await lm.close(); }
});

test('a fla model refuses the seed\'s normalisations in forward, step and prefill (before: applied, numbers up to 28% off)', async () => {
  const lm = await RetNetLM.load(join(FIXTURES, 'fla', 'small-o'));
  try {
    const d = lm.model.dims.d;
    const x = Tensor.randn([4, d], { seed: 1 });
    for (const [what, f] of [
      ['forward', () => lm.model.forward(Tensor.randn([1, 4, d], { seed: 1 }), { normalizeAttn: true, backend: 'js' })],
      ['step', () => lm.model.step(Tensor.randn([1, d], { seed: 1 }), undefined, { normalizeRetn: true })],
      ['prefill', () => lm.model.prefill(x, undefined, { normalizeAttn: true })],
    ] as [string, () => unknown][]) {
      const e = await codeOf(f);
      assert.is(e.code, 'E_OPTION', `${what}: ${e.message}`);
      assert.match(e.message, /fla-family model \(it has no retention normalisations\)/, what);
    }
  } finally { await lm.close(); }
});

test('step and prefill take only their own options (before: stateDtype, kernels, numChunks… taken and ignored)', async () => {
  const lm = await RetNetLM.load();
  try {
    const d = lm.model.dims.d;
    for (const [f, key] of [
      [() => lm.model.step(Tensor.randn([1, d], { seed: 1 }), undefined, { stateDtype: 'float32' } as never), 'stateDtype'],
      [() => lm.model.prefill(Tensor.randn([3, d], { seed: 1 }), undefined, { numChunks: -1 } as never), 'numChunks'],
      [() => lm.step(65, undefined, { stateDtype: 'float16' as never }), 'stateDtype'],
    ] as [() => unknown, string][]) {
      const e = await codeOf(f);
      assert.is(e.code, 'E_OPTION', `${key}: ${e.message}`);
      assert.match(e.message, new RegExp(`options\\.${key}`));
    }
  } finally { await lm.close(); }
});

test('a Uint8Array prompt: the byte LM\'s bytes in generate; text to a tokenized model in stream; prefill refuses it there (before: its bytes taken as token ids)', async () => {
  const bytes = await RetNetLM.load();
  try {
    const p = new TextEncoder().encode('import os\n');
    const a = await bytes.generate(p, { maxNewTokens: 8 });
    const b = await bytes.generate(Int32Array.from(p), { maxNewTokens: 8 });
    assert.is(a.text, b.text);
  } finally { await bytes.close(); }
  const dir = await makeTinyFlaFolder(join(mkdtempSync(join(tmpdir(), 'retnet-lm-edges-')), 'tiny'));
  const lm = await RetNetLM.load(dir);
  try {
    const text = 'Hello world';
    let s1 = '', s2 = '';
    for await (const piece of lm.stream(new TextEncoder().encode(text), { maxNewTokens: 5 })) s1 += piece;
    for await (const piece of lm.stream(text, { maxNewTokens: 5 })) s2 += piece;
    assert.is(s1, s2);
    const e = await codeOf(() => lm.prefill(new TextEncoder().encode(text)));
    assert.is(e.code, 'E_INPUT'); assert.match(e.message, /Uint8Array \(bytes\) but this model reads tokens/);
  } finally { await lm.close(); }
});

test('load options may not replace an activation or head count the checkpoint records; option values are checked (before: another model, or ignored)', async () => {
  for (const [opts, key] of [[{ msrGateFn: 'silu' }, 'msrGateFn'], [{ mlpGateFn: 'relu' }, 'mlpGateFn'], [{ numHeads: 8 }, 'numHeads']] as [Record<string, unknown>, string][]) {
    const e = await codeOf(() => RetNetLM.load(undefined, opts as never));
    assert.is(e.code, 'E_OPTION', `${key}: ${e.message}`);
    assert.match(e.message, new RegExp(`options\\.${key} must be left out, or`));
  }
  const ok = await RetNetLM.load(undefined, { msrGateFn: 'gelu' }); // the recorded value itself is fine
  try {
    for (const [f, key] of [
      [() => ok.score('x = 1', { perToken: 'yes' as never }), 'perToken'],
      [() => ok.score('x = 1', { onScored: 5 as never }), 'onScored'],
      [() => ok.generate('x', { signal: 'stop' as never }), 'signal'],
      [() => ok.generate({ prompt: new Uint8Array([120]), maxBytes: 2, signal: 'stop' as never }), 'signal'],
    ] as [() => unknown, string][]) {
      const e = await codeOf(f);
      assert.is(e.code, 'E_OPTION', `${key}: ${e.message}`);
    }
    const ac = new AbortController(); ac.abort();
    const e = await codeOf(() => ok.generate({ prompt: new Uint8Array([120]), maxBytes: 0, signal: ac.signal }));
    assert.is(e.code, 'E_ABORTED');
  } finally { await ok.close(); }
});

test('the byte form of generate honours an abort while it reads a long prompt (before: the prompt was read in one blocking pass and the call resolved)', async () => {
  const lm = await RetNetLM.load();
  try {
    const prompt = new TextEncoder().encode('def f(x):\n    return x * 2\n'.repeat(100)); // 2,800 bytes: 11 chunks of float64 prefill
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const e = await codeOf(() => lm.generate({ prompt, maxBytes: 0, backend: 'js', signal: ac.signal }));
    assert.is(e.code, 'E_ABORTED', e.message);
  } finally { await lm.close(); }
});

test('a misspelt score option names the score\'s own keys (before: "did you mean" missing, perToken not in the list)', async () => {
  const lm = await RetNetLM.load();
  try {
    for (const call of [() => lm.score('abc', { perTok: true } as never), () => lm.logits(Int32Array.of(1, 2), { perTok: true } as never)]) {
      const e = await codeOf(call);
      assert.is(e.code, 'E_OPTION', e.message);
      assert.match(e.message, /did you mean perToken\?/);
    }
  } finally { await lm.close(); }
});

test('nextLogprobs reads its context as score does: token ids checked against the vocabulary, a Uint8Array is text on a tokenized model (before: bytes taken as ids, and ids ≥ V gave a distribution from whatever the input buffer held)', async () => {
  const fla = await RetNetLM.load(join(FIXTURES, 'fla', 'f32')); // V = 128, no tokenizer.json
  try {
    const V = fla.vocab;
    for (const [ctx, msg] of [
      [Int32Array.of(5, 200), `context[1] = 200 is not a token id in [0, ${V})`],
      [[5, -1], `context[1] = -1 is not a token id in [0, ${V})`],
      [[1.5], `context[0] = 1.5 is not a token id in [0, ${V})`],
    ] as [Int32Array | number[], string][]) {
      const e = await codeOf(() => fla.nextLogprobs(ctx));
      assert.is(e.code, 'E_INPUT', e.message);
      assert.is(e.message, msg);
    }
    // bytes are text here, never ids: 200, 250 is not UTF-8 (and this folder could not tokenize text anyway)
    const u = await codeOf(() => fla.nextLogprobs(new Uint8Array([200, 250])));
    assert.is(u.code, 'E_INPUT', u.message);
    assert.match(u.message, /^context is not valid UTF-8/);
    // ids it takes: the last row of the logits, log-softmaxed (float64 head on both sides)
    const ids = Int32Array.of(5, 6, 7, 100);
    const lp = await fla.nextLogprobs(ids, { backend: 'js' });
    const { logits } = await fla.logits(ids, { backend: 'js' });
    const z = logits.subarray((ids.length - 1) * V);
    const m = Math.max(...z), lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    for (let v = 0; v < V; v++) assert.ok(Math.abs(lp[v] - (z[v] - lse)) < 1e-12, `id ${v}`);
  } finally { await fla.close(); }
  const dir = await makeTinyFlaFolder(join(mkdtempSync(join(tmpdir(), 'retnet-lm-edges-')), 'tiny'));
  const lm = await RetNetLM.load(dir);
  try {
    const text = 'Hello world';
    const a = await lm.nextLogprobs(new TextEncoder().encode(text), { backend: 'js' });
    const b = await lm.nextLogprobs(lm.tokenizer.encode(text), { backend: 'js' });
    assert.equal(Array.from(a), Array.from(b), 'a Uint8Array is the UTF-8 of a text, tokenized with the BOS as score does');
  } finally { await lm.close(); }
});

test('embedRow refuses a row outside the table (before: an empty subarray copied, `into` left as it was)', () => {
  const E = Float32Array.from({ length: 4 * 3 }, (_, i) => i);
  const into = new Float32Array(3).fill(-1);
  embedRow(E, 3, 3, into, 0);
  assert.equal(Array.from(into), [9, 10, 11]);
  for (const id of [4, -1, 1.5, NaN]) {
    assert.throws(() => embedRow(E, 3, id, into, 0), /^internal: embedding row .* from a table of 4 rows/, String(id));
  }
});

test('the byte form of generate gives its recurrent state back, also when it fails (before: kept until a garbage collection; a loop of calls filled the step\'s memory, E_MEMORY)', async () => {
  const lm = await RetNetLM.load();
  try {
    const prompt = Uint8Array.of(104, 105);
    await lm.generate({ prompt, maxBytes: 3 }); // the first makes the step (its memory and one state block)
    // the wasm step's memory: a bump arena, so `used` grows by a block for every state not given back
    const arena = (lm.model as unknown as { stepper: { A: { used: number } } }).stepper.A;
    const used = arena.used;
    for (let i = 0; i < 40; i++) await lm.generate({ prompt, maxBytes: 3 });
    assert.is(arena.used, used, '40 generations reuse the first one\'s state block');
    for (let i = 0; i < 10; i++) {
      let n = 0;
      const e = await codeOf(() => lm.generate({ prompt, maxBytes: 8, onByte: () => { if (++n === 3) throw new Error('caller stops'); } }));
      assert.is(e.message, 'caller stops');
    }
    assert.is(arena.used, used, 'a generation that throws gives its state back too');
  } finally { await lm.close(); }
});

test('the byte form of generate takes maxBytes as a limit, not a size to allocate: 2^53 − 1 runs until stopped (before: a RangeError before the first byte)', async () => {
  const lm = await RetNetLM.load();
  try {
    const prompt = new TextEncoder().encode('def main(');
    const seen: number[] = [];
    const ac = new AbortController();
    const e = await codeOf(() => lm.generate({ prompt, maxBytes: Number.MAX_SAFE_INTEGER, signal: ac.signal, onByte: (b) => { if (seen.push(b) === 100) ac.abort(); } }));
    assert.is(e.code, 'E_ABORTED', e.message);
    assert.is(seen.length, 100);
    // the output grows past its first block (4,096 bytes) to exactly maxBytes, holding every byte given to onByte
    const got: number[] = [];
    const r = await lm.generate({ prompt, maxBytes: 5000, onByte: (b) => { got.push(b); } });
    assert.is(r.bytes.length, 5000);
    assert.ok(r.bytes.every((b, i) => b === got[i]));
    assert.equal(Array.from(r.bytes.subarray(0, 100)), seen, 'greedy: the same first bytes');
  } finally { await lm.close(); }
});

test('prefill checks its backend and precision as step and generate do (before: \'WASM\' ran the float64 path, precision was ignored on js)', async () => {
  const lm = await RetNetLM.load();
  try {
    const p = new TextEncoder().encode('hello world');
    for (const [f, key] of [
      [() => lm.prefill(p, 16, 'WASM' as never), 'backend'],
      [() => lm.prefill(p, 16, 'gpu' as never), 'backend'],
      [() => lm.prefill(p, 16, 'js', 'bf16'), 'precision'],
      [() => lm.prefill(p, 16, 'js', 'fp8' as never), 'precision'],
      [() => lm.prefill(p, 16, 'wasm', 'fp8' as never), 'precision'],
    ] as [() => unknown, string][]) {
      const e = await codeOf(f);
      assert.is(e.code, 'E_OPTION', `${key}: ${e.message}`);
      assert.match(e.message, new RegExp(`^options\\.${key} must be`));
    }
    const r = lm.prefill(p, 16, 'js', 'f32');
    assert.is(r.state.pos, p.length);
  } finally { await lm.close(); }
});

test('null options are E_OPTION in every language-model call (before: a TypeError with no code)', async () => {
  const lm = await RetNetLM.load();
  try {
    for (const [what, f] of [
      ['score', () => lm.score('hello', null as never)],
      ['logits', () => lm.logits('hello', null as never)],
      ['nextLogprobs', () => lm.nextLogprobs('hello', null as never)],
      ['generate', () => lm.generate('hello', null as never)],
      ['generate (bytes)', () => lm.generate(null as never)],
      ['stream', async () => { for await (const _ of lm.stream('hello', null as never)); }],
      ['step', () => lm.step(65, undefined, null as never)],
      ['warmUp', () => lm.warmUp(null as never)],
    ] as [string, () => unknown][]) {
      const e = await codeOf(f);
      assert.is(e.code, 'E_OPTION', `${what}: ${e.message}`);
      assert.match(e.message, /^options must be an object/, what);
    }
  } finally { await lm.close(); }
});

test.run();
