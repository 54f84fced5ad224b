// Where the CBLAS engine should take over from the WASM kernels, one thread:
// (1) the projection/MLP GEMM y = x·Wᵀ + b on the seed model's shapes, by rows M;
// (2) the intra-chunk retention by chunk length n (seed head: dk 64, dv 128).
// BLAS per call repacks W, so it loses at few rows; the crossovers chosen in
// src/runtime/blas-kernels.ts (GEMM_MIN_ROWS, INTRA_MIN_ROWS) come from this run.
//   node dist/bench/blas-crossover.js [--reps N]
// Prints its parameters and the machine; writes bench/results/blas-crossover.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Arena } from '../src/runtime/arena.js';
import { bindBlasKernels, loadBlas } from '../src/runtime/blas-kernels.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import type { RuntimeKernels } from '../src/runtime/kernels.js';
import { ARENA_BASE, createMemory } from '../src/wasm/loader.js';
import { machine } from '../src/cli/gen.js';

const { values: a } = parseArgs({ options: { reps: { type: 'string' }, out: { type: 'string' } } });
const reps = Number(a.reps ?? 7);
const out = a.out ?? 'bench/results/blas-crossover.json';
const F4 = 4;
const memory = createMemory(256);
const A = new Arena(memory, ARENA_BASE, 2 ** 31);
const wasm = bindWasmKernels(memory, 'auto');
const blas = bindBlasKernels(memory, 'auto', undefined, { gemmMinRows: 0, intraMinRows: 0, intraBlock: 64 });
const fill = (off: number, n: number, s = 1) => { const v = A.f32(off, n); for (let i = 0; i < n; i++) v[i] = s * (Math.sin(i * 12.9898) * 0.5); };

/** Median seconds of fn over `reps` timed runs of enough calls to last ≥ 20 ms. */
function time(fn: () => void): number {
  fn();
  let calls = 1;
  for (;;) { const t = performance.now(); for (let i = 0; i < calls; i++) fn(); if (performance.now() - t > 20) break; calls *= 2; }
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) { const t = performance.now(); for (let i = 0; i < calls; i++) fn(); ts.push((performance.now() - t) / calls / 1000); }
  return ts.sort((x, y) => x - y)[reps >> 1];
}

const params = { reps, blas: loadBlas().label, wasm: wasm.name, load: loadavg().map((x) => +x.toFixed(2)), date: new Date().toISOString() };
console.log('BLAS/WASM crossover, one thread');
console.log('machine:', JSON.stringify(machine()));
console.log('parameters:', JSON.stringify(params));

const gemmRows: { K: number; N: number; M: number; wasmGflops: number; blasGflops: number }[] = [];
for (const [K, N] of [[512, 3072], [1024, 512], [512, 2048], [2048, 512]]) {
  A.reset();
  const Mmax = 256;
  const w = A.persistent(N * K * F4, 'w');
  fill(w, N * K, 0.05);
  const pw = A.persistent(wasm.packedSize(N, K) * F4, 'w'), pb = A.persistent(blas.packedSize(N, K) * F4, 'w');
  wasm.pack(w, N, K, pw); blas.pack(w, N, K, pb);
  const x = A.transient(Mmax * K * F4, 'x'), y = A.transient(Mmax * N * F4, 'y'), b = A.transient(N * F4, 'b');
  const s = A.transient(Math.max(64, wasm.gemmScratchBytes()), 's');
  fill(x, Mmax * K); fill(b, N);
  for (const M of [1, 2, 4, 8, 12, 16, 24, 32, 64, 256]) {
    const flop = 2 * M * N * K;
    const tw = time(() => wasm.gemm(x, M, K, K, pw, N, b, y, N, 0, false, s));
    const tb = time(() => blas.gemm(x, M, K, K, pb, N, b, y, N, 0, false, s));
    const row = { K, N, M, wasmGflops: +(flop / tw / 1e9).toFixed(1), blasGflops: +(flop / tb / 1e9).toFixed(1) };
    gemmRows.push(row);
    console.log(`gemm K=${K} N=${N} M=${M}: wasm ${row.wasmGflops} GFLOP/s, blas ${row.blasGflops} GFLOP/s (blas/wasm ${(tw / tb).toFixed(2)}×)`);
  }
}

const intraRows: { n: number; dk: number; dv: number; wasmMs: number; blasMs: number }[] = [];
for (const [dk, dv] of [[64, 128], [16, 32]]) {
  for (const n of [16, 32, 48, 64, 96, 128, 256, 512]) {
    A.reset();
    const P = A.transient(n * (2 * dk + dv) * F4, 'qkv'), pow = A.transient((n + 1) * F4, 'pow');
    const o = A.transient(n * dv * F4, 'o'), r = A.transient(n * F4, 'r'), tile = A.transient(n * n * F4, 'tile');
    fill(P, n * (2 * dk + dv), 0.3);
    const pv = A.f32(pow, n + 1); for (let i = 0; i <= n; i++) pv[i] = Math.pow(0.97, i);
    const ld = 2 * dk + dv, q = P, k = P + dk * F4, v = P + 2 * dk * F4;
    const run = (K: RuntimeKernels) => () => K.intra(q, k, v, n, dk, dv, ld, ld, ld, pow, o, dv, r, tile);
    const tw = time(run(wasm)), tb = time(run(blas));
    const row = { n, dk, dv, wasmMs: +(tw * 1e3).toFixed(4), blasMs: +(tb * 1e3).toFixed(4) };
    intraRows.push(row);
    console.log(`intra n=${n} dk=${dk} dv=${dv}: wasm ${row.wasmMs} ms, blas ${row.blasMs} ms (blas/wasm ${(tw / tb).toFixed(2)}×)`);
  }
}
mkdirSync('bench/results', { recursive: true });
writeFileSync(out, JSON.stringify({ machine: machine(), params, gemm: gemmRows, intra: intraRows }, null, 2));
console.log(`wrote ${out}`);
