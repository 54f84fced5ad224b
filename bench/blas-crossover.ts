// Where the CBLAS engine should take over from the WASM kernels, one thread:
// (1) the projection/MLP GEMM y = x·Wᵀ + b on the seed model's shapes, by rows M;
// (2) the intra-chunk retention by chunk length n (seed head: dk 64, dv 128);
// (3) a coarse split: CPU time of each kernel call of one chunk (512 tokens) of
//     one seed-model layer, as the chunk worker issues them, on both engines
//     (process CPU time, so other load on the machine inflates it less than wall time).
// Times are process CPU time (robust to other load). BLAS per call repacks W, so it loses at few rows; the crossovers chosen in
// src/runtime/blas-kernels.ts (GEMM_MIN_ROWS, INTRA_MIN_ROWS) come from this run.
//   node dist/bench/blas-crossover.js [--reps N]
// Prints its parameters and the machine; writes bench/results/blas-crossover.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Arena } from '../src/runtime/arena.js';
import { bindBlasKernels, loadBlas } from '../src/runtime/blas-kernels.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { tileFloats, type RuntimeKernels } from '../src/runtime/kernels.js';
import { ARENA_BASE, createMemory, loadKernelsSync } from '../src/wasm/loader.js';
import { machine } from '../src/cli/gen.js';
import { benchArgs, numArg } from './args.js';

const { values: a } = benchArgs({ options: { reps: { type: 'string' }, out: { type: 'string' } } });
const reps = numArg('reps', a.reps ?? '7');
const out = a.out ?? 'bench/results/blas-crossover.json';
const F4 = 4;
const memory = createMemory(256);
const A = new Arena(memory, ARENA_BASE, 2 ** 31);
const wasm = bindWasmKernels(memory, 'auto');
const blas = bindBlasKernels(memory, 'auto', undefined, { gemmMinRows: 0, intraMinRows: 0, intraBlock: 64 });
const fill = (off: number, n: number, s = 1) => { const v = A.f32(off, n); for (let i = 0; i < n; i++) v[i] = s * (Math.sin(i * 12.9898) * 0.5); };

/** This process's CPU seconds (user + system) since `from`: robust to other load on a shared
 *  machine, and exact for these single-thread calls (OpenBLAS runs one thread, in the caller). */
const cpu = (from?: NodeJS.CpuUsage) => { const u = process.cpuUsage(from); return (u.user + u.system) / 1e6; };

/** Median CPU seconds per call of fn over `reps` timed runs of enough calls to last ≥ 20 ms. */
function time(fn: () => void): number {
  fn();
  let calls = 1;
  for (;;) { const t = process.cpuUsage(); for (let i = 0; i < calls; i++) fn(); if (cpu(t) > 0.02) break; calls *= 2; }
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) { const t = process.cpuUsage(); for (let i = 0; i < calls; i++) fn(); ts.push(cpu(t) / calls); }
  return ts.sort((x, y) => x - y)[reps >> 1];
}

const params = { reps, clock: 'process CPU time (user + system)', blas: loadBlas().label, wasm: wasm.name, load: loadavg().map((x) => +x.toFixed(2)), date: new Date().toISOString() };
console.log('BLAS/WASM crossover, one thread');
console.log('machine:', JSON.stringify(machine()));
console.log('parameters:', JSON.stringify(params));

const gemmRows: { K: number; N: number; M: number; wasmGflops: number; blasGflops: number }[] = [];
for (const [K, N] of [[512, 3072], [1024, 512], [512, 2048], [2048, 512]]) {
  A.reset();
  const Mmax = 512;
  const w = A.persistent(N * K * F4, 'w');
  fill(w, N * K, 0.05);
  const pw = A.persistent(wasm.packedSize(N, K) * F4, 'w'), pb = A.persistent(blas.packedSize(N, K) * F4, 'w');
  wasm.pack(w, N, K, pw); blas.pack(w, N, K, pb);
  const x = A.transient(Mmax * K * F4, 'x'), y = A.transient(Mmax * N * F4, 'y'), b = A.transient(N * F4, 'b');
  const s = A.transient(Math.max(64, wasm.gemmScratchBytes()), 's');
  fill(x, Mmax * K); fill(b, N);
  for (const M of [1, 2, 4, 8, 12, 16, 24, 32, 64, 256, 512]) {
    const flop = 2 * M * N * K;
    const tw = time(() => wasm.gemm(x, M, K, K, pw, N, b, y, N, 0, false, s));
    const tb = time(() => blas.gemm(x, M, K, K, pb, N, b, y, N, 0, false, s));
    const row = { K, N, M, wasmGflops: +(flop / tw / 1e9).toFixed(1), blasGflops: +(flop / tb / 1e9).toFixed(1) };
    gemmRows.push(row);
    console.log(`gemm K=${K} N=${N} M=${M}: wasm ${row.wasmGflops} GFLOP/s, blas ${row.blasGflops} GFLOP/s (blas/wasm ${(tw / tb).toFixed(2)}×)`);
  }
}

