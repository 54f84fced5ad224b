// Form agreement on the tfjs backend: parallel = chunkwise = recurrent for all
// four normalisation settings (random model via RetNet.init), checked on the
// RetNet output and on layer 0's retention output (where the normalisations
// show), and against the float64 js backend.
//
// Tolerance 2e-5 of max|ref|: every form runs in float32 (unit roundoff 6e-8)
// and they differ in summation order and in how the decay is split between
// the intra-chunk mask, ξ, ζ and the carried state, a few ulps per sum over
// L ≤ 100 rows and d = 12..16 features; a missing z or normalisation shows
// at 1e-3 and above.
import { test } from 'uvu';
import { RetNet, Tensor } from '../src/index.js';
import { expectRel, formsModel, NORM_FLAGS } from './helpers.js';
import { executor, req, specOf } from './tfjs-helpers.js';

const TOL = 2e-5;
const FLAGS = NORM_FLAGS;

const model = formsModel();

test('tfjs (wasm): parallel = chunkwise (1, 3, 7, L/4, L, L+5, 4 chunks) = recurrent, both state dtypes, = js float64', async () => {
  const ex = await executor('wasm');
  const spec = specOf(model);
  try {
    for (const L of [1, 2, 13, 100]) {
      const x = Tensor.randn([2, L, 12], { seed: 100 + L });
      for (const flags of FLAGS) {
        const tag = `L=${L} attn=${flags.normalizeAttn} retn=${flags.normalizeRetn}`;
        const ref = await ex.forward(spec, x, req({ ...flags, numChunks: null }));
        expectRel(ref, await model.forward(x, { ...flags, backend: 'js' }), TOL, `${tag} tfjs parallel vs js`);
        const refO = await ex.debugRetention(spec, x, req({ ...flags, numChunks: null }, 'msr'));
        const opts = [
          ...[1, 3, 7, Math.max(1, Math.floor(L / 4)), L, L + 5].map((c) => ({ chunkSize: c })),
          { numChunks: 4 }, { numChunks: -1 },
        ];
        for (const o of opts) {
          for (const stateDtype of ['float64', 'float32'] as const) {
            const what = `${tag} ${JSON.stringify(o)} ${stateDtype}`;
            expectRel(await ex.forward(spec, x, req({ ...flags, ...o, stateDtype })), ref, TOL, what);
            expectRel(await ex.debugRetention(spec, x, req({ ...flags, ...o, stateDtype }, 'msr')), refO, TOL, `${what} retention`);
          }
        }
      }
    }
  } finally { await ex.close(); }
});

test('tfjs (wasm): small windows (many windows per sequence) give the same answer', async () => {
  const { createTfjsExecutor } = await import('../src/backends/tfjs/index.js');
  const ex = await createTfjsExecutor({ engine: 'wasm', windowElems: 300 });
  const big = await executor('wasm');
  try {
    const x = Tensor.randn([2, 57, 12], { seed: 7 });
    for (const flags of FLAGS) for (const o of [{ chunkSize: 3 }, { numChunks: -1 }, { chunkSize: 5, stateDtype: 'float32' as const }]) {
      expectRel(await ex.forward(specOf(model), x, req({ ...flags, ...o })), await big.forward(specOf(model), x, req({ ...flags, numChunks: null })), TOL, `windowed ${JSON.stringify({ ...flags, ...o })}`);
    }
  } finally { await ex.close(); await big.close(); }
});

test('model.forward({ backend: "tfjs" }) and MultiScaleRetention through the registry', async () => {
  const prev = process.env.RETNET_TFJS_ENGINE;
  process.env.RETNET_TFJS_ENGINE = 'wasm';
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, valueFactor: 1, mlpMult: 2, seed: 1 });
  try {
    const x = Tensor.randn([1, 20, 8], { seed: 2 });
    const y = await m.forward(x, { backend: 'tfjs', numChunks: 3, normalizeRetn: true });
    expectRel(y, await m.forward(x, { numChunks: 3, normalizeRetn: true }), TOL, 'RetNet tfjs vs js');
    const info = await m.backendInfo();
    if (info[0]?.engine !== 'wasm' || info[0]?.backend !== 'tfjs') throw new Error(`backendInfo: ${JSON.stringify(info)}`);
    const { MultiScaleRetention } = await import('../src/index.js');
    const msr = MultiScaleRetention.fromRetNet(m, 0);
    try {
      expectRel(await msr.forward(x, { backend: 'tfjs', chunkSize: 6, normalizeAttn: true }), await msr.forward(x, { normalizeAttn: true }), TOL, 'MSR tfjs vs js');
    } finally { await msr.close(); }
  } finally {
    await m.close();
    if (prev === undefined) delete process.env.RETNET_TFJS_ENGINE; else process.env.RETNET_TFJS_ENGINE = prev;
  }
});

test.run();
