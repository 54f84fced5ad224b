// BF16 weights kept as BF16 (src/model/bf16.ts; packed as BF16 and widened per GEMM call) give
// bit-identical results to the same model widened to float32 up front, on every engine and path:
// the widening is exact and the GEMMs then see the same float32 operands in the same order
// (the WASM GEMM per 256-column block: each output column's sum is unchanged by the blocking;
// the CBLAS engine: the whole widened weight in the same sgemm call, or the WASM panels for small M).
// Checked on the bf16-sharded fixture held resident and read from its files, for logits (chunkwise
// runtime + WasmHead or the float64 head), per-token log-probs and the recurrent step (WasmStepper).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { RetNetLM } from '../src/index.js';
import { Bf16Matrix, bf16MaxAbsBits } from '../src/model/bf16.js';
import { FIXTURES } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { widened } from './helpers/widen.js';
import { ENGINES, engineMissing } from './helpers/engines.js';

const dir = join(FIXTURES, 'fla', 'bf16-sharded');
const resident = await RetNetLM.loadFolder(dir, { bf16: 'resident' });
const fromFile = await RetNetLM.loadFolder(dir, { bf16: 'file' });
const ref = widened(resident);
const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 37 + seed * 11 + ((i * i) % 13)) % 100);

function sameBits(what: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) throw new Error(`${what}: differs at ${i}: ${a[i]} vs ${b[i]} (BF16 path vs float32 path)`);
  }
}

test('bf16MaxAbsBits = the largest |bits| & 0x7fff, for any offset and length (two values per 32-bit read)', () => {
  const all = Uint16Array.from({ length: 1001 }, (_, i) => (i * 40503 + 7) & 0xffff & ~0x4000); // no NaN/Inf
  for (const [o, n] of [[0, 0], [0, 1], [1, 1], [0, 1000], [1, 1000], [1, 999], [2, 997], [3, 2]] as const) {
    const v = all.subarray(o, o + n);
    let want = 0;
    for (const b of v) want = Math.max(want, b & 0x7fff);
    assert.is(bf16MaxAbsBits(v), want, `offset ${o}, length ${n}`);
  }
  // a NaN or an infinity anywhere (first, last, middle, either half of a pair) lifts it to 0x7f80 or more
  for (const at of [0, 1, 500, 501, 999]) for (const bad of [0x7f80, 0xff80, 0x7fc1]) {
    const v = all.slice(0, 1000); v[at] = bad;
    assert.ok(bf16MaxAbsBits(v) >= 0x7f80 && bf16MaxAbsBits(v.subarray(1)) >= (at >= 1 ? 0x7f80 : 0), `${bad.toString(16)} at ${at}`);
  }
});

test('the fixture loads as BF16 (resident and file-backed), its f32 twin as float32', () => {
  assert.ok(resident.model.layers[0].msr.q.W instanceof Bf16Matrix);
  assert.ok((resident.model.layers[0].msr.q.W as Bf16Matrix).resident);
  assert.ok(!(fromFile.model.layers[0].mlp.linears[0].W as Bf16Matrix).resident);
  assert.ok(fromFile.head instanceof Bf16Matrix && !fromFile.head.resident, "a file-backed model reads its head from the file too");
  assert.ok(fromFile.embed instanceof Bf16Matrix && !fromFile.embed.resident, "and its embedding rows, as tokens need them");
  assert.ok(resident.head instanceof Bf16Matrix && resident.embed instanceof Bf16Matrix);
  assert.ok(ref.model.layers[0].msr.q.W instanceof Float32Array);
});

for (const kernels of ENGINES) {
  test(`logits and log-probs: BF16 = float32 path bit for bit (wasm backend, ${kernels} engine; 5, 37 and 300 tokens, chunks 4 and 64)`, async () => {
    if (!canRun(`${kernels} engine`, engineMissing(kernels))) return;
    for (const [n, chunkSize] of [[5, 4], [37, 4], [300, 64]] as const) {
      const x = ids(n, n);
      const opts = { backend: 'wasm' as const, kernels, chunkSize };
      const want = await ref.logits(x, opts);
      for (const [name, lm] of [['resident', resident], ['file', fromFile]] as const) {
        sameBits(`${kernels} ${name} logits n=${n}`, (await lm.logits(x, opts)).logits, want.logits);
      }
      const lw = await ref.score(x, { ...opts, perToken: true });
      const lb = await resident.score(x, { ...opts, perToken: true });
      sameBits(`${kernels} logprobs n=${n}`, lb.logprobs!, lw.logprobs!);
      assert.is(lb.nll, lw.nll);
    }
  });
}

test('js backend (float64, widened on use): BF16 = float32 path bit for bit', async () => {
  const x = ids(37, 2);
  sameBits('js logits', (await fromFile.logits(x, { backend: 'js', chunkSize: 8 })).logits, (await ref.logits(x, { backend: 'js', chunkSize: 8 })).logits);
});

test('recurrent step (WasmStepper on BF16 panels, float64 head over the BF16 head): BF16 = float32 path bit for bit', () => {
  const x = ids(12, 3);
  for (const backend of ['wasm', 'js'] as const) {
    let a = resident.prefill(x.subarray(0, 1), 256, backend), b = ref.prefill(x.subarray(0, 1), 256, backend);
    for (let t = 1; t < x.length; t++) {
      sameBits(`step ${backend} t=${t}`, a.logprobs, b.logprobs);
      a = resident.step(x[t], a.state, { backend });
      b = ref.step(x[t], b.state, { backend });
    }
    sameBits(`step ${backend} last`, a.logprobs, b.logprobs);
  }
});

test.after(async () => { await resident.close(); await fromFile.close(); await ref.close(); });
test.run();
