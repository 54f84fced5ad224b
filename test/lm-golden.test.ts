// Golden: the byte LM (src/assets/bytes-4x128) reproduces the PyTorch
// reference's log-probs of the first 2,048 bytes of pprint.py
// (test/fixtures/lm-bytes.cases.safetensors, parallel form in float64).
// - js backend (float64 throughout, from the same float32 weights): only the
//   summation order differs, ~1e-14 measured → bound 1e-9 absolute.
// - wasm backend (float32 activations): ~1e-6 measured → bound 1e-4 absolute,
//   at chunk sizes 64, 256, 2048 and fully recurrent.
// - bits/byte of the window = the fixture's __metadata__ (2.7441) to 3 decimals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readSafetensors } from '../src/safetensors.js';
import { RetNetLM, type ScoreOptions } from '../src/index.js';
import { casesPath } from './helpers.js';

const fx = readSafetensors(casesPath('lm-bytes'));
const ids = Uint8Array.from(fx.tensors.get('input_ids')!.data as Int32Array);
const want = fx.tensors.get('logprobs')!.data as Float64Array;
const wantBpb = Number(fx.metadata.bits_per_byte);
const lm = await RetNetLM.load();

function maxAbsErr(got: Float64Array, n = got.length): { err: number; at: number } {
  let err = 0, at = -1;
  for (let i = 0; i < n; i++) { const e = Math.abs(got[i] - want[i]); if (!(e <= err)) { err = e; at = i; } }
  return { err, at };
}

async function check(label: string, opts: ScoreOptions, tol: number, n = ids.length): Promise<void> {
  const t0 = performance.now();
  const r = await lm.score(ids.subarray(0, n), { ...opts, perToken: true });
  const sec = (performance.now() - t0) / 1000;
  assert.is(r.logprobs!.length, n - 1, `${label}: logprobs length`);
  const { err, at } = maxAbsErr(r.logprobs!);
  console.log(`  ${label}: max|Δ logprob| = ${err.toExponential(2)} over ${n - 1} bytes, ${r.bitsPerByte.toFixed(4)} bits/byte, ${sec.toFixed(2)} s`);
  if (!(err <= tol)) throw new Error(`${label}: max|Δ logprob| = ${err.toExponential(3)} > ${tol} at t=${at} (got ${r.logprobs![at]}, want ${want[at]})`);
  let nll = 0;
  for (let i = 0; i < n - 1; i++) nll -= r.logprobs![i];
  assert.ok(Math.abs(r.bits - nll / Math.LN2) < 1e-6 * r.bits, `${label}: bits = −Σ logprobs / ln 2`);
  if (n === ids.length) {
    assert.is(r.bitsPerByte.toFixed(3), wantBpb.toFixed(3), `${label}: bits/byte`);
    assert.is(r.bytes, ids.length);
  }
}

test('js (float64): chunk 256 (default; whole window) and 64 (first 512 bytes), within 1e-9', async () => {
  assert.is(wantBpb.toFixed(4), '2.7441');
  await check('js chunk 256', { backend: 'js' }, 1e-9);
  await check('js chunk 64', { backend: 'js', chunkSize: 64 }, 1e-9, 512);
});

test('wasm (float32): chunk sizes 64, 256, 2048 and recurrent, within 1e-4', async () => {
  for (const chunkSize of [64, 256, 2048]) await check(`wasm chunk ${chunkSize}`, { backend: 'wasm', chunkSize }, 1e-4);
  await check('wasm recurrent', { backend: 'wasm', numChunks: -1 }, 1e-4);
});

test('ragged batch in one pass equals one sequence at a time (wasm), short sequences', async () => {
  const texts = [ids.subarray(0, 700), ids.subarray(0, 1), ids.subarray(100, 101 + 333), new Uint8Array(0), ids.subarray(0, 2)];
  const batch = await lm.score(texts, { backend: 'wasm', chunkSize: 64, perToken: true, windowRows: 256 });
  assert.is(batch.length, texts.length);
  for (let i = 0; i < texts.length; i++) {
    const one = await lm.score(texts[i], { backend: 'wasm', chunkSize: 64, perToken: true });
    assert.is(batch[i].bytes, texts[i].length);
    assert.is(batch[i].logprobs!.length, Math.max(0, texts[i].length - 1));
    for (let t = 0; t < one.logprobs!.length; t++) {
      if (Math.abs(one.logprobs![t] - batch[i].logprobs![t]) > 1e-5) throw new Error(`text ${i} t=${t}: batch ${batch[i].logprobs![t]} vs alone ${one.logprobs![t]}`);
    }
  }
  assert.is(batch[1].bits, 0);
  assert.is(batch[3].bitsPerByte, 0);
  // the first text's log-probs are the fixture's
  for (let t = 0; t < 699; t++) if (Math.abs(batch[0].logprobs![t] - want[t]) > 1e-4) throw new Error(`ragged text 0 t=${t}`);
});

test('progress reaches the total; without perToken no logprobs are kept', async () => {
  let last = 0;
  const r = await lm.score(ids.subarray(0, 300), { backend: 'js', onProgress: (d, t) => { last = d; assert.is(t, 300); } });
  assert.is(last, 300);
  assert.is(r.logprobs, undefined);
});

test.after(() => lm.close());
test.run();
