// The CBLAS engine (src/runtime/blas-kernels.ts): its GEMM, intra-chunk
// retention, chunk summary and cross term equal the float64-accumulating scalar JS twin on odd sizes, on
// both sides of the BLAS/WASM crossovers; engine selection ('auto' | 'wasm' |
// 'blas', RETNET_KERNELS, RETNET_BLAS) and its errors. Runtime-level golden,
// form-agreement and bitwise-identity tests on this engine are in
// runtime-golden.test.ts and runtime-forms.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RetNet, RetNetError, Tensor } from '../src/index.js';
import { bindBlasKernels, openblasCoreNote, type BlasTuning } from '../src/runtime/blas-kernels.js';
import { cpuFeatures, hasFlags, parseCpuinfo } from '../src/runtime/cpu.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsKernels, tileFloats, type RuntimeKernels } from '../src/runtime/kernels.js';
import { memory, arena, rng, putF32, getF32 } from './helpers/kernels.js';
import { intraChunk } from '../src/reference/ops.js';
import { engineMissing } from './helpers/engines.js';
import { canRun } from './helpers/skip.js';

const missing = engineMissing('blas');
const ALWAYS: BlasTuning = { gemmMinRows: 0, intraMinRows: 0, intraBlock: 16 }; // every call on BLAS
const js = jsKernels(memory);

/** max|got − want| / max|want| over the first n elements. */
function relErr(got: Float64Array, want: Float64Array): number {
  let e = 0, m = 0;
  for (let i = 0; i < want.length; i++) { e = Math.max(e, Math.abs(got[i] - want[i])); m = Math.max(m, Math.abs(want[i])); }
  return Number.isNaN(e) ? Infinity : e / Math.max(m, 1e-30);
}

for (const [label, tune] of [['always BLAS', ALWAYS], ['default crossovers', undefined]] as const) {
  const t1 = `blas gemm (${label}) = JS twin: bias, activation, accumulate, strided x/y, M across the crossover`;
  test(t1, () => {
    if (!canRun(t1, missing)) return;
    const K = bindBlasKernels(memory, 'auto', undefined, tune);
    const r = rng(77);
    for (const M of [1, 3, 15, 16, 17, 70]) for (const [N, Kd] of [[1, 1], [9, 33], [33, 257], [64, 600]]) {
      for (const act of [0, 1, 3]) for (const accumulate of [false, true]) for (const hasBias of [false, true]) {
        const mark = arena.mark();
        const ldx = Kd + 3, ldy = N + 5;
        const W = r.uniform(N * Kd), X = r.uniform(M * ldx), B = r.uniform(N), Y0 = r.uniform(M * ldy);
        const w = putF32(W), x = putF32(X), b = hasBias ? putF32(B) : 0;
        const pb = arena.alloc(K.packedSize(N, Kd) * 4), pj = arena.alloc(js.packedSize(N, Kd) * 4);
        K.pack(w, N, Kd, pb); js.pack(w, N, Kd, pj);
        const yb = putF32(Y0), yj = putF32(Y0), s = arena.alloc(Math.max(64, K.gemmScratchBytes()));
        K.gemm(x, M, Kd, ldx, pb, N, b, yb, ldy, act, accumulate, s);
        js.gemm(x, M, Kd, ldx, pj, N, b, yj, ldy, act, accumulate, 0);
        // float32 sums of ≤ 600 products of [-1, 1] values (+ bias, + y): ~1e-6 of the largest output; 1e-5 bounds it
        const e = relErr(getF32(yb, M * ldy), getF32(yj, M * ldy));
        assert.ok(e <= 1e-5, `gemm M=${M} N=${N} K=${Kd} act=${act} acc=${accumulate} bias=${hasBias}: rel err ${e.toExponential(2)} > 1e-5`);
        arena.reset(mark);
      }
    }
  });

  const t2 = `blas intra-chunk retention, chunk summary and cross term (${label}) = JS twin, chunk lengths across the crossover and block edges`;
  test(t2, () => {
    if (!canRun(t2, missing)) return;
    const K: RuntimeKernels = bindBlasKernels(memory, 'auto', undefined, tune);
    const r = rng(78);
    for (const [dk, dv] of [[8, 16], [16, 24]]) for (const n of [1, 7, 8, 9, 33, 63, 64, 65, 130]) {
      const mark = arena.mark();
      const ld = 2 * dk + dv + 3;
      const P = putF32(r.uniform(n * ld));
      const pow = putF32(Array.from({ length: n + 1 }, (_, i) => Math.fround(0.95 ** i)));
      const ob = arena.alloc(n * (dv + 2) * 4), oj = arena.alloc(n * (dv + 2) * 4);
      const rb = arena.alloc(n * 4), rj = arena.alloc(n * 4), tile = arena.alloc(tileFloats(n, dk, dv) * 4);
      new Float32Array(memory.buffer, ob, n * (dv + 2)).fill(7); new Float32Array(memory.buffer, oj, n * (dv + 2)).fill(7);
      const q = P, k = P + dk * 4, v = P + 2 * dk * 4;
      K.intra(q, k, v, n, dk, dv, ld, ld, ld, pow, ob, dv + 2, rb, tile);
      js.intra(q, k, v, n, dk, dv, ld, ld, ld, pow, oj, dv + 2, rj, tile);
      // float32 sums over ≤ dk + n = 154 terms: ~1e-6 of the largest output; 1e-5 bounds it. Padding columns (7) must stay.
      const eo = relErr(getF32(ob, n * (dv + 2)), getF32(oj, n * (dv + 2)));
      const er = relErr(getF32(rb, n), getF32(rj, n));
      assert.ok(eo <= 1e-5 && er <= 1e-5, `intra n=${n} dk=${dk} dv=${dv}: rel err o ${eo.toExponential(2)}, r ${er.toExponential(2)} > 1e-5`);
      // chunk summary S = Σ ζ_j k_jᵀ v_j, z = Σ ζ_j k_j (same float32 bound: sums over n terms)
      const Sb = arena.alloc((dk * dv + dk) * 4), Sj = arena.alloc((dk * dv + dk) * 4);
      K.summary(k, v, n, dk, dv, ld, ld, pow, Sb, Sb + dk * dv * 4, tile);
      js.summary(k, v, n, dk, dv, ld, ld, pow, Sj, Sj + dk * dv * 4, tile);
      const eS = relErr(getF32(Sb, dk * dv), getF32(Sj, dk * dv)), ez = relErr(getF32(Sb + dk * dv * 4, dk), getF32(Sj + dk * dv * 4, dk));
      assert.ok(eS <= 1e-5 && ez <= 1e-5, `summary n=${n} dk=${dk} dv=${dv}: rel err S ${eS.toExponential(2)}, z ${ez.toExponential(2)} > 1e-5`);
      // cross term o += ξ_i q_i S, r += ξ_i q_i·z on top of the intra output (sums over dk terms)
      K.cross(q, n, dk, dv, ld, pow, Sj, Sj + dk * dv * 4, ob, dv + 2, rb, tile);
      js.cross(q, n, dk, dv, ld, pow, Sj, Sj + dk * dv * 4, oj, dv + 2, rj, tile);
      const co = relErr(getF32(ob, n * (dv + 2)), getF32(oj, n * (dv + 2))), cr = relErr(getF32(rb, n), getF32(rj, n));
      assert.ok(co <= 1e-5 && cr <= 1e-5, `cross n=${n} dk=${dk} dv=${dv}: rel err o ${co.toExponential(2)}, r ${cr.toExponential(2)} > 1e-5`);
      arena.reset(mark);
    }
  });
}

