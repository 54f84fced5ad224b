// The logits of a model folder at precision f32 and bf16 (wasm backend) against the float64 js
// backend, on a few token ids: the scale-free error max|Δ logit| / max|logit| of each, next to the
// estimate (8·layers + 2)·2⁻⁹ that docs/engines.md derives for bf16 (2u·Σ|terms| per product,
// four products in sequence per layer, the head's two). On the fla 1.3B shape (random BF16 weights)
// this is a check of that estimate at 24 layers, which the 2-layer fixtures of
// test/precision.test.ts cannot make.
//
//   npm run build && node dist/bench/bf16-logits.js --dir DIR [--tokens 12 | --ids 1,415,…] [--out FILE]
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { RetNetLM } from '../src/index.js';
import { benchArgs, numArg } from './args.js';

const { values } = benchArgs({
  options: { dir: { type: 'string' }, tokens: { type: 'string', default: '12' }, ids: { type: 'string' }, out: { type: 'string' } },
  required: ['dir'],
});
const given = values.ids === undefined ? null : values.ids.split(',').map((v) => numArg('ids', v, { min: 0 }));
if (given && (given.length === 0 || given.length > 64 || !given.every((x) => Number.isInteger(x) && x >= 0))) { console.error('--ids must be 1 to 64 comma-separated non-negative integers'); process.exit(2); }
const T = given ? given.length : numArg('tokens', values.tokens);
if (!Number.isInteger(T) || T < 1 || T > 64) { console.error('--tokens must be an integer in [1, 64]'); process.exit(2); }

const lm = await RetNetLM.load(values.dir);
// fixed ids (BOS, then ids spread over the vocabulary): no tokenizer needed
const ids = given ? Int32Array.from(given) : Int32Array.from({ length: T }, (_, i) => (i === 0 ? 1 : (i * 7919 + 415) % lm.vocab));
const t0 = performance.now();
const ref = (await lm.logits(ids, { backend: 'js' })).logits;
const f32 = (await lm.logits(ids, { backend: 'wasm' })).logits;
const bf16 = (await lm.logits(ids, { backend: 'wasm', precision: 'bf16' })).logits;
const rel = (a: Float64Array, b: Float64Array) => {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
  return d / m;
};
const layers = lm.model.layers.length;
const result = {
  date: new Date().toISOString(), machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}`, command: `node dist/bench/bf16-logits.js --dir ${values.dir} ${given ? `--ids ${values.ids}` : `--tokens ${T}`}`,
  layers, tokens: T,
  f32VsFloat64: rel(f32, ref), bf16VsFloat64: rel(bf16, ref), bf16VsF32: rel(bf16, f32),
  estimate: (8 * layers + 2) * 2 ** -9, seconds: (performance.now() - t0) / 1000,
};
await lm.close();
console.log(`${layers} layers, ${T} tokens: max|Δ logit| / max|logit| against float64 — f32 ${result.f32VsFloat64.toExponential(2)}, ` +
  `bf16 ${result.bf16VsFloat64.toExponential(3)} (estimate (8·${layers} + 2)·2⁻⁹ = ${result.estimate.toExponential(3)}); bf16 against f32 ${result.bf16VsF32.toExponential(3)}`);
if (values.out) { writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n'); console.log(`wrote ${values.out}`); }