const intraRows: { n: number; dk: number; dv: number; wasmMs: number; blasMs: number; summaryCrossWasmMs: number; summaryCrossBlasMs: number }[] = [];
for (const [dk, dv] of [[64, 128], [16, 32]]) {
  for (const n of [16, 32, 48, 64, 96, 128, 256, 512]) {
    A.reset();
    const P = A.transient(n * (2 * dk + dv) * F4, 'qkv'), pow = A.transient((n + 1) * F4, 'pow');
    const o = A.transient(n * dv * F4, 'o'), r = A.transient(n * F4, 'r'), tile = A.transient(tileFloats(n, dk, dv) * F4, 'tile');
    fill(P, n * (2 * dk + dv), 0.3);
    const pv = A.f32(pow, n + 1); for (let i = 0; i <= n; i++) pv[i] = Math.pow(0.97, i);
    const ld = 2 * dk + dv, q = P, k = P + dk * F4, v = P + 2 * dk * F4;
    const run = (K: RuntimeKernels) => () => K.intra(q, k, v, n, dk, dv, ld, ld, ld, pow, o, dv, r, tile);
    const S = A.transient((dk * dv + dk) * F4, 'S');
    const sc = (K: RuntimeKernels) => () => { K.summary(k, v, n, dk, dv, ld, ld, pow, S, S + dk * dv * F4, tile); K.cross(q, n, dk, dv, ld, pow, S, S + dk * dv * F4, o, dv, r, tile); };
    const tw = time(run(wasm)), tb = time(run(blas)), sw = time(sc(wasm)), sb = time(sc(blas));
    const row = { n, dk, dv, wasmMs: +(tw * 1e3).toFixed(4), blasMs: +(tb * 1e3).toFixed(4), summaryCrossWasmMs: +(sw * 1e3).toFixed(4), summaryCrossBlasMs: +(sb * 1e3).toFixed(4) };
    intraRows.push(row);
    console.log(`intra n=${n} dk=${dk} dv=${dv}: wasm ${row.wasmMs} ms, blas ${row.blasMs} ms (blas/wasm ${(tw / tb).toFixed(2)}×); summary + cross: wasm ${row.summaryCrossWasmMs} ms, blas ${row.summaryCrossBlasMs} ms (${(sw / sb).toFixed(2)}×)`);
  }
}
// (3) one chunk-layer of the seed model (d 512, 8 heads, dk 64, dv 128, MLP 2048, gelu), row blocks of 256
const split: Record<string, Record<string, number>> = {};
const act = loadKernelsSync({ memory, variant: 'auto' });
{
  const d = 512, H = 8, dk = 64, dv = 128, Wp = 2 * d + 2 * H * dv, hid = 2048, n = 512, RB = 256, GELU = 1, runs = Math.max(3, reps);
  for (const [name, K] of [['blas', blas], ['wasm', wasm]] as const) {
    A.reset();
    const [W1, W2, W3, W4] = ([[Wp, d], [d, H * dv], [hid, d], [d, hid]] as const).map(([N, Kd]) => A.persistent(K.packedSize(N, Kd) * F4, 'w'));
    const bias = A.persistent(Wp * F4, 'b'), ones = A.persistent(hid * F4, 'g');
    fill(bias, Wp, 0.05); A.f32(ones, hid).fill(1);
    ([[W1, Wp, d], [W2, d, H * dv], [W3, hid, d], [W4, d, hid]] as const).forEach(([w, N, Kd]) => { const t = A.transient(N * Kd * F4, 't'); fill(t, N * Kd, 0.05); K.pack(t, N, Kd, w); A.reset(); });
    const X = A.transient(n * d * F4, 'x'), P = A.transient(n * Wp * F4, 'p'), O = A.transient(n * H * dv * F4, 'o'), R = A.transient(H * n * F4, 'r');
    const h = A.transient(RB * d * F4, 'h'), hd = A.transient(RB * hid * F4, 'h'), tile = A.transient(tileFloats(n, dk, dv) * F4, 't'), gs = A.transient(Math.max(64, K.gemmScratchBytes()), 'g');
    const cs = A.transient(n * dk / 2 * F4, 'c'), sn = A.transient(n * dk / 2 * F4, 's'), pow = A.transient((n + 1) * F4, 'p'), S = A.transient((dk * dv + dk) * F4, 'S');
    fill(cs, n * dk / 2, 0.7); fill(sn, n * dk / 2, 0.7); fill(S, dk * dv + dk, 0.05);
    const pv = A.f32(pow, n + 1); for (let i = 0; i <= n; i++) pv[i] = 0.97 ** i;
    const t: Record<string, number> = {};
    const tm = (k: string, f: () => void) => { const c = process.cpuUsage(); f(); const e = process.cpuUsage(c); t[k] = (t[k] ?? 0) + (e.user + e.system) / 1000; };
    for (let run = 0; run <= runs; run++) {
      if (run === 1) for (const k in t) t[k] = 0; // run 0 warms up
      fill(X, n * d);
      for (let r0 = 0; r0 < n; r0 += RB) {
        tm('layerNorm', () => K.layerNorm(X + r0 * d * F4, RB, d, d, ones, bias, 1e-5, h, d));
        tm('gemm q|k|v|g', () => K.gemm(h, RB, d, d, W1, Wp, bias, P + r0 * Wp * F4, Wp, 0, false, gs));
      }
      tm('rotary', () => { K.rotary(P, n, H, dk, Wp, cs, sn); K.rotary(P + d * F4, n, H, dk, Wp, cs, sn); });
      for (let hh = 0; hh < H; hh++) {
        const q = P + hh * dk * F4, k = q + d * F4, v = P + (2 * d + hh * dv) * F4;
        tm('intra-chunk', () => K.intra(q, k, v, n, dk, dv, Wp, Wp, Wp, pow, O + hh * dv * F4, H * dv, R + hh * n * F4, tile));
        tm('summary + cross', () => { K.summary(k, v, n, dk, dv, Wp, Wp, pow, S, S + dk * dv * F4, tile); K.cross(q, n, dk, dv, Wp, pow, S, S + dk * dv * F4, O + hh * dv * F4, H * dv, R + hh * n * F4, tile); });
      }
      tm('layerNorm', () => K.layerNorm(O, n * H, dv, dv, ones, bias, 1e-5, O, dv));
      tm('gate (gelu)', () => K.gate(P + (2 * d + H * dv) * F4, Wp, O, H * dv, n, H * dv, GELU));
      tm('gemm out', () => K.gemm(O, n, H * dv, H * dv, W2, d, bias, X, d, 0, true, gs));
      for (let r0 = 0; r0 < n; r0 += RB) {
        tm('layerNorm', () => K.layerNorm(X + r0 * d * F4, RB, d, d, ones, bias, 1e-5, h, d));
        tm('gemm mlp1 (no act)', () => K.gemm(h, RB, d, d, W3, hid, bias, hd, hid, 0, false, gs));
        tm('gelu on mlp1', () => act.f32_act__wasmsimd(RB, hid, hd, hid, GELU)); // both engines' GELU: the WASM kernel (fused into the WASM GEMM's epilogue, after BLAS's GEMM)
        tm('gemm mlp2', () => K.gemm(hd, RB, hid, hid, W4, d, bias, X + r0 * d * F4, d, 0, true, gs));
      }
    }
    const ms = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, +(v / runs).toFixed(2)]));
    ms.total = +Object.values(ms).reduce((x, y) => x + y, 0).toFixed(1);
    split[name] = ms;
    console.log(`split, ${name} engine, CPU ms per chunk (512 tokens) and layer: ${Object.entries(ms).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
}
mkdirSync('bench/results', { recursive: true });
writeFileSync(out, JSON.stringify({ machine: machine(), params, gemm: gemmRows, intra: intraRows, split }, null, 2));
console.log(`wrote ${out}`);
