// oneDNN matmul (src/runtime/dnnl.ts): bfloat16 and float32 products over float32 rows in the shared
// memory against a float64 reference, strided src/dst, accumulation, M from 1 to 1,000, both row modes,
// a second matmul over the first's reordered weights, and E_ENGINE when the library is absent.
// Tests that need libdnnl report themselves skipped by name where it is missing (outside CI).
//
// Error bounds. bf16: the reference is float64 over the bfloat16-rounded operands (src rounded to
// nearest even, as the primitive's input conversion must; W as given in bf16, or rounded from float32).
// A product of two bfloat16 values (8 significant bits each) is exact in float32 (≤ 16 bits), so the
// only error is the float32 summation of the K products (+ the old dst when accumulating): in any order
// and blocking, |sum − exact| ≤ γ_{n−1}·Σ|terms| with n terms, γ_m = m·u/(1 − m·u), u = 2⁻²⁴. We allow
// (K + 1)·u·Σ|terms| (n ≤ K + 1). f32: each product is rounded as well (or fused into an FMA), one more
// u per term: (K + 2)·u·Σ|terms|. The staging copies of strided src/dst are exact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RetNet, RetNetError } from '../src/index.js';
import { bindDnnlKernels } from '../src/runtime/dnnl-kernels.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { packModel } from '../src/runtime/pack.js';
import { Arena } from '../src/runtime/arena.js';
import { ARENA_BASE } from '../src/wasm/loader.js';
import type { RuntimeKernels } from '../src/runtime/kernels.js';
import { createDnnlMatmul, dnnlBf16Missing, dnnlMissing, fromBf16, loadDnnl, toBf16, type DnnlDtype } from '../src/runtime/dnnl.js';
import { memory, arena, rng, U } from './helpers/kernels.js';
import { canRun } from './helpers/skip.js';

const missing = dnnlMissing();
/** null where oneDNN has a bfloat16 matmul on this CPU, else why not: oneDNN 2.6 has none below AVX-512. A
 *  property of the CPU, not a missing part: the bf16 tests report themselves skipped there, CI included. */
const noBf16 = missing === null ? dnnlBf16Missing() : null;
/** Registers `name [bf16]` and `name [f32]`; the bf16 one reports itself skipped where oneDNN has no bf16 matmul. */
function dtypeTest(name: string, body: (dtype: DnnlDtype) => void): void {
  for (const dtype of ['bf16', 'f32'] as DnnlDtype[]) {
    const full = `${name} [${dtype}]`;
    test(full, () => {
      if (!canRun(full, missing)) return;
      if (dtype === 'bf16' && noBf16 !== null) { console.log(`SKIPPED: ${full} — ${noBf16}`); return; }
      body(dtype);
    });
  }
}

/** src [M, ldS] and W [N, K] as float64 arrays; ~1/4 of src values sit exactly halfway between two bfloat16
 *  values (low 16 bits 0x8000, odd and even upper halves) so the input rounding must be to nearest even. */
function data(seed: number, M: number, N: number, K: number, ldS: number) {
  const r = rng(seed);
  const src = r.uniform(M * ldS);
  const u32 = new Uint32Array(1), f32 = new Float32Array(u32.buffer);
  for (let i = 0; i < src.length; i += 4) { f32[0] = src[i]!; u32[0] = (u32[0]! & 0xffff0000) | 0x8000; src[i] = f32[0]!; }
  const W = r.uniform(N * K);
  return { src, W };
}

/** float64 reference and its per-element bound: y[i,j] = (acc ? y0 : 0) + Σ_k a(src[i,k])·b(W[j,k]). */
function reference(src: Float64Array, W: Float64Array, M: number, N: number, K: number, ldS: number,
  y0: Float64Array | null, ldD: number, round: (x: number) => number, perTerm: number) {
  const want = new Float64Array(M * N), bound = new Float64Array(M * N);
  const a = src.map(round), b = W.map(round);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = 0, m = 0;
    for (let k = 0; k < K; k++) { const t = a[i * ldS + k]! * b[j * K + k]!; s += t; m += Math.abs(t); }
    if (y0) { s += y0[i * ldD + j]!; m += Math.abs(y0[i * ldD + j]!); }
    want[i * N + j] = s; bound[i * N + j] = perTerm * U * m + 1e-30;
  }
  return { want, bound };
}

