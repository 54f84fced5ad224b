// One-row products (M = 1, the decoding step's) on oneDNN's bf16 matmul, one thread, against the
// machine's streaming read bandwidth on one and two threads, measured in the same run: is one
// thread's one-row product at memory speed? The shapes are the halves (dnnlColumnBlocks(N, 2),
// src/runtime/dnnl-kernels.ts) of the fla 1.3B's products: q|k|v|g 12,288 × 2,048, o 2,048 × 4,096,
// gate|up 5,632 × 2,048, down 2,048 × 2,816 (the recurrent step now cuts each in guidedColumnBlocks,
// which its threads claim: bench/step-products.ts measures those in the step).
// Each shape runs over enough reordered copies of its weight (≥ 0.6 GB) that no cache holds them;
// every call accumulates into its output (the step's o and down do; the cost is the same).
// Figures: GB/s of weight bytes, best of 4 passes of 3 rounds over the copies.
//
//   npm run build && node dist/bench/dnnl-gemv.js     (writes bench/results/dnnl-gemv.json)
import { cpus, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createDnnlMatmul, dnnlMissing, loadDnnl } from '../src/runtime/dnnl.js';
import { dnnlColumnBlocks } from '../src/runtime/dnnl-kernels.js';
import { createMemory } from '../src/wasm/loader.js';
import { bandwidth } from './bandwidth.js';
import { benchArgs } from './args.js';
import { hugePages } from '../src/wasm/huge-pages.js';
benchArgs({ options: {} }); // no options: any argument is refused (before a run that overwrites bench/results)

const ROOT = new URL('../../', import.meta.url).pathname;
const OUT = join(ROOT, 'bench/results/dnnl-gemv.json');
const missing = dnnlMissing();
if (missing) { console.error(`dnnl-gemv: ${missing}`); process.exit(2); }

const lib = loadDnnl();
const memory = createMemory(256);
const base = lib.baseOf(memory);
const SHAPES = [['q|k|v|g', 12288, 2048], ['o', 2048, 4096], ['gate|up', 5632, 2048], ['down', 2048, 2816]] as const;
const bw1Before = await bandwidth(1);
const rows: Record<string, unknown>[] = [];
for (const [name, Nfull, K] of SHAPES) {
  const N = dnnlColumnBlocks(Nfull, 2)[0]![1];
  const copies = Math.ceil(0.6e9 / (N * K * 2));
  const w = new Uint16Array(N * K);
  for (let i = 0; i < w.length; i++) w[i] = 0x3c00 + (i % 251); // bfloat16 values in [2⁻⁷, 2)
  const mms = Array.from({ length: copies }, () => createDnnlMatmul({ N, K, dtype: 'bf16', weights: w, threads: 1 }));
  const src = 65536, dst = src + K * 4; // in the WASM memory's first page block (256 pages)
  new Float32Array(memory.buffer, src, K).fill(0.5);
  for (const m of mms) m.run(base + src, 1, K, base + dst, N, true);
  let best = 0, usPerCall = 0;
  for (let pass = 0; pass < 4; pass++) {
    const t0 = performance.now();
    for (let r = 0; r < 3; r++) for (const m of mms) m.run(base + src, 1, K, base + dst, N, true);
    const s = (performance.now() - t0) / 1000, gbs = (3 * copies * N * K * 2) / s / 1e9;
    if (gbs > best) { best = gbs; usPerCall = (s / (3 * copies)) * 1e6; }
  }
  const impl = mms[0]!.impl(1, true);
  mms.forEach((m) => m.destroy());
  console.log(`${name} block ${N} × ${K} (${((N * K * 2) / 1e6).toFixed(1)} MB, ${copies} copies): ${best.toFixed(1)} GB/s, ${usPerCall.toFixed(0)} µs per call (${impl})`);
  rows.push({ name, N, K, copies, GBps: +best.toFixed(2), usPerCall: +usPerCall.toFixed(1), impl });
}
const bw1 = await bandwidth(1), bw2 = await bandwidth(2);
console.log(`memcmp: ${Math.max(bw1Before, bw1).toFixed(1)} GB/s on one thread (before ${bw1Before.toFixed(1)}, after ${bw1.toFixed(1)}), ${bw2.toFixed(1)} on two`);
const out = {
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, pages: hugePages() },
  library: lib.label,
  bandwidthGBps: { oneThreadBefore: +bw1Before.toFixed(2), oneThreadAfter: +bw1.toFixed(2), twoThreads: +bw2.toFixed(2) },
  oneRowProducts: rows,
};
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${OUT}`);
