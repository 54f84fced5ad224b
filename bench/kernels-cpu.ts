// Single-thread kernel timings in process CPU time (best of N repetitions), for a
// shared machine where wall-clock figures swing with the load: the GEMM on the
// fused projection shape and on the MLP's first Linear with and without gelu,
// the intra-chunk kernel (blocked vs the former
// row-at-a-time one) with q/k/v read strided from a [C, 3072] projection as in
// the chunk worker, the chunk summary and cross term (C = 512 and 1024), and
// the activations (f32x4 vs the former f64x2 path) on 256×2048, each call on fresh data.
//
//   node dist/bench/kernels-cpu.js     (writes bench/results/kernels-cpu.json)
import { createMemory, loadKernelsSync, ARENA_BASE } from '../src/wasm/loader.js'; // first: sets the relaxed-SIMD flag
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { machine } from '../src/cli/gen.js';
import { benchArgs } from './args.js';
benchArgs({ options: {} }); // no options: any argument is refused (before a run that overwrites bench/results)

const memory = createMemory(4096);
const k = loadKernelsSync({ memory, variant: 'relaxed' });
let top = ARENA_BASE;
const alloc = (b: number) => { const p = top; top += Math.ceil(b / 64) * 64; return p; };
const fill = (p: number, n: number, s: number, sc = 1) => { const v = new Float32Array(memory.buffer, p, n); for (let i = 0; i < n; i++) v[i] = Math.sin(i * 0.7 + s) * sc; };
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
/** Best over n samples of the mean CPU milliseconds of `per` back-to-back calls. */
const best = (fn: () => void, n = 30, per = 3) => { fn(); let b = Infinity; for (let i = 0; i < n; i++) { const t0 = cpu(); for (let j = 0; j < per; j++) fn(); b = Math.min(b, (cpu() - t0) / per); } return b; };
/** Best over n calls of fn's CPU milliseconds, `setup` (untimed) before each: for in-place kernels whose
 *  repeated application would drift the data (an activation applied again and again reaches subnormals). */
const bestFresh = (setup: () => void, fn: () => void, n = 40) => { setup(); fn(); let b = Infinity; for (let i = 0; i < n; i++) { setup(); const t0 = cpu(); fn(); b = Math.min(b, cpu() - t0); } return b; };
const load = () => loadavg().map((x) => +x.toFixed(2));

console.log('retnet kernels, single thread, relaxed module, process CPU time (best of 30)');
console.log('machine:', JSON.stringify(machine()), 'date:', new Date().toISOString(), 'load:', load().join(' '));
const out: Record<string, unknown> = { date: new Date().toISOString(), machine: machine(), loadAtStart: load() };

