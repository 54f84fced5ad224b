// The chunk-parallel runtime (wasm backend, float32) against the golden
// fixtures: every output.* within 2e-5·max|ref|. Float32 arithmetic over the
// d-wide projections and C-long retention sums lands about 1e-6..3e-5 of
// max|ref| from the float64 reference (fixtures README); 2e-5 is the bound.
import { test } from 'uvu';
import { FIXTURE_NAMES, expectRel, loadCases, loadFixtureModel } from './helpers.js';
import type { ForwardOptions } from '../src/options.js';
import { ENGINES, engineMissing } from './helpers/engines.js';
import { canRun } from './helpers/skip.js';

const TOL = 2e-5;

for (const kernels of ENGINES) for (const name of FIXTURE_NAMES) {
  const title = `${name}: wasm runtime on ${kernels} kernels, chunk counts dividing L or not, 1 and 2 workers`;
  test(title, async () => {
    if (!canRun(title, engineMissing(kernels))) return;
    const model = await loadFixtureModel(name);
    const fx = loadCases(name);
    const x = fx.get('input');
    const L = x.shape[1];
    const forms: ForwardOptions[] = L > 1000
      ? [{ numChunks: 16 }, { chunkSize: 100 }, { chunkSize: 1000 }]
      : [{ numChunks: null }, { numChunks: 4 }, { numChunks: 5 }, { chunkSize: 7 }, { numChunks: -1 }];
    for (const workers of [1, 2]) {
      for (const c of fx.cases) {
        const flags = { normalizeAttn: c.normalize_attn, normalizeRetn: c.normalize_retn };
        for (const f of forms) {
          const y = await model.forward(x, { ...f, ...flags, backend: 'wasm', kernels, workers });
          expectRel(y, fx.get(c.output), TOL, `${name} ${kernels} ${c.output} ${JSON.stringify(f)} workers=${workers}`);
        }
      }
    }
    await model.close();
  });
}

test.run();
