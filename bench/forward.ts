// Forward throughput suite (benchmark.js): tokens/s of the default backend.
//   npm run bench                      the full matrix (minutes with WASM kernels)
//   node dist/bench/forward.js --quick a scaled-down smoke run
// Part 1, the seed's default model (6 layers, 8 heads, d=512, value factor 2,
// MLP 4·d), chunkwise with 8 and 16 chunks on 1 and 2 workers, at B=2, L=1024
// and B=1, L=8192. Part 2, scaling: one streamed sequence (generated rows,
// model.forwardStream, so memory stays flat) of L = 8k … 1M tokens through a
// smaller model, and the slope of log(time) against log(L) (1 = linear).
// Prints its parameters and the machine; writes bench/results/forward.json.
import Benchmark from 'benchmark';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { RetNet, Tensor, type BackendName } from '../src/index.js';
import { discardSink, generatedSource, machine } from '../src/cli/gen.js';
import { benchArgs, numArg } from './args.js';

const { values: a } = benchArgs({ options: {
  quick: { type: 'boolean' }, backend: { type: 'string' }, 'max-length': { type: 'string' }, out: { type: 'string' },
} });
const quick = a.quick ?? false;
const backend = (a.backend ?? 'wasm') as BackendName;
if (!['wasm', 'js', 'tfjs'].includes(backend)) { console.error(`error: --backend must be wasm, js or tfjs (got ${JSON.stringify(backend)})`); process.exit(2); }
const out = a.out ?? 'bench/results/forward.json';
mkdirSync(dirname(resolve(out)), { recursive: true }); // its folder before the run, not after it (before: ENOENT after the work)
const seedCfg = quick
  ? { numLayer: 2, numHeads: 4, dimModel: 64, valueFactor: 2, mlpMult: 4, seed: 0 }
  : { numLayer: 6, numHeads: 8, dimModel: 512, valueFactor: 2, mlpMult: 4, seed: 0 };
const shapes: [number, number][] = quick ? [[2, 128], [1, 512]] : [[2, 1024], [1, 8192]];
const chunkCounts = [8, 16];
const workerCounts = [1, 2];
const scaleCfg = quick
  ? { numLayer: 1, numHeads: 2, dimModel: 32, valueFactor: 2, mlpMult: 4, seed: 0 }
  : { numLayer: 2, numHeads: 4, dimModel: 128, valueFactor: 2, mlpMult: 4, seed: 0 };
// at least two lengths of the scaling run, or its slope is undefined (before: --max-length 2048 wrote NaN, exit 0)
const maxL = numArg('max-length', a['max-length'] ?? String(quick ? 16384 : 2 ** 20), { min: quick ? 4096 : 16384 });
const scaleChunk = quick ? 256 : 512;
const scaleLengths: number[] = [];
for (let L = quick ? 2048 : 8192; L <= maxL; L *= 2) scaleLengths.push(L);

const params = { backend, seedModel: seedCfg, shapes, chunkCounts, workerCounts, scaleModel: scaleCfg, scaleLengths, scaleChunkSize: scaleChunk, kernels: process.env.RETNET_KERNELS ?? 'default' };
console.log('retnet forward benchmark');
console.log('machine:', JSON.stringify(machine()));
console.log('parameters:', JSON.stringify(params));

interface Row { name: string; B: number; L: number; chunks: number; workers: number; engine: string; meanSeconds: number; rme: number; samples: number; tokensPerSec: number }
const rows: Row[] = [];