const M = 256, Wp = 3072, K = 512, dk = 64, dv = 128;
{
  const xp = alloc(M * K * 4), wp = alloc(Wp * K * 4), pp = alloc(k.f32_gemm_packed_size(Wp, K)), yp = alloc(M * Wp * 4), sp = alloc(k.f32_gemm_scratch_size());
  fill(xp, M * K, 1); fill(wp, Wp * K, 2, 0.05); k.f32_gemm_pack_8(Wp, K, wp, K, pp);
  const ms = best(() => k.f32_gemm_4x8__wasmsimd(M, Wp, K, xp, K, pp, 0, yp, Wp, 0, 0, sp));
  out.gemm = { M, N: Wp, K, ms, gflops: +(2 * M * Wp * K / ms / 1e6).toFixed(1) };
  console.log(`GEMM ${M}×${K}·(${Wp}×${K})ᵀ: ${ms.toFixed(2)} ms, ${(2 * M * Wp * K / ms / 1e6).toFixed(1)} GFLOP/s`);
}
{
  // the MLP's first Linear (512 rows of a row block, d=512 → 2,048) with and without its gelu epilogue
  const M2 = 512, N2 = 2048, K2 = 512;
  const xp = alloc(M2 * K2 * 4), wp = alloc(N2 * K2 * 4), pp = alloc(k.f32_gemm_packed_size(N2, K2)), yp = alloc(M2 * N2 * 4), sp = alloc(k.f32_gemm_scratch_size());
  fill(xp, M2 * K2, 1); fill(wp, N2 * K2, 2, 0.05); k.f32_gemm_pack_8(N2, K2, wp, K2, pp);
  const gf = (ms: number) => +(2 * M2 * N2 * K2 / ms / 1e6).toFixed(1);
  const plain = best(() => k.f32_gemm_4x8__wasmsimd(M2, N2, K2, xp, K2, pp, 0, yp, N2, 0, 0, sp), 15);
  const gelu = best(() => k.f32_gemm_4x8__wasmsimd(M2, N2, K2, xp, K2, pp, 0, yp, N2, 1, 0, sp), 15);
  out.gemmGelu = { M: M2, N: N2, K: K2, plainMs: plain, geluMs: gelu, plainGflops: gf(plain), geluGflops: gf(gelu) };
  console.log(`GEMM ${M2}×${K2}·(${N2}×${K2})ᵀ: ${gf(plain)} GFLOP/s, with the gelu epilogue ${gf(gelu)} GFLOP/s`);
}
const retention: Record<string, unknown>[] = [];
for (const C of [512, 1024]) {
  const P = alloc(C * Wp * 4); fill(P, C * Wp, 3, 0.3);
  const q = P, kk = P + 512 * 4, v = P + 1024 * 4;
  const pw = alloc((C + 1) * 4); const pv = new Float32Array(memory.buffer, pw, C + 1); for (let i = 0; i <= C; i++) pv[i] = Math.pow(1 - 1 / 512, i);
  const o = alloc(C * 1024 * 4), r = alloc(C * 4), tile = alloc(k.f32_retention_scratch_size(C, dk, dv)), S = alloc((dk * dv + dk) * 4);
  const intraFlops = 2 * (C * (C + 1) / 2) * (dk + dv), stateFlops = 2 * C * dk * dv;
  const row: Record<string, number> = { C };
  row.intraBlockedMs = best(() => k.f32_retention_intra__wasmsimd(C, dk, dv, q, Wp, kk, Wp, v, Wp, pw, o, 1024, r, tile), C === 512 ? 30 : 10);
  row.intraRowsMs = best(() => k.f32_retention_intra_rows__wasmsimd(C, dk, dv, q, Wp, kk, Wp, v, Wp, pw, o, 1024, r, tile), C === 512 ? 30 : 10);
  row.summaryMs = best(() => k.f32_retention_summary__wasmsimd(C, dk, dv, kk, Wp, v, Wp, pw, S, S + dk * dv * 4, tile));
  row.crossMs = best(() => k.f32_retention_cross__wasmsimd(C, dk, dv, q, Wp, pw, S, S + dk * dv * 4, o, 1024, r, tile));
  const gf = (f: number, ms: number) => +(f / ms / 1e6).toFixed(1);
  Object.assign(row, { intraBlockedGflops: gf(intraFlops, row.intraBlockedMs), intraRowsGflops: gf(intraFlops, row.intraRowsMs), summaryGflops: gf(stateFlops, row.summaryMs), crossGflops: gf(stateFlops, row.crossMs) });
  retention.push(row);
  console.log(`C=${C} dk=${dk} dv=${dv}: intra blocked ${row.intraBlockedMs.toFixed(2)} ms (${row.intraBlockedGflops} GFLOP/s, causal half), row-at-a-time ${row.intraRowsMs.toFixed(2)} ms (${row.intraRowsGflops}); summary ${row.summaryGflops}, cross ${row.crossGflops} GFLOP/s`);
}
out.retention = retention;
{
  // 256×2048, the MLP's block; every call on the same fresh data (values in [−3, 3])
  const rows = 256, cols = 2048, n = rows * cols, xp = alloc(n * 4), src = alloc(n * 4);
  fill(src, n, 5, 3);
  const fresh = () => { new Float32Array(memory.buffer).copyWithin(xp / 4, src / 4, src / 4 + n); };
  const acts: Record<string, { f32x4: number; f64x2: number }> = {};
  for (const [name, code] of [['gelu', 1], ['silu', 2], ['selu', 4], ['sigmoid', 5]] as const) {
    const a = bestFresh(fresh, () => k.f32_act__wasmsimd(rows, cols, xp, cols, code)) * 1e6 / n;
    const b = bestFresh(fresh, () => k.f32_act__f64x2(rows, cols, xp, cols, code)) * 1e6 / n;
    acts[name] = { f32x4: +a.toFixed(2), f64x2: +b.toFixed(2) };
    console.log(`activation ${name.padEnd(7)}: f32x4 ${a.toFixed(2)} ns/element, former f64x2 ${b.toFixed(2)} ns/element`);
  }
  out.activationsNsPerElement = acts;
}
out.loadAtEnd = load();
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/kernels-cpu.json', JSON.stringify(out, null, 2) + '\n');
console.log(`load at end ${load().join(' ')}; wrote bench/results/kernels-cpu.json`);
