// Golden: the fla-family models (test/fixtures/fla, made by tools/fla/make_fixtures.py from a
// float64 PyTorch transcription of fla's RetNet, checked against fla's naive retention) give
// the fixtures' logits on every backend and form.
// Tolerances (scale-free: max|Δ logit| / max|logit|):
// - js (float64 from the same weights): only summation order differs; measured ~1e-15 → 1e-9.
// - wasm (both engines) and tfjs (float32 activations, float64 decay tables and state): each
//   logit is a float32 dot product over d ≤ 64 after 2 layers of float32 projections over
//   K ≤ 256 terms; measured 3e-7 … 1.2e-6 → 3e-5 (the bound).
// - per-token log-probs (score with perToken) within 1e-4·max|logit| (1e-9 on js): a
//   log-softmax adds one logsumexp's rounding on top of the logits'.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RetNetLM, type RecurrentState, type ScoreOptions } from '../src/index.js';
import { FIXTURES } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { FLA_MODELS, flaDir, flaGolden } from './helpers/fla-golden.js';
import { engineMissing } from './helpers/engines.js';
import { webgpuExecutor } from './tfjs-helpers.js';

const MODELS = FLA_MODELS;
const dirOf = flaDir;
const golden = flaGolden;


/** max over the batch of max|Δ logit| / max|logit|, with where the worst is. */
async function logitError(lm: RetNetLM, name: string, opts: ScoreOptions): Promise<number> {
  const g = golden(name);
  let worst = 0, where = '';
  for (let b = 0; b < g.seqs.length; b++) {
    const { logits } = await lm.logits(g.seqs[b], opts);
    assert.is(logits.length, g.T * g.V);
    for (let i = 0; i < logits.length; i++) {
      const e = Math.abs(logits[i] - g.want[b * g.T * g.V + i]) / g.scale;
      if (!(e <= worst)) { worst = e; where = `[${b}, ${Math.floor(i / g.V)}, ${i % g.V}]`; }
    }
  }
  if (worst > 0) console.log(`  ${name} ${JSON.stringify(opts)}: ${worst.toExponential(2)} at ${where}`);
  return worst;
}

/** Per-token log-probs from score() against the golden logits' log-softmax. */
async function logprobError(lm: RetNetLM, name: string, opts: ScoreOptions): Promise<number> {
  const g = golden(name);
  let worst = 0;
  for (let b = 0; b < g.seqs.length; b++) {
    const r = await lm.score(g.seqs[b], { ...opts, perToken: true });
    assert.is(r.tokens, g.T);
    assert.is(r.logprobs!.length, g.T - 1);
    let nll = 0;
    for (let t = 0; t + 1 < g.T; t++) {
      const row = g.want.subarray((b * g.T + t) * g.V, (b * g.T + t + 1) * g.V);
      let m = -Infinity;
      for (const z of row) m = Math.max(m, z);
      let s = 0;
      for (const z of row) s += Math.exp(z - m);
      const lp = row[g.seqs[b][t + 1]] - m - Math.log(s);
      worst = Math.max(worst, Math.abs(r.logprobs![t] - lp) / g.scale);
      nll -= r.logprobs![t];
    }
    assert.ok(Math.abs(r.nll - nll) <= 1e-9 * Math.abs(nll), `${name}: nll = −Σ logprobs`);
    assert.ok(Math.abs(r.perplexity - Math.exp(nll / (g.T - 1))) <= 1e-9 * r.perplexity, `${name}: perplexity`);
    assert.is(r.bitsPerByte, undefined, 'ids have no bits per byte');
  }
  return worst;
}

const lms = new Map<string, RetNetLM>();
const lmOf = async (name: string) => lms.get(name) ?? lms.set(name, await RetNetLM.load(dirOf(name))).get(name)!;

test('js (float64): parallel, chunkwise (1, 7, 16) and recurrent logits within 1e-9 of the golden, every fla fixture', async () => {
  for (const name of MODELS) {
    const lm = await lmOf(name);
    for (const opts of [{ numChunks: null }, { chunkSize: 1 }, { chunkSize: 7 }, { chunkSize: 16 }, { numChunks: -1 }] as ScoreOptions[]) {
      const e = await logitError(lm, name, { backend: 'js', ...opts });
      assert.ok(e <= 1e-9, `${name} js ${JSON.stringify(opts)}: ${e}`);
    }
    const lp = await logprobError(lm, name, { backend: 'js', chunkSize: 16 });
    assert.ok(lp <= 1e-9, `${name} js log-probs: ${lp}`);
  }
});

for (const kernels of ['wasm', 'blas', 'dnnl'] as const) {
  const name = `wasm backend, ${kernels} engine: parallel, chunkwise (7, 16) and recurrent logits within 3e-5, log-probs within 1e-4 (of max|logit|)`;
  test(name, async () => {
    if (!canRun(name, engineMissing(kernels))) return;
    for (const m of MODELS) {
      const lm = await lmOf(m);
      for (const opts of [{ numChunks: null }, { chunkSize: 7 }, { chunkSize: 16 }, { numChunks: -1 }] as ScoreOptions[]) {
        const e = await logitError(lm, m, { backend: 'wasm', kernels, ...opts });
        assert.ok(e <= 3e-5, `${m} wasm/${kernels} ${JSON.stringify(opts)}: ${e}`);
      }
      const lp = await logprobError(lm, m, { backend: 'wasm', kernels, chunkSize: 16 });
      assert.ok(lp <= 1e-4, `${m} wasm/${kernels} log-probs: ${lp}`);
    }
  });
}