// Part 1: one benchmark.js suite per worker count (a model's pool is sized on first use).
for (const workers of workerCounts) {
  const model = RetNet.init(seedCfg);
  const inputs = new Map(shapes.map(([B, L]) => [`${B}x${L}`, Tensor.randint(0, 100, [B, L, seedCfg.dimModel], { seed: 1 })]));
  await model.forward(Tensor.randint(0, 100, [1, 16, seedCfg.dimModel], { seed: 2 }), { backend, workers, numChunks: 2 }); // start the pool
  const engine = (await model.backendInfo())[0]?.engine ?? backend;
  const suite = new Benchmark.Suite(`forward, ${workers} worker(s)`);
  for (const [B, L] of shapes) for (const chunks of chunkCounts) {
    const x = inputs.get(`${B}x${L}`)!;
    suite.add(`B=${B} L=${L} chunks=${chunks} workers=${workers}`, {
      defer: true, minSamples: quick ? 2 : 5, maxTime: quick ? 0.5 : 10,
      fn: (deferred: Benchmark.Deferred) => { model.forward(x, { backend, workers, numChunks: chunks }).then(() => deferred.resolve(), (e) => { console.error(e); process.exit(1); }); },
    });
    Object.assign((suite as unknown as Benchmark[])[suite.length - 1], { meta: { B, L, chunks, workers } });
  }
  await new Promise<void>((resolve) => {
    suite.on('cycle', (ev: Benchmark.Event) => {
      const b = ev.target as unknown as Benchmark & { meta: { B: number; L: number; chunks: number; workers: number } };
      const s = b.stats.mean;
      const row = { name: String(b.name), ...b.meta, engine, meanSeconds: s, rme: b.stats.rme, samples: b.stats.sample.length, tokensPerSec: (b.meta.B * b.meta.L) / s };
      rows.push(row);
      console.log(`  ${row.name.padEnd(36)} ${s.toFixed(3)} s ±${row.rme.toFixed(1)}% (${row.samples} samples)  ${Math.round(row.tokensPerSec).toLocaleString('en-US')} tokens/s  [${engine}]`);
    }).on('complete', () => resolve()).run({ async: true });
  });
  await model.close();
}

// Part 2: scaling with L, streamed (one timed run per length: each is long).
const scaling: { L: number; seconds: number; tokensPerSec: number; rssMiB: number }[] = [];
{
  const model = RetNet.init(scaleCfg);
  const opts = { backend, chunkSize: scaleChunk };
  await model.forwardStream(generatedSource(1, 4 * scaleChunk, scaleCfg.dimModel), discardSink(), opts); // warm-up
  console.log(`scaling: ${scaleCfg.numLayer} layers, d=${scaleCfg.dimModel}, ${scaleCfg.numHeads} heads, chunk size ${scaleChunk}, streamed`);
  for (const L of scaleLengths) {
    const t0 = performance.now();
    await model.forwardStream(generatedSource(1, L, scaleCfg.dimModel), discardSink(), opts);
    const seconds = (performance.now() - t0) / 1000;
    const r = { L, seconds, tokensPerSec: L / seconds, rssMiB: process.memoryUsage().rss / 2 ** 20 };
    scaling.push(r);
    console.log(`  L=${String(L).padStart(8)}  ${seconds.toFixed(2)} s  ${Math.round(r.tokensPerSec).toLocaleString('en-US')} tokens/s  RSS ${r.rssMiB.toFixed(0)} MiB`);
  }
  await model.close();
}
// least-squares slope of log(seconds) vs log(L)
const xs = scaling.map((r) => Math.log(r.L)), ys = scaling.map((r) => Math.log(r.seconds));
const mx = xs.reduce((p, q) => p + q, 0) / xs.length, my = ys.reduce((p, q) => p + q, 0) / ys.length;
const slope = xs.reduce((acc, x, i) => acc + (x - mx) * (ys[i] - my), 0) / xs.reduce((acc, x) => acc + (x - mx) ** 2, 0);
console.log(`scaling slope d log(time) / d log(L) = ${slope.toFixed(3)} (1 = linear in L)`);

writeFileSync(out, JSON.stringify({ suite: 'forward', date: new Date().toISOString(), machine: machine(), parameters: params, forward: rows, scaling, scalingSlope: slope }, null, 2) + '\n');
console.log(`wrote ${out}`);