const bf = (x: number) => fromBf16(toBf16(x));

const SIZES: [number, number][] = [[7, 33], [65, 130], [256, 300]];
const ROWS = [1, 2, 7, 16, 33, 100, 512, 1000];

for (const dtype of ['bf16', 'f32'] as DnnlDtype[]) {
  const name = `dnnl ${dtype} matmul = float64 reference of the ${dtype === 'bf16' ? 'bf16-rounded ' : ''}operands within (K + ${dtype === 'bf16' ? 1 : 2})·2⁻²⁴·Σ|terms|: M 1…1000, dense and strided src/dst, accumulate`;
  test(name, () => {
    if (!canRun(name, missing)) return;
    if (dtype === 'bf16' && noBf16 !== null) { console.log(`SKIPPED: ${name} — ${noBf16}`); return; }
    const lib = loadDnnl();
    const base = lib.baseOf(memory);
    let worst = 0;
    const impls = new Set<string>();
    for (const [N, K] of SIZES) {
      const Mmax = N * K > 20_000 ? 512 : 1000;
      const { W } = data(1, 1, N, K, K);
      // bf16: W given as bfloat16 bits for one size, as float32 (rounded by the reorder) for the others
      const weights = dtype === 'bf16' && N === 65 ? Uint16Array.from(W, toBf16) : Float32Array.from(W);
      const mm = createDnnlMatmul({ N, K, dtype, weights });
      assert.ok(mm.packedBytes >= N * K * (dtype === 'bf16' ? 2 : 4), `packedBytes ${mm.packedBytes}`);
      for (const M of ROWS.filter((m) => m <= Mmax)) for (const strided of [false, true]) for (const acc of [false, true]) {
        if (M > 100 && strided === acc) continue; // keep the float64 reference affordable: two of four at large M
        const mark = arena.mark();
        const ldS = strided ? K + 5 : K, ldD = strided ? N + 3 : N;
        const { src } = data(M * 31 + N, M, N, K, ldS);
        const y0 = rng(M + 7 * N).uniform(M * ldD);
        const ps = arena.alloc(M * ldS * 4, 64), pd = arena.alloc(M * ldD * 4, 64);
        new Float32Array(memory.buffer, ps, M * ldS).set(src);
        new Float32Array(memory.buffer, pd, M * ldD).set(y0);
        mm.run(base + ps, M, ldS, base + pd, ldD, acc);
        impls.add(mm.impl(M, acc));
        const got = new Float32Array(memory.buffer, pd, M * ldD);
        const { want, bound } = reference(src, W, M, N, K, ldS, acc ? y0 : null, ldD, dtype === 'bf16' ? bf : (x) => x, K + (dtype === 'bf16' ? 1 : 2));
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            const e = Math.abs(got[i * ldD + j]! - want[i * N + j]!), r = e / bound[i * N + j]!;
            if (!(r <= 1)) assert.unreachable(`${dtype} M=${M} N=${N} K=${K} ldS=${ldS} ldD=${ldD} acc=${acc}: [${i},${j}] got ${got[i * ldD + j]}, want ${want[i * N + j]}, err ${e.toExponential(2)} > bound ${bound[i * N + j]!.toExponential(2)}`);
            worst = Math.max(worst, r);
          }
          // the padding columns of a strided dst stay as they were
          for (let j = N; j < ldD; j++) if (got[i * ldD + j] !== Math.fround(y0[i * ldD + j]!)) assert.unreachable(`${dtype} M=${M}: dst padding [${i},${j}] changed`);
        }
        arena.reset(mark);
      }
      mm.destroy();
    }
    console.log(`  ${dtype}: ${lib.label}; dispatched to ${[...impls].join(', ')}; worst error ${worst.toFixed(3)} of the bound`);
  });
}

