// Prefill: a prompt into the recurrent state by the chunkwise form on the step's engine
// (WasmStepper.prefill, RetNet.prefill, RetNetLM.prefill on 'wasm'; docs/engines.md, "Prefill").
//
// - Against the fla goldens: the next-token log-probs after every prefix of the golden's first sequence,
//   and after a prefill continued by the step, within the float32 step's 1e-4 of max|logit| (the same
//   float32 activations and float64 state, summed in another order; test/fla-golden.test.ts).
// - Against the pool: at position 0 each chunk is the pool's WASM-engine arithmetic with the same chunk
//   length (products row by row on the same packed panels, the same intra, summary, scan and cross
//   kernels), so the outputs must be the pool's bit for bit, under every normalisation.
// - Threads: each head's retention and each output column are computed by the same code whichever
//   thread runs them, so 3 threads must equal 1 bit for bit (f32, the bf16 fallback, oneDNN where the
//   CPU has bfloat16 dot products; float64 and float32 states; a start at position > 0).
// - bf16: log-probs within the step's bf16 bound 2·(8·layers + 2)·u of max|logit| (test/precision.test.ts).
// - f32 on BF16 weights where a CBLAS library loads: chunks of at least GEMM_MIN_ROWS rows go to BLAS
//   (the panels unpacked to float32 rows, exact; OpenBLAS sums in its own order): held to the goldens by
//   the first test (bf16-sharded, chunks of 16) and to 1 thread bit for bit (fixed 512-column blocks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RetNet, RetNetLM, Tensor, type RecurrentState } from '../src/index.js';
import { WasmStepper } from '../src/runtime/stepper.js';
import * as js from '../src/backends/js.js';
import type { ModelSpec } from '../src/backends/executor.js';
import { dnnlMissing, loadDnnl } from '../src/runtime/dnnl.js';
import { FLA_MODELS, flaDir, flaGolden } from './helpers/fla-golden.js';
import { expectError, loadFixtureModel, NORM_FLAGS } from './helpers.js';
import { canRunPart } from './helpers/skip.js';
import { engineMissing } from './helpers/engines.js';

const specOf = (m: RetNet): ModelSpec => (m as unknown as { spec: ModelSpec }).spec;
const FLAGS = { normalizeAttn: false, normalizeRetn: false };

function sameBits(what: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) throw new Error(`${what}: differs at ${i}: ${a[i]} vs ${b[i]}`);
}

function inputs(L: number, d: number, seed: number): Float32Array {
  return Float32Array.from({ length: L * d }, (_, i) => Math.sin(0.37 * i + seed) * (1 + (i % 5) / 4));
}

/** worst |log-prob − golden log-softmax| / max|logit| of row t of the golden's first sequence */
function lpError(g: ReturnType<typeof flaGolden>, t: number, lp: ArrayLike<number>): number {
  const row = g.want.subarray(t * g.V, (t + 1) * g.V);
  let mx = -Infinity; for (const z of row) mx = Math.max(mx, z);
  let s = 0; for (const z of row) s += Math.exp(z - mx);
  let worst = 0;
  for (let v = 0; v < g.V; v++) worst = Math.max(worst, Math.abs(lp[v] - (row[v] - mx - Math.log(s))) / g.scale);
  return worst;
}

test('fla fixtures: prefill on wasm (chunks 1, 7, 16; float64 and float32 states) — next-token log-probs of prefixes, and the step after a prefill, within 1e-4 of the golden', async () => {
  for (const name of FLA_MODELS) {
    const lm = await RetNetLM.loadFolder(flaDir(name), { bf16: 'resident' });
    try {
      const g = flaGolden(name), ids = g.seqs[0];
      let worst = 0;
      for (const C of [1, 7, 16]) {
        for (const dtype of ['float64', 'float32'] as const) {
          for (const n of [1, 7, 8, 13, 20]) worst = Math.max(worst, lpError(g, n - 1, lm.prefill(ids.subarray(0, n), C, 'wasm', 'f32', dtype).logprobs));
          // 9 tokens by prefill (a chunk boundary inside for C = 7), the rest by the step
          let { state } = lm.prefill(ids.subarray(0, 9), C, 'wasm', 'f32', dtype);
          assert.ok(dtype === 'float32' ? state.layers[0][0].S instanceof Float32Array : state.layers[0][0].S instanceof Float64Array, `${name}: the state stays ${dtype}`);
          assert.is(state.pos, 9);
          for (let t = 9; t < 20; t++) {
            const r = lm.step(ids[t], state, { backend: 'wasm' });
            state = r.state;
            worst = Math.max(worst, lpError(g, t, r.logprobs));
          }
        }
      }
      console.log(`  ${name}: ${worst.toExponential(2)} (bound 1e-4)`);
      assert.ok(worst <= 1e-4, `${name}: ${worst}`);
    } finally { await lm.close(); }
  }
});

