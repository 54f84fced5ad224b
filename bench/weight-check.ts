// Time of the load-time weight check (src/model/check.ts: every value finite and
// inside float32's range, every decay giving 0 < γ < 1) on the seed's default
// model (6 layers, d = 512, 8 heads, MLP 2048), next to the whole RetNet.load.
// Prints its parameters; writes bench/results/weight-check.json.
//
//   npm run build && node dist/bench/weight-check.js [--repeats N]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNet } from '../src/index.js';
import { checkLayers, type LayerWeights } from '../src/model/weights.js';
import { benchArgs, numArg } from './args.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({ options: { repeats: { type: 'string', default: '7' } } });
const repeats = numArg('repeats', values.repeats);

const model = RetNet.init({ seed: 0 }); // DEFAULT_CONFIG: the seed's defaults
const params = model.layers.reduce((n, lw) => n + Object.values(lw.msr).concat(lw.mlp.norm, ...lw.mlp.linears)
  .reduce((m: number, v) => m + sizeOf(v), 0) + 0, 0);
function sizeOf(v: unknown): number {
  if (ArrayBuffer.isView(v)) return (v as Float32Array).length;
  if (v && typeof v === 'object') return Object.values(v).reduce((m: number, x) => m + sizeOf(x), 0);
  return 0;
}
const dir = mkdtempSync(join(tmpdir(), 'retnet-wcheck-'));
const file = join(dir, 'seed-default.safetensors');
model.save(file);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const checkMs: number[] = [], loadMs: number[] = [];
for (let r = 0; r < repeats; r++) {
  // fresh objects each time: the check skips layers it has seen
  const fresh = structuredClone(model.layers) as LayerWeights[];
  let t = performance.now();
  checkLayers(fresh, model.dims, 'bench');
  checkMs.push(performance.now() - t);
  t = performance.now();
  const m = await RetNet.load(file);
  loadMs.push(performance.now() - t);
  await m.close();
}
rmSync(dir, { recursive: true, force: true });
await model.close();

const result = {
  params: { config: model.config, parameters: params, repeats },
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadavg: loadavg() },
  checkMs: { median: median(checkMs), all: checkMs },
  loadMs: { median: median(loadMs), all: loadMs },
  date: new Date().toISOString(),
};
console.log(`weight check, seed default model (${model.config.numLayer} layers, d=${model.config.dimModel}, ${params.toLocaleString('en')} float32 parameters), ${repeats} repeats`);
console.log(`check alone: median ${result.checkMs.median.toFixed(1)} ms; whole RetNet.load (read + check): median ${result.loadMs.median.toFixed(1)} ms; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'weight-check.json'), JSON.stringify(result, null, 2) + '\n');
console.log('wrote bench/results/weight-check.json');