// A·v in K blocks of INTRA_AV_BLOCK = 64 tokens (each sgemm adding into o) and the masked row sums in
// blocks of 32 columns: at n = 1,024 on positive data (no cancellation, the worst case for long sums)
// the error stays within (dk + 64 + n/32 + 8)·2⁻²⁴·Σ|terms| (dk-term dots, the mask product, 64 + n/64
// for A·v, 8 + n/32 + 2 for r), and A·v's is under 60% of one sgemm over the whole K (OpenBLAS sums a
// K block per output in one chain; measured 5.3 vs 14.7 units of 2⁻²⁴·Σ|terms| with Debian's 0.3.21).
const tAv = 'blas intra-chunk retention at n = 1,024: A·v in K blocks of 64 within (dk + 64 + n/32 + 8)·2⁻²⁴·Σ|terms| and under 60% of one sgemm\'s error';
test(tAv, () => {
  if (!canRun(tAv, missing)) return;
  const n = 1024, dk = 16, dv = 12, gamma = 1 - 2 ** -12, U = 2 ** -24;
  const r = rng(31);
  const mark = arena.mark();
  const q = putF32(r.uniform(n * dk, 0, 1)), k = putF32(r.uniform(n * dk, 0, 1)), v = putF32(r.uniform(n * dv, 0, 1));
  const Q = getF32(q, n * dk), Kk = getF32(k, n * dk), V = getF32(v, n * dv); // the float32 inputs, exactly
  const pow = putF32(Array.from({ length: n + 1 }, (_, i) => Math.fround(gamma ** i)));
  const want = intraChunk(Q, Kk, V, n, dk, dv, gamma); // float64; positive data: Σ|terms| = the sums themselves
  const tile = arena.alloc(tileFloats(n, dk, dv) * 4);
  const run = (intraAvBlock: number) => {
    const K = bindBlasKernels(memory, 'auto', undefined, { gemmMinRows: 0, intraMinRows: 0, intraBlock: 64, intraAvBlock });
    const ob = arena.alloc(n * dv * 4), rb = arena.alloc(n * 4);
    K.intra(q, k, v, n, dk, dv, dk, dk, dv, pow, ob, dv, rb, tile);
    const o = getF32(ob, n * dv), rr = getF32(rb, n);
    let eo = 0, er = 0;
    for (let i = 0; i < n * dv; i++) eo = Math.max(eo, Math.abs(o[i] - want.o[i]) / (U * want.o[i]));
    for (let i = 0; i < n; i++) er = Math.max(er, Math.abs(rr[i] - want.rowSum[i]) / (U * want.rowSum[i]));
    return { eo, er };
  };
  const blocked = run(64), whole = run(1 << 30);
  console.log(`  max |err|/(2⁻²⁴Σ|terms|): o ${blocked.eo.toFixed(1)} in K blocks of 64, ${whole.eo.toFixed(1)} in one sgemm; r ${blocked.er.toFixed(1)}`);
  const c = dk + 64 + n / 32 + 8;
  assert.ok(blocked.eo <= c && blocked.er <= c, `blocked: o ${blocked.eo}, r ${blocked.er} units > ${c}`);
  assert.ok(blocked.eo < 0.6 * whole.eo, `blocked A·v error ${blocked.eo} not under 60% of one sgemm's ${whole.eo}`);
  arena.reset(mark);
});

