// GEMM throughput: retnet's WASM kernels (plain SIMD and relaxed SIMD, one
// thread) against @tensorflow/tfjs-backend-wasm (XNNPACK, single-threaded under
// Node) on the same shapes, in the same process. GFLOP/s = 2·M·N·K / time.
//
//   npm run bench:kernels            (writes bench/results/kernels.json)
//
// y[M,N] = x[M,K] · Wᵀ with W [N,K] (PyTorch layout). Ours packs W once (not
// timed, as a model does at load time). tfjs is timed two ways, both including
// dataSync() (waiting for and reading the result): `tfjs` = matMul(x, Wt) with
// Wt = Wᵀ [K,N] transposed once outside the timing (its fast XNNPACK path, the
// fair analogue of our packing), and `tfjs-tB` = matMul(x, W, false, true)
// (transposeB; about 10× slower in tfjs-backend-wasm 4.22). Ratios are
// against the faster of the two.
import { createMemory, loadKernelsSync, ARENA_BASE, type Kernels } from '../src/wasm/loader.js'; // first: sets the relaxed-SIMD flag
import Benchmark from 'benchmark';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { cpus, loadavg, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
benchArgs({ options: {} }); // no options: any argument is refused (before a run that overwrites bench/results)

const SHAPES: [number, number, number][] = [[1024, 512, 512], [1024, 2048, 512], [1024, 512, 2048], [128, 128, 64]]; // M, N, K
const maxTime = Number(process.env.BENCH_MAX_TIME ?? 3);

function seeded(seed: number) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1; };
}

function runSuite(name: string, fn: () => void): Promise<Benchmark> {
  return new Promise((resolve, reject) => {
    const b = new Benchmark(name, fn, { maxTime, minSamples: 5, onComplete: () => resolve(b), onError: (e: unknown) => reject(e) });
    b.run({ async: false });
  });
}

async function main(): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
  const memory = createMemory(2048);
  const simd = loadKernelsSync({ memory, variant: 'simd' });
  const relaxed = loadKernelsSync({ memory, variant: 'relaxed' });
  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, v8: process.versions.v8, loadavgAtStart: loadavg().map((x) => +x.toFixed(2)), tfBackend: tf.getBackend() };
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node} (V8 ${machine.v8}), load average ${machine.loadavgAtStart.join(' ')}`);
  console.log(`GEMM y[M,N] = x[M,K]·Wᵀ, single thread, benchmark.js maxTime ${maxTime}s; GF/s from the mean time (fastest sample in parentheses)\n`);
  const rows: Record<string, unknown>[] = [];
  const header = ['M×K · (N×K)ᵀ', 'simd GF/s', 'relaxed GF/s', 'tfjs GF/s', 'tfjs-tB GF/s', 'simd/tfjs', 'relaxed/tfjs'];
  console.log(header.map((h, i) => (i ? h.padStart(14) : h.padEnd(22))).join(''));
  for (const [M, N, K] of SHAPES) {
    const rnd = seeded(M * 7 + N * 13 + K);
    const X = Float32Array.from({ length: M * K }, rnd), W = Float32Array.from({ length: N * K }, rnd);
    let top = ARENA_BASE;
    const alloc = (bytes: number) => { const p = top; top += Math.ceil(bytes / 64) * 64; return p; };
    const xp = alloc(M * K * 4), wp = alloc(N * K * 4), pp = alloc(simd.f32_gemm_packed_size(N, K)), yp = alloc(M * N * 4), sp = alloc(simd.f32_gemm_scratch_size());
    if (top > memory.buffer.byteLength) memory.grow(Math.ceil((top - memory.buffer.byteLength) / 65536));
    new Float32Array(memory.buffer, xp, M * K).set(X);
    new Float32Array(memory.buffer, wp, N * K).set(W);
    simd.f32_gemm_pack_8(N, K, wp, K, pp);
    const ours = (k: Kernels) => () => k.f32_gemm_4x8__wasmsimd(M, N, K, xp, K, pp, 0, yp, N, 0, 0, sp);
    const tx = tf.tensor2d(X, [M, K]), tw = tf.tensor2d(W, [N, K]);
    const twT = tf.transpose(tw); // [K, N], once
    const tfjs = () => { const c = tf.matMul(tx, twT); c.dataSync(); c.dispose(); };
    const tfjsTB = () => { const c = tf.matMul(tx, tw, false, true); c.dataSync(); c.dispose(); };
    // sanity: the three agree on one element
    ours(relaxed)(); const y0 = new Float32Array(memory.buffer, yp, 1)[0];
    const c = tf.matMul(tx, tw, false, true); const t0 = c.dataSync()[0]; c.dispose();
    if (Math.abs(y0 - t0) > 1e-3 * (1 + Math.abs(t0))) throw new Error(`results differ: ours ${y0}, tfjs ${t0}`);
    const flops = 2 * M * N * K;
    const res: Record<string, { gflops: number; gflopsBestSample: number; rme: number; samples: number }> = {};
    for (const [name, fn] of [['simd', ours(simd)], ['relaxed', ours(relaxed)], ['tfjs', tfjs], ['tfjs-tB', tfjsTB]] as const) {
      const b = await runSuite(name, fn);
      // mean over benchmark.js samples; the fastest sample is kept too (this 2-core machine is often shared)
      res[name] = { gflops: +(flops / b.stats.mean / 1e9).toFixed(2), gflopsBestSample: +(flops / Math.min(...b.stats.sample) / 1e9).toFixed(2), rme: +b.stats.rme.toFixed(2), samples: b.stats.sample.length };
    }
    tx.dispose(); tw.dispose(); twT.dispose();
    const best = Math.max(res.tfjs.gflops, res['tfjs-tB'].gflops);
    const r = { M, N, K, ...Object.fromEntries(Object.entries(res).map(([k2, v]) => [k2, v])),
      simdOverTfjs: +(res.simd.gflops / best).toFixed(2), relaxedOverTfjs: +(res.relaxed.gflops / best).toFixed(2) };
    rows.push(r);
    console.log([`${M}×${K}·(${N}×${K})ᵀ`.padEnd(22), ...[res.simd, res.relaxed, res.tfjs, res['tfjs-tB']].map((g) => `${g.gflops.toFixed(1)} (${g.gflopsBestSample.toFixed(1)})`.padStart(14)),
      `${r.simdOverTfjs.toFixed(2)}×`.padStart(14), `${r.relaxedOverTfjs.toFixed(2)}×`.padStart(14)].join(''));
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'kernels.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine, maxTime, loadavgAtEnd: loadavg().map((x) => +x.toFixed(2)), results: rows }, null, 2) + '\n');
  console.log(`\nload average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}; wrote ${out}`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