test('prefill at position 0 = the pool\'s WASM engine with the same chunk length, bit for bit (L = 37, chunks of 8; fla f32, bf16-sharded; seed retnet-small with every normalisation)', async () => {
  const models: [string, RetNet, () => Promise<void>][] = [];
  for (const name of ['f32', 'bf16-sharded'] as const) {
    const lm = await RetNetLM.loadFolder(flaDir(name), { bf16: 'resident' });
    models.push([name, lm.model, () => lm.close()]);
  }
  const seed = await loadFixtureModel('retnet-small');
  models.push(['retnet-small', seed, () => seed.close()]);
  try {
    for (const [name, m] of models) {
      const d = m.dims.d, L = 37, x = inputs(L, d, 3);
      // the normalisations are the seed family's (a fla model refuses them: lm-edges.test.ts)
      for (const flags of m.dims.arch.retentionNorms ? NORM_FLAGS : [FLAGS]) {
        const pool = await m.forward(new Tensor(x, [1, L, d]), { backend: 'wasm', kernels: 'wasm', chunkSize: 8, ...flags });
        const pre = m.prefill(new Tensor(x, [L, d]), undefined, { backend: 'wasm', chunkSize: 8, ...flags });
        sameBits(`${name} ${JSON.stringify(flags)}`, pre.y.data, pool.data);
        assert.is(pre.state.pos, L);
      }
    }
  } finally { for (const [, , close] of models) await close(); }
});

test('prefill: 3 threads = 1 thread bit for bit (outputs and states; f32 on WASM and on BLAS, bf16 fallback, oneDNN where present; float64 and float32 states; from position 0 and 5)', async () => {
  const lm = await RetNetLM.loadFolder(flaDir('bf16-sharded'), { bf16: 'resident' });
  const m = lm.model, d = m.dims.d;
  const kinds: [string, 'f32' | 'bf16', 'wasm' | 'dnnl' | 'blas'][] = [['f32', 'f32', 'wasm'], ['bf16 fallback', 'bf16', 'wasm']];
  if (canRunPart('prefill products on BLAS, threads', engineMissing('blas'))) kinds.push(['f32 BLAS', 'f32', 'blas']);
  if (!dnnlMissing() && loadDnnl().hasBf16Hardware) kinds.push(['bf16 oneDNN', 'bf16', 'dnnl']);
  else console.log('SKIPPED PART: prefill on the dnnl engine, threads — ' + (dnnlMissing() ?? 'this CPU has no bfloat16 dot products'));
  try {
    for (const [label, precision, kernels] of kinds) {
      const one = new WasmStepper(specOf(m), { threads: 1, precision, kernels });
      const three = new WasmStepper(specOf(m), { threads: 3, precision, kernels });
      try {
        assert.match(three.engine, /3 threads/);
        if (kernels === 'blas') assert.match(three.prefillEngine, /on BF16 weights/);
        for (const dtype of ['float64', 'float32'] as const) {
          const s1 = m.layers.map(() => js.zeroLayerState(m.dims, dtype)), s3 = m.layers.map(() => js.zeroLayerState(m.dims, dtype));
          // 5 tokens, then 40 more from position 5 (chunks of 32, then 8: BLAS's products from GEMM_MIN_ROWS = 12
          // rows and its retention from INTRA_MIN_ROWS = 32 tokens, the WASM kernels below)
          for (const [pos, n] of [[0, 5], [5, 40]] as const) {
            const x = inputs(n, d, pos + 1);
            sameBits(`${label} ${dtype} y from ${pos}`, three.prefill(x, n, pos, s3, FLAGS, 32), one.prefill(x, n, pos, s1, FLAGS, 32));
            for (let l = 0; l < m.layers.length; l++) {
              sameBits(`${label} ${dtype} S l=${l}`, s3[l].S, s1[l].S);
              sameBits(`${label} ${dtype} z l=${l}`, s3[l].z, s1[l].z);
            }
          }
        }
      } finally { one.close(); three.close(); }
    }
  } finally { await lm.close(); }
});

