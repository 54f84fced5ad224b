// Form agreement on random models (float64 js backend): parallel = chunkwise =
// recurrent = token-by-token step, for all four normalisation settings, batch
// 2, lengths 1, 2, 13, 100. Tolerance 1e-11 of max|ref|: all forms are float64
// and differ only in summation order (≈ L·2^-53 per sum), while the seed's bug
// class (a missing z, a skipped division) shows at 1e-3 and above.
import { test } from 'uvu';
import { MultiScaleRetention, RetNet, Tensor } from '../src/index.js';
import { expectRel, formsModel, NORM_FLAGS } from './helpers.js';

const TOL = 1e-11;
const FLAGS = NORM_FLAGS;

const model = formsModel();

for (const L of [1, 2, 13, 100]) {
  test(`RetNet L=${L}, B=2: parallel = chunkwise (1, 3, 7, L/4, L, L+5) = recurrent = step`, async () => {
    const x = Tensor.randn([2, L, 12], { seed: 100 + L });
    for (const flags of FLAGS) {
      const tag = `L=${L} attn=${flags.normalizeAttn} retn=${flags.normalizeRetn}`;
      const ref = await model.forward(x, { ...flags, numChunks: null, backend: 'js' });
      for (const c of [1, 3, 7, Math.max(1, Math.floor(L / 4)), L, L + 5]) {
        expectRel(await model.forward(x, { ...flags, chunkSize: c, backend: 'js' }), ref, TOL, `${tag} chunkSize ${c}`);
      }
      expectRel(await model.forward(x, { ...flags, numChunks: 4, backend: 'js' }), ref, TOL, `${tag} numChunks 4`);
      expectRel(await model.forward(x, { ...flags, numChunks: -1, backend: 'js' }), ref, TOL, `${tag} recurrent`);
      // token by token through the step API
      const st = model.initState(2);
      const ys = new Float64Array(2 * L * 12);
      for (let t = 0; t < L; t++) {
        const xt = new Float64Array(2 * 12);
        for (let b = 0; b < 2; b++) xt.set(x.data.subarray((b * L + t) * 12, (b * L + t + 1) * 12), b * 12);
        const { y } = model.step(new Tensor(xt, [2, 12]), st, flags);
        for (let b = 0; b < 2; b++) ys.set(y.data.subarray(b * 12, (b + 1) * 12), (b * L + t) * 12);
      }
      expectRel(ys, ref, TOL, `${tag} step`);
    }
  });
}

test('the normalisations change the retention output (so the tests above can see them)', async () => {
  const msr = MultiScaleRetention.fromRetNet(model, 0);
  const x = Tensor.randn([1, 50, 12], { seed: 3 });
  const outs = await Promise.all(FLAGS.map((f) => msr.forward(x, { ...f, numChunks: null, backend: 'js' })));
  for (let i = 1; i < outs.length; i++) {
    let diff = 0;
    for (let j = 0; j < outs[0].size; j++) diff = Math.max(diff, Math.abs(outs[i].data[j] - outs[0].data[j]));
    if (!(diff > 0)) throw new Error(`flags ${JSON.stringify(FLAGS[i])} gave the same MSR output as no normalisation`);
  }
});

test('MultiScaleRetention alone: parallel = chunkwise = recurrent', async () => {
  const msr = MultiScaleRetention.init({ dimModel: 16, numHeads: 2, valueFactor: 1, gateFn: 'relu', seed: 9 });
  const x = Tensor.randn([3, 33, 16], { seed: 4 });
  for (const flags of FLAGS) {
    const ref = await msr.forward(x, { ...flags, backend: 'js' });
    expectRel(await msr.forward(x, { ...flags, numChunks: 5, backend: 'js' }), ref, TOL, 'msr numChunks 5');
    expectRel(await msr.forward(x, { ...flags, numChunks: -1, backend: 'js' }), ref, TOL, 'msr recurrent');
  }
});

test('numChunks follows the seed: ceil(L/k)-sized chunks, k > L clamped', async () => {
  const x = Tensor.randn([1, 10, 12], { seed: 8 });
  const ref = await model.forward(x, { numChunks: null, normalizeRetn: true, backend: 'js' });
  // L=10 with 4 chunks and L=13 with 5 crash the seed (its padding); here they run.
  expectRel(await model.forward(x, { numChunks: 4, normalizeRetn: true, backend: 'js' }), ref, TOL, 'L=10, 4 chunks');
  expectRel(await model.forward(x, { numChunks: 1000, normalizeRetn: true, backend: 'js' }), ref, TOL, 'numChunks > L');
  const x13 = Tensor.randn([1, 13, 12], { seed: 9 });
  expectRel(await model.forward(x13, { numChunks: 5, backend: 'js' }), await model.forward(x13, { backend: 'js' }), TOL, 'L=13, 5 chunks');
});

test.run();
