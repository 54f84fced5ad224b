// Throughput of the tfjs backend on given engines, and of the project's wasm
// backend when this build has it: tokens/s of RetNet.forward, chunkwise form.
//   node dist/bench/tfjs-throughput.js [engine ...]     (default: wasm cpu)
// Env: BENCH_L (1024), BENCH_B (2), BENCH_CHUNKS (8), BENCH_REPS (3), BENCH_SMALL=1 (a 2-layer d=128 model).
// Prints one JSON line per measurement and writes bench/results/tfjs-throughput.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { RetNet, Tensor } from '../src/index.js';
import { hasExecutor } from '../src/backends/executor.js';
import { createTfjsExecutor, TFJS_ENGINES, type TfjsEngine } from '../src/backends/tfjs/index.js';
import { badArg, benchArgs } from './args.js';

const L = Number(process.env.BENCH_L ?? 1024), B = Number(process.env.BENCH_B ?? 2);
const numChunks = Number(process.env.BENCH_CHUNKS ?? 8), reps = Number(process.env.BENCH_REPS ?? 3);
const spec = { options: {}, positionals: `[ENGINE …] (${TFJS_ENGINES.join(', ')}; default wasm cpu)` };
const { positionals } = benchArgs(spec);
const bad = positionals.filter((e) => !(TFJS_ENGINES as readonly string[]).includes(e));
if (bad.length) badArg(spec, `unknown engine ${bad.map((e) => JSON.stringify(e)).join(', ')}`);
const engines = (positionals.length ? positionals : ['wasm', 'cpu']) as TfjsEngine[];
const cfg = process.env.BENCH_SMALL
  ? { numLayer: 2, numHeads: 4, dimModel: 128, valueFactor: 2, mlpMult: 4, seed: 0 }
  : { numLayer: 6, numHeads: 8, dimModel: 512, valueFactor: 2, mlpMult: 4, seed: 0 };
const model = RetNet.init(cfg);
const x = Tensor.randint(0, 100, [B, L, cfg.dimModel], { seed: 1 });
const results: Record<string, unknown>[] = [];

async function time(label: string, run: () => Promise<unknown>, extra: Record<string, unknown>) {
  try {
    await run(); // warm-up (uploads weights, compiles kernels)
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await run();
    const s = (performance.now() - t0) / 1000 / reps;
    const r = { label, ...cfg, L, B, numChunks, seconds: +s.toFixed(4), tokensPerSec: Math.round((B * L) / s), ...extra };
    results.push(r); console.log(JSON.stringify(r));
  } catch (e) {
    const r = { label, error: (e as Error).message, ...extra };
    results.push(r); console.log(JSON.stringify(r));
  }
}

for (const engine of engines) {
  for (const stateDtype of ['float64', 'float32'] as const) {
    let ex;
    try { ex = await createTfjsExecutor({ engine }); } catch (e) {
      const r = { label: `tfjs/${engine}`, error: (e as Error).message }; results.push(r); console.log(JSON.stringify(r)); break;
    }
    const spec = { config: model.config, dims: model.dims, layers: model.layers };
    const plan = (n: number) => ({ form: 'chunkwise' as const, chunkSize: Math.ceil(n / Math.min(numChunks, n)) });
    await time(`tfjs/${engine}`, () => ex.forward(spec, x, { mode: 'retnet', plan, flags: { normalizeAttn: false, normalizeRetn: false }, stateDtype }), { stateDtype, ...ex.info() });
    await ex.close();
  }
}
if (hasExecutor('wasm')) {
  await time('wasm backend', () => model.forward(x, { backend: 'wasm', numChunks }), { backend: 'wasm' });
} else {
  const r = { label: 'wasm backend', error: 'not available in this build' }; results.push(r); console.log(JSON.stringify(r));
}
await model.close();
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/tfjs-throughput.json', JSON.stringify(results, null, 2));