// float32 activations against the float64 chunkwise form: the runtime's chunkwise tolerance, 2e-5 of max|y|
// (test/runtime-golden.test.ts: float32 projections over d-wide sums and C-long retention sums).
test('prefill on wasm, chunks of 32 (BLAS retention and products where a CBLAS library loads; the WASM kernels with RETNET_KERNELS=wasm): within 2e-5 of max|y| of the float64 js prefill, L = 70, every normalisation on the seed model', async () => {
  const lmF = await RetNetLM.loadFolder(flaDir('bf16-sharded'), { bf16: 'resident' });
  const seed = await loadFixtureModel('retnet-small');
  const old = process.env.RETNET_KERNELS;
  try {
    for (const kernels of ['auto', 'wasm'] as const) {
      if (kernels === 'wasm') process.env.RETNET_KERNELS = 'wasm'; else delete process.env.RETNET_KERNELS;
      for (const [name, m, flagsList] of [['bf16-sharded', lmF.model, [FLAGS]], ['retnet-small', seed, NORM_FLAGS]] as const) {
        const d = m.dims.d, L = 70, x = inputs(L, d, 6);
        for (const flags of flagsList) {
          (m as unknown as { stepper?: WasmStepper }).stepper?.close();
          (m as unknown as { stepper?: WasmStepper }).stepper = undefined; // a stepper made under this RETNET_KERNELS
          const ref = m.prefill(new Tensor(Float64Array.from(x), [L, d]), undefined, { chunkSize: 32, ...flags });
          const got = m.prefill(new Tensor(x, [L, d]), undefined, { backend: 'wasm', chunkSize: 32, ...flags });
          let diff = 0, scale = 0;
          for (let i = 0; i < ref.y.data.length; i++) { diff = Math.max(diff, Math.abs(got.y.data[i] - ref.y.data[i])); scale = Math.max(scale, Math.abs(ref.y.data[i])); }
          const engine = (m as unknown as { stepper: WasmStepper }).stepper.prefillEngine;
          console.log(`  ${name} ${kernels} ${JSON.stringify(flags)}: ${(diff / scale).toExponential(2)} (${engine})`);
          // the BLAS panels are named only for a model with BF16 weights (before: for a float32 one too)
          if (name === 'retnet-small') assert.not.match(engine, /on BF16 weights/, engine);
          else if (kernels === 'auto' && /retention: openblas/.test(engine)) assert.match(engine, /on BF16 weights/, engine);
          assert.ok(diff / scale <= 2e-5, `${name} ${kernels}: ${diff / scale}`);
        }
      }
    }
  } finally {
    if (old === undefined) delete process.env.RETNET_KERNELS; else process.env.RETNET_KERNELS = old;
    await lmF.close(); await seed.close();
  }
});

test('prefill at bf16 (the fallback; oneDNN where present): next-token log-probs within 2·(8·layers + 2)·u of max|logit| of the golden', async () => {
  const U = 2 ** -9;
  const kinds: ('wasm' | 'dnnl')[] = ['wasm'];
  if (!dnnlMissing() && loadDnnl().hasBf16Hardware) kinds.push('dnnl');
  else console.log('SKIPPED PART: prefill at bf16 on the dnnl engine — ' + (dnnlMissing() ?? 'this CPU has no bfloat16 dot products'));
  const old = process.env.RETNET_KERNELS;
  try {
    for (const kernels of kinds) {
      process.env.RETNET_KERNELS = kernels;
      for (const name of FLA_MODELS) {
        const lm = await RetNetLM.loadFolder(flaDir(name), { bf16: 'resident' });
        try {
          const g = flaGolden(name), ids = g.seqs[0], bound = 2 * (8 * lm.model.layers.length + 2) * U;
          let worst = 0;
          for (const n of [7, 20]) worst = Math.max(worst, lpError(g, n - 1, lm.prefill(ids.subarray(0, n), 8, 'wasm', 'bf16').logprobs));
          console.log(`  ${name} bf16 ${kernels}: ${worst.toExponential(2)} (bound ${bound.toExponential(2)})`);
          assert.ok(worst <= bound, `${name} ${kernels}: ${worst} > ${bound}`);
        } finally { await lm.close(); }
      }
    }
  } finally {
    if (old === undefined) delete process.env.RETNET_KERNELS; else process.env.RETNET_KERNELS = old;
  }
});

