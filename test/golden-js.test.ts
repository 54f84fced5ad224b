// Golden: the float64 js backend reproduces the PyTorch fixtures in every form.
// Tolerance 1e-10 of max|ref|: both sides compute in float64 from the same
// float32 weights and inputs, so only summation order differs (about L·d·2^-53
// relative per layer, far below 1e-10).
import { test } from 'uvu';
import { retention } from '../src/index.js';
import { FIXTURE_NAMES, expectRel, loadCases, loadFixtureModel } from './helpers.js';
import type { ForwardOptions } from '../src/options.js';

const TOL = 1e-10;

for (const name of FIXTURE_NAMES) {
  test(`${name}: outputs and layer-0 retention, parallel / chunkwise / recurrent`, async () => {
    const model = await loadFixtureModel(name);
    const fx = loadCases(name);
    const x = fx.get('input');
    const L = x.shape[1];
    const forms: [string, ForwardOptions][] = [
      ['parallel', { numChunks: null }],
      ...[1, 3, 7, 64, L].map((c): [string, ForwardOptions] => [`chunkSize ${c}`, { chunkSize: c }]),
      ['recurrent', { numChunks: -1 }],
    ];
    const q = fx.get('layer0.q'), k = fx.get('layer0.k'), v = fx.get('layer0.v');
    const decay = model.layers[0].msr.decay;
    for (const c of fx.cases) {
      const flags = { normalizeAttn: c.normalize_attn, normalizeRetn: c.normalize_retn };
      const want = fx.get(c.output), wantRet = fx.get(c.retention);
      for (const [form, opts] of forms) {
        // The L=4096 fixture's O(L²) forms are slow in the float64 reference; chunkSize L covers it once.
        if (L > 1000 && form === 'parallel') continue;
        const y = await model.forward(x, { ...opts, ...flags, backend: 'js' });
        expectRel(y, want, TOL, `${name} ${c.output} ${form}`);
        const o = retention(q, k, v, decay, { ...opts, ...flags });
        expectRel(o, wantRet, TOL, `${name} ${c.retention} ${form}`);
      }
    }
  });
}

test('retnet-long: the parallel form itself on the retention fixture', async () => {
  const model = await loadFixtureModel('retnet-long');
  const fx = loadCases('retnet-long');
  const o = retention(fx.get('layer0.q'), fx.get('layer0.k'), fx.get('layer0.v'), model.layers[0].msr.decay, { numChunks: null, normalizeAttn: true, normalizeRetn: true });
  expectRel(o, fx.get('layer0.retention.attn_retn'), TOL, 'retnet-long retention parallel attn_retn');
});

test.run();
