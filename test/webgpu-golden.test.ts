// Golden: the tfjs backend on the WebGPU engine (Dawn; in CI Mesa's llvmpipe, a
// software Vulkan, forced with engine 'webgpu') reproduces the PyTorch fixtures'
// `output.*` and layer 0's retention output `o` in parallel, chunkwise and
// recurrent form, both state dtypes. llvmpipe compiles every shader with LLVM,
// so the set is small: every fixture and case, a few forms each.
//
// Tolerance 2e-5 of max|ref|, as for the other tfjs engines: WebGPU computes in
// float32 (unit roundoff 6e-8); dot products of length d ≤ 128 here and a few
// LayerNorms per layer put the expected error at 1e-7..3e-5 relative, far below
// the 1e-3 and above that a wrong decay, missing z or skipped normalisation gives.
import { test } from 'uvu';
import { FIXTURE_NAMES, expectRel, loadCases, loadFixtureModel } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { headsFirst, req, specOf, webgpuExecutor } from './tfjs-helpers.js';
import type { ForwardOptions } from '../src/options.js';

const TOL = 2e-5;

const FORMS: Record<(typeof FIXTURE_NAMES)[number], [string, ForwardOptions][]> = {
  'retnet-tiny': [['parallel', { numChunks: null }], ['chunkSize 7', { chunkSize: 7 }], ['recurrent', { numChunks: -1 }],
    ['chunkSize 7 float32 state', { chunkSize: 7, stateDtype: 'float32' }]],
  'retnet-small': [['chunkSize 7', { chunkSize: 7 }], ['chunkSize 64 float32 state', { chunkSize: 64, stateDtype: 'float32' }]],
  'retnet-seedlike': [['chunkSize 64', { chunkSize: 64 }]],
  'retnet-long': [['chunkSize 512', { chunkSize: 512 }]],
};

test('tfjs/webgpu: golden outputs and retention of every fixture and case, a few forms each', async () => {
  const { ex, missing } = await webgpuExecutor();
  if (!canRun('tfjs/webgpu golden', missing) || !ex) return;
  try {
    const info = ex.info();
    if (info.engine !== 'webgpu' || !/^WebGPU: /.test(info.device)) throw new Error(`info: ${JSON.stringify(info)}`);
    console.log(`device: ${info.device}`);
    let worst = 0;
    for (const name of FIXTURE_NAMES) {
      const model = await loadFixtureModel(name);
      const spec = specOf(model);
      const fx = loadCases(name);
      const x = fx.get('input');
      const forms = FORMS[name];
      for (const c of fx.cases) {
        const flags = { normalizeAttn: c.normalize_attn, normalizeRetn: c.normalize_retn };
        for (const [form, opts] of forms) {
          const y = await ex.forward(spec, x, req({ ...opts, ...flags }));
          worst = Math.max(worst, expectRel(y, fx.get(c.output), TOL, `webgpu ${name} ${c.output} ${form}`));
        }
        const ropts = forms[forms.length > 1 ? 1 : 0][1];
        const o = await ex.debugRetention(spec, x, req({ ...ropts, ...flags }, 'msr'));
        worst = Math.max(worst, expectRel(headsFirst(o, model.dims.H), fx.get(c.retention), TOL, `webgpu ${name} ${c.retention} ${JSON.stringify(ropts)}`));
      }
      await model.close();
    }
    console.log(`worst max|Δ|/max|ref| over the fixtures: ${worst.toExponential(2)} (tolerance ${TOL})`);
  } finally { await ex.close(); }
});

test.run();
