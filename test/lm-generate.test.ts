// Generation: greedy decoding with the recurrent step (state in, state out)
// equals greedy decoding by re-running the chunkwise forward over the growing
// text — both float64 (js), so the byte sequences agree exactly and the
// log-probs to ~1e-12. Sampling is reproducible from its seed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RetNet, RetNetLM } from '../src/index.js';
import { argmax, sample } from '../src/lm/retnet-lm.js';
import { Rng } from '../src/random.js';
import { expectError } from './helpers.js';
import { markChecked } from '../src/model/check.js';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from './helpers.js';
import { charTokenizerJson } from './helpers/char-tokenizer.js';

const lm = await RetNetLM.load();
const prompt = new TextEncoder().encode('def main(');
const N = 64;

test('greedy via recurrent step = greedy via chunkwise re-runs (64 bytes)', async () => {
  const t0 = performance.now();
  const viaStep = await lm.generate({ prompt, maxBytes: N, temperature: 0, backend: 'js' });
  const t1 = performance.now();
  const text = Array.from(prompt);
  let worst = 0;
  let { logprobs, state } = lm.prefill(prompt, 5);
  for (let i = 0; i < N; i++) {
    const ref = await lm.nextLogprobs(Uint8Array.from(text), { backend: 'js', chunkSize: 16 });
    for (let v = 0; v < 256; v++) worst = Math.max(worst, Math.abs(ref[v] - logprobs[v]));
    const b = argmax(ref);
    assert.is(viaStep.bytes[i], b, `byte ${i}: step ${viaStep.bytes[i]} vs re-run ${b} (text so far ${JSON.stringify(Buffer.from(text).toString())})`);
    text.push(b);
    ({ logprobs, state } = lm.step(b, state));
  }
  const t2 = performance.now();
  console.log(`  ${JSON.stringify(Buffer.from(viaStep.bytes).toString())}; max|Δ logprob| step vs re-run ${worst.toExponential(2)}; step ${(t1 - t0).toFixed(0)} ms, re-runs ${(t2 - t1).toFixed(0)} ms`);
  assert.ok(worst < 1e-10, `step vs re-run log-probs differ by ${worst}`);
  assert.ok(new Set(viaStep.bytes).size > 5, 'the greedy text should not be one repeated byte (a weak test)');
  assert.is(state.pos, prompt.length + N);
});