test('a state made in the step\'s memory (initState with on: wasm): zero, views of the stepper memory, the same prefill and steps bit for bit; a released block comes back zeroed', async () => {
  const lm = await RetNetLM.loadFolder(flaDir('f32'));
  const m = lm.model, d = m.dims.d, L = 21;
  try {
    const x = inputs(L, d, 4);
    for (const dtype of ['float64', 'float32'] as const) {
      const a = m.initState(1, dtype, { backend: 'wasm' }), b = m.initState(1, dtype);
      const S0 = a.layers[1][0].S;
      assert.ok(S0.buffer instanceof SharedArrayBuffer && (dtype === 'float32' ? S0 instanceof Float32Array : S0 instanceof Float64Array), `${dtype}: a view of the stepper memory`);
      assert.ok(S0.every((v) => v === 0) && a.layers[1][0].z.every((v) => v === 0), `${dtype}: zero`);
      const ya = m.prefill(new Tensor(x, [L, d]), a, { backend: 'wasm', chunkSize: 8 }).y, yb = m.prefill(new Tensor(x, [L, d]), b, { backend: 'wasm', chunkSize: 8 }).y;
      sameBits(`${dtype} prefill`, ya.data, yb.data);
      assert.is(a.layers[1][0].S, S0, 'not moved: the same views');
      const x1 = new Tensor(inputs(1, d, 7), [1, d]);
      sameBits(`${dtype} step`, m.step(x1, a, { backend: 'wasm' }).y.data, m.step(x1, b, { backend: 'wasm' }).y.data);
      // released: the next state takes the same block, zeroed although it was written
      const offsets = a.layers.map((l) => l[0].S.byteOffset);
      (await import('../src/model/retnet.js')).releaseStepState(m, a);
      const c = m.initState(1, dtype, { backend: 'wasm' });
      assert.equal(c.layers.map((l) => l[0].S.byteOffset).sort(), offsets.slice().sort(), `${dtype}: the released blocks are reused`);
      assert.ok(c.layers.every((l) => l[0].S.every((v) => v === 0) && l[0].z.every((v) => v === 0)), `${dtype}: zeroed`);
    }
    assert.throws(() => m.initState(1, 'float64', { backend: 'js' } as unknown as { backend: 'wasm' }), (e: unknown) => (e as { code?: string }).code === 'E_OPTION');
  } finally { await lm.close(); }
});

test('RetNet.prefill on js = L js steps (float64, 1e-12 of max|y|); bad input and options are errors with codes', async () => {
  const lm = await RetNetLM.loadFolder(flaDir('f32'));
  const m = lm.model, d = m.dims.d, L = 11;
  try {
    const x = inputs(L, d, 9);
    const st = m.initState(1);
    const ys: number[] = [];
    for (let t = 0; t < L; t++) ys.push(...m.step(new Tensor(x.subarray(t * d, (t + 1) * d), [1, d]), st).y.data);
    const p = m.prefill(new Tensor(x, [L, d]), undefined, { chunkSize: 4 });
    let diff = 0, scale = 0;
    for (let i = 0; i < ys.length; i++) { diff = Math.max(diff, Math.abs(p.y.data[i] - ys[i])); scale = Math.max(scale, Math.abs(ys[i])); }
    assert.ok(diff / scale <= 1e-12, `js prefill vs js steps: ${diff / scale}`);
    for (let l = 0; l < m.layers.length; l++) {
      let e = 0, s = 0;
      const a = p.state.layers[l][0].S, b = st.layers[l][0].S;
      for (let i = 0; i < a.length; i++) { e = Math.max(e, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
      assert.ok(e / s <= 1e-12, `js prefill state, layer ${l}: ${e / s}`);
    }
    // from a later position (pos0 > 0): two pieces cut at a chunk boundary = one call, bit for bit, on
    // js and on wasm (the same chunks; how generate feeds a long prompt)
    for (const backend of ['js', 'wasm'] as const) {
      const whole = m.prefill(new Tensor(x, [L, d]), undefined, { backend, chunkSize: 4 });
      const s2 = m.initState(1);
      const a = m.prefill(new Tensor(x.slice(0, 8 * d), [8, d]), s2, { backend, chunkSize: 4 });
      const b = m.prefill(new Tensor(x.slice(8 * d), [L - 8, d]), s2, { backend, chunkSize: 4 });
      sameBits(`${backend}: two pieces`, [...a.y.data, ...b.y.data], whole.y.data);
      sameBits(`${backend}: their state`, s2.layers[1][0].S, whole.state.layers[1][0].S);
    }
    const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
    const two: RecurrentState = m.initState(2);
    assert.throws(() => m.prefill(new Tensor(x, [L, d]), two, { backend: 'wasm' }), code('E_INPUT'));
    assert.throws(() => m.prefill(new Tensor(x, [L, d]), undefined, { backend: 'wasm', chunkSize: 0 }), code('E_OPTION'));
    assert.throws(() => m.prefill(new Tensor(x, [L, d]), undefined, { backend: 'tfjs' as 'wasm' }), code('E_OPTION'));
    assert.throws(() => m.prefill(new Tensor(x.subarray(0, 3 * d), [1, 3 * d]), undefined, { backend: 'wasm' }), code('E_INPUT'));
    const bad = x.slice(); bad[d + 2] = NaN;
    await expectError(() => m.prefill(new Tensor(bad, [L, d]), undefined, { backend: 'wasm' }), /prefill input has a non-finite value NaN at \[1, 2\]/, 'NaN');
    assert.throws(() => lm.prefill([], 8, 'wasm'), code('E_INPUT'));
  } finally { await lm.close(); }
  assert.throws(() => m.prefill(new Tensor(inputs(1, d, 1), [1, d])), code0('E_CLOSED'));
});

function code0(c: string) { return (e: unknown) => (e as { code?: string }).code === c; }

test.run();