// oneDNN's brgemm picks the weights' column block (BA16a64b2a, BA16a32b2a, …) from M, N and its threads: on AMX
// for a single block of both (M, N ≤ 64), on AVX-512 where the threads outnumber the column blocks. A primitive
// for a few rows left to choose (format_tag_any) then wanted another layout than the one W was reordered into
// (M = 512's), and the matmul threw E_ENGINE. Four oneDNN threads make the AVX-512 case on any CPU with it.
const tLay = 'dnnl matmul keeps the reordered weights\' layout for every row count, where oneDNN would pick another for a few rows (4 oneDNN threads; M 1…512), within the bound';
dtypeTest(tLay, (dtype) => {
  const lib = loadDnnl(), base = lib.baseOf(memory);
  const seen: string[] = [];
  try {
    {
      for (const [N, K] of [[128, 64], [96, 128], [256, 64]] as [number, number][]) {
        const { W } = data(N + K, 1, N, K, K);
        const mm = createDnnlMatmul({ N, K, dtype, weights: Float32Array.from(W), threads: 4 });
        for (const M of [1, 3, 16, 40, 64, 512]) {
          const mark = arena.mark();
          const { src } = data(M + N, M, N, K, K);
          const ps = arena.alloc(M * K * 4, 64), pd = arena.alloc(M * N * 4, 64);
          new Float32Array(memory.buffer, ps, M * K).set(src);
          mm.run(base + ps, M, K, base + pd, N);
          const got = new Float32Array(memory.buffer, pd, M * N);
          const { want, bound } = reference(src, W, M, N, K, K, null, N, dtype === 'bf16' ? bf : (x) => x, K + (dtype === 'bf16' ? 1 : 2));
          for (let i = 0; i < M * N; i++) {
            const e = Math.abs(got[i]! - want[i]!);
            if (!(e <= bound[i]!)) assert.unreachable(`${dtype} N=${N} K=${K} M=${M}: [${Math.floor(i / N)},${i % N}] got ${got[i]}, want ${want[i]}, err ${e.toExponential(2)} > bound ${bound[i]!.toExponential(2)}`);
          }
          arena.reset(mark);
        }
        seen.push(`${dtype} ${N}×${K}: ${mm.impl(3)}`);
        mm.destroy();
      }
    }
  } finally { lib.setThreads(1); }
  console.log(`  ${seen.join('; ')}`);
});

const tRt = "dnnl rows: 'runtime' (one primitive, M = DNNL_RUNTIME_DIM_VAL) = rows: 'fixed' within the bound, and names its implementation";
dtypeTest(tRt, (dtype) => {
  const lib = loadDnnl(), base = lib.baseOf(memory);
  const N = 40, K = 77;
  const { W } = data(5, 1, N, K, K);
  {
    const fixed = createDnnlMatmul({ N, K, dtype, weights: Float32Array.from(W) });
    const rt = createDnnlMatmul({ N, K, dtype, weights: Float32Array.from(W), rows: 'runtime' });
    assert.ok(rt.impl(1).length > 0 && fixed.impl(1).length > 0);
    for (const M of [1, 3, 64, 129]) {
      const mark = arena.mark();
      const ldS = K + 2, ldD = N + 1;
      const { src } = data(M, M, N, K, ldS);
      const ps = arena.alloc(M * ldS * 4), p1 = arena.alloc(M * ldD * 4), p2 = arena.alloc(M * ldD * 4);
      new Float32Array(memory.buffer, ps, M * ldS).set(src);
      fixed.run(base + ps, M, ldS, base + p1, ldD);
      rt.run(base + ps, M, ldS, base + p2, ldD);
      const a = new Float32Array(memory.buffer, p1, M * ldD), b = new Float32Array(memory.buffer, p2, M * ldD);
      const { bound } = reference(src, W, M, N, K, ldS, null, ldD, dtype === 'bf16' ? bf : (x) => x, 2 * (K + 2));
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        const e = Math.abs(a[i * ldD + j]! - b[i * ldD + j]!);
        if (!(e <= bound[i * N + j]!)) assert.unreachable(`${dtype} M=${M} [${i},${j}]: fixed ${a[i * ldD + j]} vs runtime ${b[i * ldD + j]}`);
      }
      arena.reset(mark);
    }
    console.log(`  ${dtype}: fixed → ${fixed.impl(64)}, runtime → ${rt.impl(64)}`);
    fixed.destroy(); rt.destroy();
  }
});