test('tfjs (cpu and wasm engines): chunkwise (16) and parallel logits within 3e-5 of the golden', async () => {
  for (const engine of ['cpu', 'wasm']) {
    process.env.RETNET_TFJS_ENGINE = engine;
    for (const m of MODELS) {
      const lm = await RetNetLM.load(dirOf(m)); // a fresh model: its tfjs executor takes the engine now named
      try {
        for (const opts of [{ chunkSize: 16 }, { numChunks: null }] as ScoreOptions[]) {
          const e = await logitError(lm, m, { backend: 'tfjs', ...opts });
          assert.ok(e <= 3e-5, `${m} tfjs/${engine} ${JSON.stringify(opts)}: ${e}`);
        }
      } finally { await lm.close(); }
    }
  }
  delete process.env.RETNET_TFJS_ENGINE;
});

test('tfjs on WebGPU (Dawn; llvmpipe in CI): chunkwise (16) logits within 3e-5 of the golden, three fla fixtures', async () => {
  const name = 'tfjs/webgpu fla golden';
  const probe = await webgpuExecutor();
  if (!canRun(name, probe.missing)) return;
  await probe.ex!.close();
  process.env.RETNET_TFJS_ENGINE = 'webgpu';
  try {
    // llvmpipe compiles every shader with LLVM: three models (F32, BF16 shards, grouped kv heads) keep it short
    for (const m of ['f32', 'bf16-sharded', 'gqa'] as const) {
      const lm = await RetNetLM.load(dirOf(m));
      try {
        const e = await logitError(lm, m, { backend: 'tfjs', chunkSize: 16 });
        const info = await lm.model.backendInfo();
        assert.ok(info.some((i) => i.engine === 'webgpu'), `engine: ${JSON.stringify(info)}`);
        console.log(`  ${m} on ${info.map((i) => i.device).join(', ')}: ${e.toExponential(2)}`);
        assert.ok(e <= 3e-5, `${m} tfjs/webgpu: ${e}`);
      } finally { await lm.close(); }
    }
  } finally { delete process.env.RETNET_TFJS_ENGINE; }
});

/** 20 steps of the golden's first sequence from `state`: the worst next-token log-prob error against the
 *  golden's log-softmax, over its max|logit|; `each` sees every step's state. */
function stepError(lm: RetNetLM, g: ReturnType<typeof golden>, state: RecurrentState, backend: 'js' | 'wasm', each?: (s: RecurrentState) => void): number {
  const ids = g.seqs[0];
  let worst = 0;
  for (let t = 0; t < 20; t++) {
    const r = lm.step(ids[t], state, { backend });
    state = r.state;
    each?.(state);
    const row = g.want.subarray(t * g.V, (t + 1) * g.V);
    let mx = -Infinity; for (const z of row) mx = Math.max(mx, z);
    let s = 0; for (const z of row) s += Math.exp(z - mx);
    for (let v = 0; v < g.V; v++) worst = Math.max(worst, Math.abs(r.logprobs[v] - (row[v] - mx - Math.log(s))) / g.scale);
  }
  return worst;
}

test('recurrent step (js float64 and wasm): token by token, the next-token log-probs match the golden logits', async () => {
  for (const m of MODELS) {
    const lm = await lmOf(m);
    const g = golden(m);
    for (const backend of ['js', 'wasm'] as const) {
      const worst = stepError(lm, g, lm.initState(), backend);
      const tol = backend === 'js' ? 1e-9 : 1e-4;
      assert.ok(worst <= tol, `${m} step ${backend}: ${worst}`);
    }
  }
});

// A float32 state (initState('float32'): S rounded to float32 after every update) on both steps: within
// the float32 step's 1e-4 of the float64 golden; on the js step (float64 elsewhere) its error must exceed
// the float64 step's 1e-9, or the state was not rounded at all.
test('recurrent step with a float32 state (js and wasm): token by token within the float32 step\'s tolerance of the golden', async () => {
  for (const m of MODELS) {
    const lm = await lmOf(m);
    const g = golden(m);
    for (const backend of ['js', 'wasm'] as const) {
      const worst = stepError(lm, g, lm.initState('float32'), backend,
        (st) => assert.ok(st.layers[0][0].S instanceof Float32Array, `${m} ${backend}: the state stays float32`));
      console.log(`  ${m} step ${backend}, float32 state: ${worst.toExponential(2)} (bound 1e-4)`);
      assert.ok(worst <= 1e-4, `${m} step ${backend} float32 state: ${worst}`);
      if (backend === 'js') assert.ok(worst > 1e-9, `${m} js step with a float32 state: ${worst} is float64-sized`);
    }
  }
});

test('the fla family refuses retention normalisations it does not have', async () => {
  const lm = await lmOf('f32');
  const ids = golden('f32').seqs[0];
  for (const o of [{ normalizeAttn: true }, { normalizeRetn: true }]) {
    try { await lm.score(ids, { backend: 'js', ...o }); assert.unreachable('accepted'); } catch (e) {
      assert.is((e as { code?: string }).code, 'E_OPTION');
      assert.match((e as Error).message, /fla-family/);
    }
  }
});

test.after(async () => { for (const lm of lms.values()) await lm.close(); });

test.run();
