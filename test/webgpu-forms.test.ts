// Form agreement on the tfjs backend's WebGPU engine (forced, so llvmpipe in CI):
// parallel = chunkwise = recurrent for all four normalisation settings and both
// state dtypes, on the RetNet output and layer 0's retention output, and against
// the float64 js backend; small windows (many windows per sequence) too. One
// executor for the whole file: llvmpipe compiles each new shader with LLVM.
//
// Tolerance 2e-5 of max|ref| (as test/tfjs-forms.test.ts): every form runs in
// float32 (unit roundoff 6e-8) and they differ in summation order and in how
// the decay is split between the intra-chunk mask, ξ, ζ and the carried state,
// a few ulps per sum over L ≤ 40 rows and d = 12 features; a missing z or
// normalisation shows at 1e-3 and above.
import { test } from 'uvu';
import { RetNet, Tensor } from '../src/index.js';
import { createTfjsExecutor } from '../src/backends/tfjs/index.js';
import { expectRel, formsModel, NORM_FLAGS } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { req, specOf, webgpuExecutor } from './tfjs-helpers.js';

const TOL = 2e-5;
const FLAGS = NORM_FLAGS;

const model = formsModel();

test('tfjs/webgpu: parallel = chunkwise (1, 7, L+5) = recurrent, both state dtypes, = js float64; small windows agree', async () => {
  const { ex, missing } = await webgpuExecutor();
  if (!canRun('tfjs/webgpu forms', missing) || !ex) return;
  const spec = specOf(model);
  let worst = 0;
  const check = (got: Tensor, want: Tensor, what: string) => { worst = Math.max(worst, expectRel(got, want, TOL, what)); };
  try {
    for (const L of [1, 40]) {
      const x = Tensor.randn([2, L, 12], { seed: 100 + L });
      for (const flags of FLAGS) {
        const tag = `L=${L} attn=${flags.normalizeAttn} retn=${flags.normalizeRetn}`;
        const ref = await ex.forward(spec, x, req({ ...flags, numChunks: null }));
        check(ref, await model.forward(x, { ...flags, backend: 'js' }), `${tag} webgpu parallel vs js`);
        const refO = await ex.debugRetention(spec, x, req({ ...flags, numChunks: null }, 'msr'));
        for (const o of [...[1, 7, L + 5].map((c) => ({ chunkSize: c })), { numChunks: -1 }]) {
          for (const stateDtype of ['float64', 'float32'] as const) {
            const what = `${tag} ${JSON.stringify(o)} ${stateDtype}`;
            check(await ex.forward(spec, x, req({ ...flags, ...o, stateDtype })), ref, what);
            check(await ex.debugRetention(spec, x, req({ ...flags, ...o, stateDtype }, 'msr')), refO, `${what} retention`);
          }
        }
      }
    }
    // windows of a few chunks each (windowElems 300): the state carried across windows
    const small = await createTfjsExecutor({ engine: 'webgpu', windowElems: 300 });
    try {
      const x = Tensor.randn([2, 57, 12], { seed: 7 });
      for (const flags of FLAGS) for (const o of [{ chunkSize: 3 }, { chunkSize: 5, stateDtype: 'float32' as const }]) {
        check(await small.forward(spec, x, req({ ...flags, ...o })), await ex.forward(spec, x, req({ ...flags, numChunks: null })), `windowed ${JSON.stringify({ ...flags, ...o })}`);
      }
    } finally { await small.close(); }
    console.log(`worst max|Δ|/max|ref|: ${worst.toExponential(2)} (tolerance ${TOL})`);
  } finally { await ex.close(); }
});

test.run();