const tPk = 'dnnl: a second matmul over the first one\'s reordered weights (packedAt, in the shared memory) gives bitwise the same rows';
dtypeTest(tPk, (dtype) => {
  const lib = loadDnnl(), base = lib.baseOf(memory);
  const N = 96, K = 200, M = 50;
  const { W, src } = data(9, M, N, K, K);
  {
    const mark = arena.mark();
    const probe = createDnnlMatmul({ N, K, dtype, weights: Float32Array.from(W) });
    const packed = arena.alloc(probe.packedBytes, 64);
    const a = createDnnlMatmul({ N, K, dtype, weights: Float32Array.from(W), packedAt: base + packed });
    assert.is(a.packedAddress, base + packed);
    const b = createDnnlMatmul({ N, K, dtype, packedAt: base + packed }); // no weights: reads a's copy
    const ps = arena.alloc(M * K * 4), p0 = arena.alloc(M * N * 4), p1 = arena.alloc(M * N * 4), p2 = arena.alloc(M * N * 4);
    new Float32Array(memory.buffer, ps, M * K).set(src);
    probe.run(base + ps, M, K, base + p0, N); a.run(base + ps, M, K, base + p1, N); b.run(base + ps, M, K, base + p2, N);
    const y0 = new Float32Array(memory.buffer, p0, M * N), y1 = new Float32Array(memory.buffer, p1, M * N), y2 = new Float32Array(memory.buffer, p2, M * N);
    for (let i = 0; i < M * N; i++) if (y0[i] !== y1[i] || y1[i] !== y2[i]) assert.unreachable(`${dtype} [${i}]: ${y0[i]} ${y1[i]} ${y2[i]}`);
    probe.destroy(); a.destroy(); b.destroy();
    arena.reset(mark);
  }
});

const tEv = 'dnnl: more than 64 row counts (the per-M cache evicts and frees the oldest) stay correct, including a row count used again after eviction';
test(tEv, () => {
  if (!canRun(tEv, missing)) return;
  const lib = loadDnnl(), base = lib.baseOf(memory);
  const N = 9, K = 17;
  const { W } = data(3, 1, N, K, K);
  const dtype: DnnlDtype = noBf16 === null ? 'bf16' : 'f32'; // the cache is the same for both
  const mm = createDnnlMatmul({ N, K, dtype, weights: Float32Array.from(W) });
  for (const M of [...Array.from({ length: 70 }, (_, i) => i + 1), 1, 2, 3]) {
    const mark = arena.mark();
    const { src } = data(M, M, N, K, K);
    const ps = arena.alloc(M * K * 4), pd = arena.alloc(M * N * 4);
    new Float32Array(memory.buffer, ps, M * K).set(src);
    mm.run(base + ps, M, K, base + pd, N);
    const got = new Float32Array(memory.buffer, pd, M * N);
    const { want, bound } = reference(src, W, M, N, K, K, null, N, dtype === 'bf16' ? bf : (x) => x, K + (dtype === 'bf16' ? 1 : 2));
    for (let i = 0; i < M * N; i++) if (!(Math.abs(got[i]! - want[i]!) <= bound[i]!)) assert.unreachable(`${dtype} M=${M} [${i}]: got ${got[i]}, want ${want[i]}`);
    arena.reset(mark);
  }
  mm.destroy();
});

