// The seed README's example, scaled down from (6 layers, 8 heads, d=512,
// B=2, L=1024) to keep the float64 reference fast: same structure (value
// factor 2, gelu gates, MLP 4·d, randint(0,100) inputs), parallel vs 8 chunks.
// Tolerance 1e-10 of max|ref| (float64 both sides, summation order only).
import { test } from 'uvu';
import { MultiScaleRetention, RetNet, Tensor, allclose } from '../src/index.js';
import { expectRel } from './helpers.js';

test('RetNet: parallel_forward ≈ chunked (8 chunks), as in the seed README', async () => {
  const model = RetNet.init({ numLayer: 2, numHeads: 4, dimModel: 64, dropout: 0.1, valueFactor: 2, msrGateFn: 'gelu', mlpGateFn: 'gelu', mlpMult: 4, mlpBias: true, seed: 0 });
  const x = Tensor.randint(0, 100, [2, 128, 64], { seed: 1 });
  const parallel = await model.forward(x, { attnMask: 'causal', numChunks: null, backend: 'js' });
  const chunked = await model.forward(x, { attnMask: 'causal', numChunks: 8, backend: 'js' });
  expectRel(chunked, parallel, 1e-10, 'seed example');
  if (!allclose(parallel, chunked)) throw new Error('allclose(parallel, chunked) is false');
  for (const flags of [{ normalizeAttn: true }, { normalizeRetn: true }]) {
    const p = await model.forward(x, { ...flags, numChunks: null, backend: 'js' });
    const c = await model.forward(x, { ...flags, numChunks: 8, backend: 'js' });
    expectRel(c, p, 1e-10, `seed example ${JSON.stringify(flags)}`);
  }
  // The default backend (wasm, float32): both forms within 2e-5 of the float64 parallel result
  // (float32 sums over d=64..256-wide projections and ≤128-term retention rows: ~1e-6 expected).
  const wp = await model.forward(x, { attnMask: 'causal', numChunks: null });
  const wc = await model.forward(x, { attnMask: 'causal', numChunks: 8 });
  expectRel(wp, parallel, 2e-5, 'seed example wasm parallel');
  expectRel(wc, parallel, 2e-5, 'seed example wasm chunked');
  await model.close();
});

test('MultiScaleRetention: parallel ≈ 8 chunks, as in the seed README', async () => {
  const msr = MultiScaleRetention.init({ dimModel: 64, numHeads: 4, gateFn: 'gelu', valueFactor: 2, seed: 2 });
  const x = Tensor.randint(0, 100, [2, 128, 64], { seed: 3 });
  expectRel(await msr.forward(x, { numChunks: 8, backend: 'js' }), await msr.forward(x, { numChunks: null, backend: 'js' }), 1e-10, 'msr seed example');
});

test.run();