const t3 = "kernels: 'blas' names the engine in backendInfo; 'auto' picks it; 'wasm' keeps the WASM engine";
test(t3, async () => {
  if (!canRun(t3, missing)) return;
  const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 16, valueFactor: 2, mlpMult: 2, seed: 1 });
  const x = Tensor.randn([1, 40, 16], { seed: 2 });
  try {
    for (const kernels of ['blas', 'auto', 'wasm'] as const) await model.forward(x, { backend: 'wasm', kernels, chunkSize: 8, workers: 1 });
    const engines = (await model.backendInfo()).map((i) => `${i.kernels}: ${i.engine}`);
    assert.match(engines[0], /^blas: \w+ [\w.]+( \(\w+\))? \+ wasm-/);
    assert.match(engines[1], /^blas: /);
    assert.match(engines[2], /^wasm: wasm-/);
  } finally { await model.close(); }
});

test('openblasCoreNote: a note only for pre-AVX-512 kernels on a CPU with AVX-512, naming OPENBLAS_CORETYPE when it is set', () => {
  const info = (vendor: string, flags: string) => parseCpuinfo(`vendor_id\t: ${vendor}\nmodel name\t: X\nflags\t\t: ${flags}\n`, 2);
  const avx512 = info('AuthenticAMD', 'fma avx2 avx512f avx512cd avx512bw avx512dq avx512vl avx512_bf16');
  assert.is(avx512.vendor, 'AuthenticAMD');
  assert.ok(hasFlags(avx512, 'avx512f', 'avx512vl'));
  assert.not.ok(hasFlags(avx512, 'avx512f', 'amx_bf16'));
  assert.not.ok(hasFlags(info('x', 'avx512fx'), 'avx512f'), 'a flag matches whole words only');
  const forced = openblasCoreNote(avx512, 'Haswell', 'Haswell');
  assert.match(String(forced), 'OPENBLAS_CORETYPE=Haswell');
  assert.match(String(forced), 'unset OPENBLAS_CORETYPE');
  assert.match(String(openblasCoreNote(avx512, 'Zen', undefined)), 'OPENBLAS_CORETYPE=SkylakeX');
  for (const core of ['SkylakeX', 'Cooperlake', 'SAPPHIRERAPIDS']) assert.is(openblasCoreNote(avx512, core, core), null, core);
  const avx2 = info('GenuineIntel', 'fma avx2');
  assert.is(openblasCoreNote(avx2, 'Haswell', 'Haswell'), null, 'no AVX-512: Haswell kernels are the best there is');
  assert.is(openblasCoreNote(info('AuthenticAMD', 'avx2 avx512f'), 'Haswell', undefined), null, 'AVX-512 F alone is not enough for the SkylakeX kernels');
});