const tInfo = 'dnnl: the library reports its version, threading runtime and effective ISA; the calling thread runs 1 oneDNN thread';
test(tInfo, () => {
  if (!canRun(tInfo, missing)) return;
  const lib = loadDnnl();
  assert.match(lib.version, /^\d+\.\d+\.\d+$/);
  assert.ok(lib.isa.length > 0 && !lib.isa.startsWith('isa 0x0'), lib.isa);
  assert.ok(lib.label.includes(lib.version) && lib.label.includes(lib.isa), lib.label);
  if (lib.cpuRuntime === 'omp' || lib.cpuRuntime === 'seq') assert.is(lib.threads(), 1);
  console.log(`  ${lib.label} from ${lib.path}; bf16 hardware: ${lib.hasBf16Hardware}; threads ${lib.threads()}`);
});

test('dnnl: with RETNET_DNNL at a missing path, loading and creating a matmul throw E_ENGINE naming the path and the install', () => {
  const saved = process.env.RETNET_DNNL;
  const bogus = '/nonexistent/libdnnl-for-test.so.2';
  process.env.RETNET_DNNL = bogus;
  try {
    for (const call of [() => loadDnnl(), () => createDnnlMatmul({ N: 4, K: 4, dtype: 'f32', weights: new Float32Array(16) })]) {
      let err: unknown;
      try { call(); } catch (e) { err = e; }
      assert.instance(err, RetNetError);
      assert.is((err as RetNetError).code, 'E_ENGINE');
      assert.ok((err as Error).message.includes(bogus), (err as Error).message);
      assert.ok((err as Error).message.includes('libdnnl2'), (err as Error).message);
    }
  } finally {
    if (saved === undefined) delete process.env.RETNET_DNNL; else process.env.RETNET_DNNL = saved;
  }
});

const tFit = "weights that do not fit the shared memory: E_MEMORY saying so, on the dnnl engine at f32 and on WASM, without advice about chunk sizes";
test(tFit, async () => {
  if (!canRun(tFit, dnnlMissing())) return;
  const model = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 64, seed: 5 });
  const spec = { config: model.config, dims: model.dims, layers: model.layers };
  const mem = new WebAssembly.Memory({ initial: 16, maximum: 1024, shared: true });
  const base = bindWasmKernels(mem, 'auto');
  // the weights need ~200 KiB as float32: an arena of 64 KiB cannot hold them
  for (const K of [bindDnnlKernels(mem, base, undefined, 1, 1, undefined, 'f32'), base] as RuntimeKernels[]) {
    let e: RetNetError | null = null;
    try { packModel(spec, K, new Arena(mem, ARENA_BASE, ARENA_BASE + 65536)); } catch (err) { e = err as RetNetError; }
    assert.ok(e, `${K.name}: packModel fitted in 64 KiB`);
    assert.is(e!.code, 'E_MEMORY');
    assert.match(e!.message, /the model's weights do not fit the .* engine's shared memory/);
    assert.not.match(e!.message, /smaller chunks/);
  }
  await model.close();
});

test('toBf16 rounds to nearest even; fromBf16 widens exactly', () => {
  const u = new Uint32Array(1), f = new Float32Array(u.buffer);
  const bits = (x: number) => { u[0] = x; return f[0]!; };
  assert.is(toBf16(bits(0x3f808000)), 0x3f80); // tie, even below
  assert.is(toBf16(bits(0x3f818000)), 0x3f82); // tie, odd below → up
  assert.is(toBf16(bits(0x3f808001)), 0x3f81);
  assert.is(toBf16(bits(0x3f807fff)), 0x3f80);
  assert.is(toBf16(bits(0x7f7fffff)), 0x7f80); // rounds to +inf
  assert.ok(Number.isNaN(fromBf16(toBf16(NaN))));
  assert.is(fromBf16(0x3f80), 1);
  assert.is(fromBf16(0xc040), -3);
});

test.run();
