// Prompt speed of a model folder (e.g. the fla 1.3B shape from bench/make-fla-shape.mjs): the chunkwise
// prefill on the step's engine (RetNetLM.prefill on 'wasm': chunks of --chunk tokens, the products M =
// chunk rows on the stepper's packed weights) against feeding the same prompt token by token through the
// recurrent step (what a prompt cost before the prefill existed), side by side in one process, per
// precision. Both run in the stepper's threads (the machine's parallelism, at most 8) on one packed copy.
//
//   node dist/bench/prefill.js --dir DIR [--tokens 1024] [--chunk 256] [--step-tokens 16] [--precisions f32,bf16] [--repeat 2] [--out bench/results/prefill-1p3b.json]
//
// Token ids are fixed pseudo-random ids in the vocabulary (the shape has no tokenizer). Reported: the
// token-by-token rate (tokens/s over --step-tokens steps after one warm-up step), each prefill run's
// tokens/s, and the best prefill run ÷ the step rate.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RetNetLM, type Precision } from '../src/index.js';
import { benchArgs } from './args.js';
import { machine } from '../src/cli/gen.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({
  options: {
    dir: { type: 'string' }, tokens: { type: 'string', default: '1024' }, chunk: { type: 'string', default: '256' },
    'step-tokens': { type: 'string', default: '16' }, precisions: { type: 'string', default: 'f32,bf16' }, repeat: { type: 'string', default: '2' },
    out: { type: 'string', default: join(ROOT, 'bench/results/prefill-1p3b.json') },
  },
  required: ['dir'],
});

const posInt = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) { console.error(`--${name}: a positive integer (got ${v})`); process.exit(2); }
  return n;
};
const dir = values.dir, L = posInt('tokens', values.tokens), C = posInt('chunk', values.chunk);
const nStep = posInt('step-tokens', values['step-tokens']), repeat = posInt('repeat', values.repeat);
const precisions = values.precisions.split(',') as Precision[];
if (!precisions.every((p) => p === 'f32' || p === 'bf16')) { console.error('--precisions: f32, bf16 or both'); process.exit(2); }

const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const t0 = performance.now();
const lm = await RetNetLM.loadFolder(dir);
const loadSeconds = (performance.now() - t0) / 1000;
const V = cfg.vocab_size as number;
const ids = Int32Array.from({ length: L }, (_, i) => (i === 0 ? 1 : 3 + ((i * 7919) % (V - 3))));
const runs: Record<string, unknown>[] = [];
for (const precision of precisions) {
  // the first step packs the stepper's copy of the weights
  const tw = performance.now();
  let r = lm.step(ids[0], undefined, { backend: 'wasm', precision });
  const warmSeconds = (performance.now() - tw) / 1000;
  const ts = performance.now();
  for (let i = 1; i <= nStep; i++) r = lm.step(ids[i % L], r.state, { backend: 'wasm', precision });
  const stepRate = nStep / ((performance.now() - ts) / 1000);
  const prefill: number[] = [];
  for (let k = 0; k < repeat; k++) {
    const tp = performance.now();
    lm.prefill(ids, C, 'wasm', precision);
    prefill.push(L / ((performance.now() - tp) / 1000));
  }
  const best = Math.max(...prefill);
  const stepper = (lm.model as unknown as { stepper?: { engine: string; prefillEngine: string } }).stepper;
  const engine = stepper?.engine ?? '?', prefillEngine = stepper?.prefillEngine ?? '?';
  runs.push({ precision, engine, prefillEngine, warmSeconds: +warmSeconds.toFixed(2), stepTokensPerSecond: +stepRate.toFixed(2),
    prefillTokensPerSecond: prefill.map((x) => +x.toFixed(2)), speedup: +(best / stepRate).toFixed(2) });
  console.log(`${precision} (${engine}; prompts: ${prefillEngine}): token by token ${stepRate.toFixed(2)} tok/s (${nStep} steps); prefill of ${L} tokens in chunks of ${C}: ${prefill.map((x) => x.toFixed(1)).join(', ')} tok/s — ${(best / stepRate).toFixed(1)}× the step`);
}
const out = {
  date: new Date().toISOString(), machine: machine(),
  command: `${process.env.RETNET_KERNELS ? `RETNET_KERNELS=${process.env.RETNET_KERNELS} ` : ''}node dist/bench/prefill.js --dir ${dir} --tokens ${L} --chunk ${C} --step-tokens ${nStep} --precisions ${precisions.join(',')} --repeat ${repeat}`,
  params: { dir, layers: cfg.num_hidden_layers, hidden: cfg.hidden_size, tokens: L, chunk: C, stepTokens: nStep, repeat },
  loadSeconds: +loadSeconds.toFixed(2), runs, peakRssBytes: process.resourceUsage().maxRSS * 1024,
};
await lm.close();
mkdirSync(dirname(values.out), { recursive: true });
writeFileSync(values.out, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${values.out}`);