test('wasm step (float32 activations, float64 state) = float64 step within 1e-4 on 200 bytes', async () => {
  // 1e-4 absolute on log-probs: the float32 bound for this model (golden: ~1.4e-6 measured).
  const text = new TextEncoder().encode('import os\nimport sys\n\ndef main(argv):\n    # print the arguments\n    for a in argv[1:]:\n        print(a)\n    return 0\n\nif __name__ == "__main__":\n    sys.exit(main(sys.argv))\n# end of the example, about two hundred bytes of python');
  let sj = lm.initState(), sw = lm.initState();
  let worst = 0;
  for (let t = 0; t < text.length; t++) {
    const a = lm.step(text[t], sj, { backend: 'js' });
    const b = lm.step(text[t], sw, { backend: 'wasm' });
    sj = a.state; sw = b.state;
    for (let v = 0; v < 256; v++) worst = Math.max(worst, Math.abs(a.logprobs[v] - b.logprobs[v]));
  }
  console.log(`  ${text.length} bytes: max|Δ logprob| wasm step vs float64 step ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-4, `wasm step differs by ${worst}`);
  const g = await lm.generate({ prompt, maxBytes: 32, temperature: 0 });
  assert.is(g.bytes.length, 32);
});

test('step from byte 0 = score log-probs; logprobs normalised', async () => {
  const text = prompt;
  const r = await lm.score(text, { backend: 'js', perToken: true });
  let state = lm.initState();
  for (let t = 0; t + 1 < text.length; t++) {
    const s = lm.step(text[t], state);
    state = s.state;
    assert.ok(Math.abs(s.logprobs[text[t + 1]] - r.logprobs![t]) < 1e-10, `t=${t}`);
    let z = 0;
    for (const lp of s.logprobs) z += Math.exp(lp);
    assert.ok(Math.abs(z - 1) < 1e-12);
  }
});

test('seeded sampling is reproducible; different seeds differ', async () => {
  const a = await lm.generate({ prompt, maxBytes: 48, temperature: 1, seed: 7 });
  const b = await lm.generate({ prompt, maxBytes: 48, temperature: 1, seed: 7 });
  const c = await lm.generate({ prompt, maxBytes: 48, temperature: 1, seed: 8 });
  assert.equal(Array.from(a.bytes), Array.from(b.bytes));
  assert.not.equal(Array.from(a.bytes), Array.from(c.bytes));
});

test('bad arguments', async () => {
  await expectError(() => lm.generate({ prompt: new Uint8Array(0) }), /prompt must hold at least one byte/, 'empty prompt');
  await expectError(() => lm.generate({ prompt, temperature: -1 }), /temperature/, 'temperature');
  await expectError(() => lm.generate({ prompt, maxBytes: 1.5 }), /maxBytes/, 'maxBytes');
  assert.throws(() => lm.step(256), /byte must be an integer in \[0, 256\)/);
  // text is taken since the tokenizer layer (the byte LM's tokens are its UTF-8 bytes); other types are refused
  assert.is((await lm.score('text')).bits, (await lm.score(new TextEncoder().encode('text'))).bits);
  await expectError(() => lm.score(42 as unknown as Uint8Array), /must be a string \(text\), a Uint8Array \(UTF-8 text\) or token ids/, 'not text');
});

test.after(() => lm.close());
test('generate (text and bytes) refuses a NaN next-token distribution (finite weights that overflow float32): E_INPUT naming the position, never an arbitrary token', async () => {
  const lm = await RetNetLM.load();
  // the byte LM with its first MLP's output layer set to ±3e38: finite, but the float32 step overflows to
  // ±Infinity. The seed family's load refuses such weights (the overflow bound); the fla loader does not
  // apply that bound yet, so its layers arrive marked checked — as these are here.
  const layers = lm.model.layers.map((lw, l) => l > 0 ? lw : markChecked({
    ...lw, mlp: { ...lw.mlp, linears: lw.mlp.linears.map((li, i) => i < lw.mlp.linears.length - 1 ? li : { ...li, W: Float32Array.from(li.W as Float32Array, (v) => (v >= 0 ? 3e38 : -3e38)) }) },
  }));
  const bad = new RetNetLM(new RetNet(lm.model.config, layers), { embed: lm.embed, head: lm.head, normWeight: lm.normWeight, normBias: lm.normBias, vocab: lm.vocab });
  const err = await expectError(() => bad.generate('hello', { maxNewTokens: 3, backend: 'wasm' }), /next-token distribution after 5 tokens is not a number/, 'wasm step');
  assert.is((err as { code?: string }).code, 'E_INPUT');
  // the byte-level generate (prompt as bytes): the float64 prefill stays finite, the float32 step does not
  const errB = await expectError(() => bad.generate({ prompt: new TextEncoder().encode('hello'), maxBytes: 4, backend: 'wasm' }), /next-token distribution after \d+ bytes is not a number/, 'byte generate');
  assert.is((errB as { code?: string }).code, 'E_INPUT');
  await bad.close();
  await lm.close();
});

test('a temperature so small that every logprob / T is −∞ samples greedily (before: NaN weights, the last id every time)', async () => {
  const greedy = await lm.generate({ prompt, maxBytes: 8, temperature: 0 });
  for (const temperature of [1e-310, 5e-324]) {
    const g = await lm.generate({ prompt, maxBytes: 8, temperature, seed: 3 });
    assert.equal(Array.from(g.bytes), Array.from(greedy.bytes), `temperature ${temperature}`);
  }
  const lp = Float64Array.from([-3, -0.1, -2.5, -40]);
  for (const [k, p] of [[0, 1], [2, 1], [0, 0.5]] as const) assert.is(sample(lp, 1e-320, new Rng(1), k, p), 1, `topK ${k} topP ${p}`);
});

// ------------------------------------------------------------ stop strings, with tokens chosen by the test

/** A fla fixture (vocab 128) with a character tokenizer, whose generation gives the ids of `seq` in turn
 *  (its prefill and step replaced: the numbers are not what is tested here). */
async function scriptedLm(): Promise<{ lm: RetNetLM; script: (seq: number[]) => void }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'retnet-stop-')), 'chars');
  cpSync(join(FIXTURES, 'fla', 'f32'), dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(charTokenizerJson()));
  const tlm = await RetNetLM.load(dir);
  const V = tlm.vocab;
  const script = (seq: number[]) => {
    let i = 0;
    const lp = () => { const a = new Float64Array(V).fill(-1e9); a[seq[Math.min(i++, seq.length - 1)]!] = 0; return a; };
    const state = tlm.initState();
    const m = tlm as unknown as { prefillInChunks: unknown; step: unknown };
    m.prefillInChunks = async () => ({ logprobs: lp(), state });
    m.step = () => ({ logprobs: lp(), state });
  };
  return { lm: tlm, script };
}

test('stop strings: the text up to the first stop in the whole text, found when a stop is split over tokens or inside one; generate and stream agree (the search now covers only the tail a new match can be in)', async () => {
  const { lm: tlm, script } = await scriptedLm();
  const tok = tlm.tokenizer;
  try {
    const prompt = 'x';
    const r = (() => { let a = 12345; return () => { a = (Math.imul(a, 1103515245) + 12345) >>> 0; return a / 4294967296; }; })();
    const alphabet = ['a', 'b', 'c', ' '].map((ch) => tok.encode(ch, { addBos: false })[0]!).concat([98, 99, 100]);
    const letters = 'abc ';
    for (let k = 0; k < 300; k++) {
      const seq = Array.from({ length: 1 + Math.floor(r() * 30) }, () => alphabet[Math.floor(r() * alphabet.length)]!);
      const stop = Array.from({ length: 1 + Math.floor(r() * 3) }, () => Array.from({ length: 1 + Math.floor(r() * 5) }, () => letters[Math.floor(r() * 4)]).join(''));
      // the reference: after each token, every stop searched for in the whole text so far
      const dec = tok.streamDecoder(tok.encode(prompt));
      let text = '', want = { text: '', reason: 'length', n: seq.length };
      for (let i = 0; i < seq.length; i++) {
        text += dec.push(seq[i]!);
        const hits = stop.map((s) => text.indexOf(s)).filter((j) => j >= 0);
        if (hits.length) { want = { text: text.slice(0, Math.min(...hits)), reason: 'stop', n: i + 1 }; break; }
        if (i + 1 === seq.length) want.text = text + dec.flush();
      }
      const what = `seq ${JSON.stringify(tok.decode(seq))} stop ${JSON.stringify(stop)}`;
      script(seq);
      const g = await tlm.generate(prompt, { maxNewTokens: seq.length, stop });
      assert.is(g.text, want.text, what);
      assert.is(g.stopReason, want.reason, what);
      assert.is(g.ids.length, want.n, what);
      script(seq);
      const pieces: string[] = [];
      for await (const p of tlm.stream(prompt, { maxNewTokens: seq.length, stop })) pieces.push(p);
      assert.is(pieces.join(''), want.text, `stream: ${what}`);
    }
    // a stop split over three tokens, found at the last; one inside a token's text after a partial match
    script([tok.encode('a', { addBos: false })[0]!, 99, 100]);
    assert.is((await tlm.generate(prompt, { maxNewTokens: 3, stop: ['ab c'] })).text, '');
    script([98, 100]);
    const g = await tlm.generate(prompt, { maxNewTokens: 2, stop: ['bab', 'c '] });
    assert.equal([g.text, g.stopReason], ['a', 'stop']);
    // a long generation with stop strings that almost match everywhere is linear: 40,000 tokens of 'a'
    // (~0.3 s here; before, every token searched the whole text: 8 s)
    const a = tok.encode('a', { addBos: false })[0]!;
    const seq = new Array<number>(40000).fill(a);
    const t0 = performance.now();
    script(seq);
    const long = await tlm.generate(prompt, { maxNewTokens: seq.length, stop: ['a'.repeat(40) + 'b', 'aab', 'b'] });
    const ms = performance.now() - t0;
    assert.is(long.text.length, 40000);
    assert.is(long.stopReason, 'length');
    assert.ok(ms < 4000, `40,000 tokens with stop strings took ${ms.toFixed(0)} ms`);
  } finally { await tlm.close(); }
});

test.run();