const tCore = "the BLAS engine's label names OpenBLAS's kernel set, and backendInfo notes an OPENBLAS_CORETYPE below the CPU (run in child processes: OpenBLAS reads it once per process)";
test(tCore, () => {
  if (!canRun(tCore, missing)) return;
  const blasModule = fileURLToPath(new URL('../src/runtime/blas-kernels.js', import.meta.url));
  const probe = `import(${JSON.stringify(blasModule)}).then((m) => { const l = m.loadBlas(); console.log(JSON.stringify({ label: l.label, note: l.note ?? null })); })`;
  const run = (coretype: string | undefined): { label: string; note: string | null } => {
    const env = { ...process.env };
    if (coretype === undefined) delete env.OPENBLAS_CORETYPE; else env.OPENBLAS_CORETYPE = coretype;
    return JSON.parse(execFileSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' }).trim().split('\n').at(-1)!);
  };
  const own = run(undefined);
  if (!own.label.startsWith('openblas')) { console.log(`  (${tCore}: the CBLAS library is ${own.label}, not OpenBLAS; nothing to check)`); return; }
  assert.match(own.label, /^openblas [\d.]+ \(\w+\)$/);
  const forced = run('Haswell');
  assert.match(forced.label, /\(Haswell\)$/);
  const avx512 = hasFlags(cpuFeatures(), 'avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl');
  if (avx512) assert.match(String(forced.note), 'OPENBLAS_CORETYPE=Haswell is set');
  else assert.is(forced.note, null);
  // `retnet score` tells the user on stderr, once, without being asked
  const dir = mkdtempSync(join(tmpdir(), 'retnet-core-')), file = join(dir, 'a.txt');
  writeFileSync(file, 'some text to score');
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const r = spawnSync(process.execPath, [cli, 'score', file, file], { env: { ...process.env, OPENBLAS_CORETYPE: 'Haswell' }, encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.is(r.status, 0, r.stderr);
  const notes = r.stderr.split('\n').filter((l) => l.startsWith('note: OpenBLAS runs its Haswell kernels'));
  assert.is(notes.length, avx512 ? 1 : 0, r.stderr);
});

test("kernels: 'blas' with no loadable library (RETNET_BLAS at a missing path) is E_ENGINE naming the path and the install; 'auto' falls back to wasm", async () => {
  const saved = process.env.RETNET_BLAS;
  process.env.RETNET_BLAS = '/nonexistent/libcblas-for-test.so';
  const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 16, valueFactor: 2, mlpMult: 2, seed: 1 });
  const x = Tensor.randn([1, 20, 16], { seed: 2 });
  try {
    const err = await model.forward(x, { backend: 'wasm', kernels: 'blas', chunkSize: 8 }).then(() => null, (e) => e);
    assert.ok(err instanceof RetNetError, `expected a RetNetError, got ${err}`);
    assert.is(err.code, 'E_ENGINE');
    assert.match(err.message, '/nonexistent/libcblas-for-test.so');
    assert.match(err.message, 'apt-get install -y libopenblas0-pthread');
    const y = await model.forward(x, { backend: 'wasm', kernels: 'auto', chunkSize: 8 });
    assert.ok(y.data.every(Number.isFinite));
    const info = (await model.backendInfo()).find((i) => i.kernels === 'wasm');
    assert.ok(info, 'auto ran on wasm');
    assert.match(String(info!.note), 'BLAS engine unavailable');
  } finally {
    if (saved === undefined) delete process.env.RETNET_BLAS; else process.env.RETNET_BLAS = saved;
    await model.close();
  }
});

const t4 = 'closing a BLAS pool while its workers still load the native addon does not abort the process (30 pools, closed after 0–150 ms)';
test(t4, async () => {
  if (!canRun(t4, missing)) return;
  // A worker terminated while koffi initialises aborts the whole process (FATAL napi_throw); the
  // executor waits for every live worker to finish binding before ending a pool. Before that
  // wait, such a loop aborted intermittently (once within 16 pools, other runs not in 80): a
  // probabilistic guard, not a proof.
  const { WasmExecutor } = await import('../src/runtime/executor.js');
  for (let i = 0; i < 30; i++) {
    const ex = await WasmExecutor.create({ kernels: 'blas', workers: 3 });
    await new Promise((r) => setTimeout(r, (i * 37) % 150));
    await ex.close();
  }
});

test('bad kernels option and RETNET_KERNELS values are E_OPTION', async () => {
  const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 16, valueFactor: 2, mlpMult: 2, seed: 1 });
  const x = Tensor.randn([1, 4, 16], { seed: 2 });
  const saved = process.env.RETNET_KERNELS;
  try {
    const e1 = await model.forward(x, { backend: 'wasm', kernels: 'cuda' as never }).then(() => null, (e) => e);
    assert.is(e1?.code, 'E_OPTION');
    assert.match(e1.message, "options.kernels must be 'auto', 'wasm', 'blas' or 'dnnl'");
    process.env.RETNET_KERNELS = 'fast';
    const e2 = await model.forward(x, { backend: 'wasm' }).then(() => null, (e) => e);
    assert.is(e2?.code, 'E_OPTION');
    assert.match(e2.message, 'RETNET_KERNELS');
  } finally {
    if (saved === undefined) delete process.env.RETNET_KERNELS; else process.env.RETNET_KERNELS = saved;
    await model.close();
  }
});

test.run();
