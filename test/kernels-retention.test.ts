// Retention pieces on strided per-head views: SIMD = scalar = ops.ts
// (intraChunk, chunkSummary, crossChunk, normalizeRows, retentionStep), and the
// full chunkwise pipeline (kernels + float64 carry in JS) = retentionParallel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  intraChunk, chunkSummary, crossChunk, normalizeRows, retentionStep, retentionParallel, decaySum, zeroState,
  type RetentionFlags,
} from '../src/reference/ops.js';
import type { Kernels, Variant } from '../src/wasm/loader.js';
import { decayPowers, invSqrtDecaySums } from '../src/wasm/tables.js';
import { wasmRetentionScratchFloats } from '../src/runtime/kernels.js';
import { VARIANTS, kernels, arena, rng, putF32, putF64, getF32, getF64, unstride, expectClose, elementwiseTol, U } from './helpers/kernels.js';

const H = 3, HEAD = 1; // views: head 1 of a [n, 3·dk] projection output, plus row padding
const GAMMAS = [1 - 2 ** -5, 1 - 2 ** -8];
const FLAGS: RetentionFlags[] = [
  { normalizeAttn: false, normalizeRetn: false }, { normalizeAttn: true, normalizeRetn: false },
  { normalizeAttn: false, normalizeRetn: true }, { normalizeAttn: true, normalizeRetn: true },
];
type Twin = 'wasmsimd' | 'scalar';
const TWINS: Twin[] = ['wasmsimd', 'scalar'];
const pick = <F>(k: Kernels, name: string, tw: Twin): F => (k as unknown as Record<string, F>)[`f32_retention_${name}__${tw}`];

/** pow[d] = γ^d for d in 0..n, float64 in JS, rounded to float32 once. */
function powTable(gamma: number, n: number): Float64Array {
  return Float64Array.from({ length: n + 1 }, (_, d) => Math.fround(Math.pow(gamma, d)));
}
const abs = (a: Float64Array) => a.map(Math.abs);

/** `bytes` of scratch followed by 64 canary bytes; check() throws if a kernel wrote past the scratch. */
function withCanary(bytes: number) {
  const ptr = arena.alloc(bytes + 64);
  const tail = () => new Uint8Array(arena.memory.buffer, ptr + bytes, 64);
  tail().fill(0xa5);
  return { ptr, check(where: string) { if (tail().some((b) => b !== 0xa5)) throw new Error(`${where}: wrote past its ${bytes} bytes of scratch`); } };
}

test('f32_retention_scratch_size = wasmRetentionScratchFloats (the runtime\'s tile sizing) × 4', () => {
  const k = kernels('simd');
  for (const n of [1, 2, 3, 4, 5, 63, 64, 65, 67, 512, 1000]) for (const dk of [1, 2, 5, 64]) for (const dv of [1, 5, 8, 9, 128]) {
    assert.is(k.f32_retention_scratch_size(n, dk, dv), 4 * wasmRetentionScratchFloats(n, dk, dv), `n=${n} dk=${dk} dv=${dv}`);
  }
});

/** Strided [n, H·dk + pad] buffer with head HEAD at column offset HEAD·dk; returns the dense head too. */
function headView(r: ReturnType<typeof rng>, n: number, d: number, pad: number) {
  const ld = H * d + pad;
  const full = r.uniform(Math.max(n, 1) * ld);
  return { full, ld, dense: unstride(full, n, d, ld, HEAD * d), ptr: (base: number) => base + HEAD * d * 4 };
}

const INTRA_FNS = ['f32_retention_intra__wasmsimd', 'f32_retention_intra__scalar', 'f32_retention_intra_rows__wasmsimd'] as const;

for (const variant of VARIANTS) for (const fn of INTRA_FNS) {
  test(`${fn} (${variant}) = intraChunk, odd sizes`, () => {
    const k = kernels(variant);
    const intra = k[fn];
    const r = rng(21);
    // n = 67, 150: several 64-row blocks with a partial last 4-row group; n = 301: A·v in 256-column ranges
    for (const n of [1, 2, 3, 5, 7, 8, 9, 64, 67, 150, 301]) for (const dk of [2, 5, 6, 64]) for (const dv of [2, 5, 9, 64]) {
      const mark = arena.mark();
      const gamma = GAMMAS[r.int(2)];
      const q = headView(r, n, dk, r.int(3)), kk = headView(r, n, dk, r.int(3)), v = headView(r, n, dv, r.int(3));
      const ldo = dv + r.int(3);
      const qb = putF32(q.full), kb = putF32(kk.full), vb = putF32(v.full), pw = putF32(powTable(gamma, n));
      const ob = putF32(new Float64Array(n * ldo).fill(7)), rb = putF32(new Float64Array(n)), scratch = withCanary(k.f32_retention_scratch_size(n, dk, dv));
      intra(n, dk, dv, q.ptr(qb), q.ld, kk.ptr(kb), kk.ld, v.ptr(vb), v.ld, pw, ob, ldo, rb, scratch.ptr);
      scratch.check(`intra ${fn} n=${n} dk=${dk} dv=${dv}`);
      const want = intraChunk(q.dense, kk.dense, v.dense, n, dk, dv, gamma);
      const bound = intraChunk(abs(q.dense), abs(kk.dense), abs(v.dense), n, dk, dv, gamma);
      // dk-term dot (dk roundings), × pow (its own f32 rounding + 1), n-term row sum (n roundings):
      // each rounding ≤ 2^-24 of a partial sum bounded by the sum of |terms|.
      const c = (dk + n + 3) * U;
      const sizes = `n=${n} dk=${dk} dv=${dv} γ=${gamma}`;
      const got = getF32(ob, n * ldo);
      expectClose(`intra o ${fn} ${variant}`, unstride(got, n, dv, ldo), want.o, (i) => c * bound.o[i] + 1e-30, sizes);
      // padding columns between dv and ldo are untouched
      for (let i = 0; i < n; i++) for (let cc = dv; cc < ldo; cc++) if (got[i * ldo + cc] !== 7) throw new Error(`intra ${fn} wrote o[${i}, ${cc}] past dv [${sizes}]`);
      expectClose(`intra r ${fn} ${variant}`, getF32(rb, n), want.rowSum, (i) => c * bound.rowSum[i] + 1e-30, sizes);
      arena.reset(mark);
    }
  });
}

// The blocked kernel sums dk in four lanes and the row in blocks of JC = 32, so a long chunk's error
// grows like dk/4 + 32 + n/32 roundings instead of dk + n: checked at n = 1024 on positive data (no
// cancellation, the worst case for long sums) with that tighter bound, (dk/4 + 32 + n/32 + 8)·2⁻²⁴·Σ|terms|,
// and against the row-at-a-time kernel on the same inputs: the blocked error must be under half of
// its error (measured 4.6–4.9 vs 28.9–30.9 units of 2⁻²⁴·Σ|terms|, both modules).
for (const variant of VARIANTS) {
  test(`f32_retention_intra__wasmsimd (${variant}) at n = 1024: within (dk/4 + 32 + n/32 + 8)·2⁻²⁴·Σ|terms| and under half the row kernel's error`, () => {
    const k = kernels(variant);
    const r = rng(31);
    const n = 1024, dk = 16, dv = 12, gamma = 1 - 2 ** -12;
    const mark = arena.mark();
    const view = (d: number, pad: number) => { const ld = H * d + pad; const full = r.uniform(n * ld, 0, 1); return { full, ld, dense: unstride(full, n, d, ld, HEAD * d), ptr: (b: number) => b + HEAD * d * 4 }; };
    const q = view(dk, 1), kk = view(dk, 2), v = view(dv, 0);
    const qb = putF32(q.full), kb = putF32(kk.full), vb = putF32(v.full), pw = putF32(powTable(gamma, n)), scratch = arena.alloc(k.f32_retention_scratch_size(n, dk, dv));
    const want = intraChunk(q.dense, kk.dense, v.dense, n, dk, dv, gamma);
    const bound = intraChunk(abs(q.dense), abs(kk.dense), abs(v.dense), n, dk, dv, gamma);
    const run = (fn: 'f32_retention_intra__wasmsimd' | 'f32_retention_intra_rows__wasmsimd') => {
      const ob = putF32(new Float64Array(n * dv)), rb = putF32(new Float64Array(n));
      k[fn](n, dk, dv, q.ptr(qb), q.ld, kk.ptr(kb), kk.ld, v.ptr(vb), v.ld, pw, ob, dv, rb, scratch);
      return { o: getF32(ob, n * dv), r: getF32(rb, n) };
    };
    const worst = (got: Float64Array) => got.reduce((m, g, i) => Math.max(m, Math.abs(g - want.o[i]) / (U * bound.o[i])), 0);
    const blocked = run('f32_retention_intra__wasmsimd'), rows = run('f32_retention_intra_rows__wasmsimd');
    const c = (dk / 4 + 32 + n / 32 + 8) * U;
    expectClose(`intra o blocked ${variant}`, blocked.o, want.o, (i) => c * bound.o[i] + 1e-30, `n=${n} dk=${dk} dv=${dv}`);
    expectClose(`intra r blocked ${variant}`, blocked.r, want.rowSum, (i) => c * bound.rowSum[i] + 1e-30, `n=${n} dk=${dk} dv=${dv}`);
    const eb = worst(blocked.o), er = worst(rows.o);
    console.log(`  ${variant}: max |err|/(2⁻²⁴Σ|terms|) blocked ${eb.toFixed(1)}, row-at-a-time ${er.toFixed(1)}`);
    assert.ok(eb < er / 2, `blocked error ${eb} not under half the row kernel's ${er}`);
    arena.reset(mark);
  });
}

for (const variant of VARIANTS) for (const tw of TWINS) {
  test(`f32_retention_summary__${tw} (${variant}) = chunkSummary`, () => {
    const k = kernels(variant);
    const summary = pick<Kernels['f32_retention_summary__scalar']>(k, 'summary', tw);
    const r = rng(22);
    for (const n of [1, 3, 7, 64, 67]) for (const dk of [2, 6, 64]) for (const dv of [2, 5, 64]) {
      const mark = arena.mark();
      const gamma = GAMMAS[r.int(2)];
      const kk = headView(r, n, dk, r.int(3)), v = headView(r, n, dv, r.int(3));
      const kb = putF32(kk.full), vb = putF32(v.full), pw = putF32(powTable(gamma, n));
      const Sb = putF32(new Float64Array(dk * dv).fill(3)), zb = putF32(new Float64Array(dk).fill(3));
      const scratch = withCanary(k.f32_retention_scratch_size(n, dk, dv));
      summary(n, dk, dv, kk.ptr(kb), kk.ld, v.ptr(vb), v.ld, pw, Sb, zb, scratch.ptr);
      scratch.check(`summary ${tw} n=${n} dk=${dk} dv=${dv}`);
      const want = chunkSummary(kk.dense, v.dense, n, dk, dv, gamma);
      const bound = chunkSummary(abs(kk.dense), abs(v.dense), n, dk, dv, gamma);
      const c = (n + 3) * U; // two products (ζ·k, ·v) and an n-term sum, with ζ rounded to f32
      const sizes = `n=${n} dk=${dk} dv=${dv}`;
      expectClose(`summary S ${tw} ${variant}`, getF32(Sb, dk * dv), want.S, (i) => c * bound.S[i] + 1e-30, sizes);
      expectClose(`summary z ${tw} ${variant}`, getF32(zb, dk), want.z, (i) => c * bound.z[i] + 1e-30, sizes);
      arena.reset(mark);
    }
  });

  test(`f32_retention_cross__${tw} (${variant}) = crossChunk`, () => {
    const k = kernels(variant);
    const cross = pick<Kernels['f32_retention_cross__scalar']>(k, 'cross', tw);
    const r = rng(23);
    for (const n of [1, 3, 7, 64, 67]) for (const dk of [2, 6, 64]) for (const dv of [2, 5, 64]) {
      const mark = arena.mark();
      const gamma = GAMMAS[r.int(2)];
      const q = headView(r, n, dk, r.int(3));
      const ldo = dv + r.int(3);
      const S = r.uniform(dk * dv, -4, 4), z = r.uniform(dk, -4, 4), O = r.uniform(n * ldo), R = r.uniform(n);
      const qb = putF32(q.full), pw = putF32(powTable(gamma, n)), Sb = putF32(S), zb = putF32(z), ob = putF32(O), rb = putF32(R);
      const scratch = withCanary(k.f32_retention_scratch_size(n, dk, dv));
      cross(n, dk, dv, q.ptr(qb), q.ld, pw, Sb, zb, ob, ldo, rb, scratch.ptr);
      scratch.check(`cross ${tw} n=${n} dk=${dk} dv=${dv}`);
      const wo = unstride(O, n, dv, ldo), wr = R.slice();
      crossChunk(q.dense, n, dk, dv, gamma, { S, z }, wo, wr);
      const bo = abs(unstride(O, n, dv, ldo)), br = abs(R);
      crossChunk(abs(q.dense), n, dk, dv, gamma, { S: abs(S), z: abs(z) }, bo, br);
      const c = (dk + 4) * U; // q·ξ (ξ rounded), × S, dk-term sum onto o
      const sizes = `n=${n} dk=${dk} dv=${dv}`;
      expectClose(`cross o ${tw} ${variant}`, unstride(getF32(ob, n * ldo), n, dv, ldo), wo, (i) => c * bo[i], sizes);
      expectClose(`cross r ${tw} ${variant}`, getF32(rb, n), wr, (i) => c * br[i], sizes);
      arena.reset(mark);
    }
  });

  test(`f32_retention_normalize__${tw} (${variant}) = normalizeRows, all flags`, () => {
    const k = kernels(variant);
    const norm = pick<Kernels['f32_retention_normalize__scalar']>(k, 'normalize', tw);
    const r = rng(24);
    for (const flags of FLAGS) for (const n of [1, 3, 64]) for (const dv of [1, 5, 64]) {
      const mark = arena.mark();
      const gamma = GAMMAS[r.int(2)], pos0 = r.int(2) ? 0 : r.int(5000);
      const ldo = dv + r.int(3);
      const O = r.uniform(n * ldo, -3, 3), R = r.uniform(n, -5, 5);
      const inv = Float64Array.from({ length: n }, (_, i) => 1 / Math.sqrt(decaySum(gamma, pos0 + i)));
      const ob = putF32(O), rb = putF32(R), ib = flags.normalizeAttn ? putF32(inv) : 0;
      norm(n, dv, ob, ldo, rb, ib, flags.normalizeRetn ? 1 : 0);
      const wo = unstride(O, n, dv, ldo), wr = R.slice();
      normalizeRows(wo, wr, n, dv, gamma, pos0, flags);
      const sizes = `n=${n} dv=${dv} pos0=${pos0} ${JSON.stringify(flags)}`;
      expectClose(`normalize o ${tw} ${variant}`, unstride(getF32(ob, n * ldo), n, dv, ldo), wo, elementwiseTol(wo), sizes);
      expectClose(`normalize r ${tw} ${variant}`, getF32(rb, n), wr, elementwiseTol(wr), sizes);
      arena.reset(mark);
    }
  });

  test(`f32_retention_step__${tw} (${variant}) = retentionStep, float64 state, all flags`, () => {
    const k = kernels(variant);
    const step = pick<Kernels['f32_retention_step__scalar']>(k, 'step', tw);
    const r = rng(25);
    for (const flags of FLAGS) for (const dk of [2, 6, 64]) for (const dv of [1, 5, 64]) {
      const mark = arena.mark();
      const gamma = GAMMAS[r.int(2)];
      const state = zeroState(dk, dv);
      const Sb = putF64(state.S), zb = putF64(state.z);
      const qb = arena.alloc(dk * 4), kb = arena.alloc(dk * 4), vb = arena.alloc(dv * 4), ob = arena.alloc(dv * 4), rb = arena.alloc(4), ib = arena.alloc(4);
      for (let pos = 0; pos < 6; pos++) {
        const q = r.uniform(dk), kk = r.uniform(dk), v = r.uniform(dv);
        const f32 = (p: number, a: Float64Array) => new Float32Array(arena.memory.buffer, p, a.length).set(a);
        f32(qb, q); f32(kb, kk); f32(vb, v);
        new Float32Array(arena.memory.buffer, ib, 1)[0] = 1 / Math.sqrt(decaySum(gamma, pos));
        step(dk, dv, qb, kb, vb, gamma, Sb, zb, ob, rb, flags.normalizeAttn ? ib : 0, flags.normalizeRetn ? 1 : 0);
        const want = retentionStep(q, kk, v, dk, dv, gamma, state, pos, flags);
        const sizes = `dk=${dk} dv=${dv} pos=${pos} ${JSON.stringify(flags)}`;
        // state is float64 on both sides (same inputs): only summation order and the f32 output rounding differ
        expectClose(`step S ${tw} ${variant}`, getF64(Sb, dk * dv), state.S, (i) => 1e-13 * (1 + Math.abs(state.S[i])), sizes);
        expectClose(`step z ${tw} ${variant}`, getF64(zb, dk), state.z, (i) => 1e-13 * (1 + Math.abs(state.z[i])), sizes);
        expectClose(`step o ${tw} ${variant}`, getF32(ob, dv), want, elementwiseTol(want), sizes);
      }
      arena.reset(mark);
    }
  });
}

// The one-pass step (an acc scratch: S read and written once, the output summed row by row of S) against
// the two-pass step (S updated, then read by columns): the same float64 operations in the same order for
// every output column, so the same S, z, o and r bit for bit — odd dv (the scalar tail), every flag.
for (const variant of VARIANTS) {
  test(`f32_retention_step__wasmsimd (${variant}): one pass (acc scratch) = two passes, bit for bit`, () => {
    const k = kernels(variant);
    const r = rng(26);
    for (const flags of FLAGS) for (const dk of [2, 7, 64]) for (const dv of [1, 5, 64, 67]) {
      const mark = arena.mark();
      const gamma = GAMMAS[r.int(2)];
      const S0 = r.uniform(dk * dv, -3, 3), z0 = r.uniform(dk, 0, 5);
      const runs = [0, 1].map(() => ({ S: putF64(S0), z: putF64(z0), o: arena.alloc(dv * 4), r: arena.alloc(4) }));
      const acc = arena.alloc(dv * 8), qb = arena.alloc(dk * 4), kb = arena.alloc(dk * 4), vb = arena.alloc(dv * 4), ib = arena.alloc(4);
      for (let pos = 0; pos < 5; pos++) {
        const f32 = (p: number, a: Float64Array) => new Float32Array(arena.memory.buffer, p, a.length).set(a);
        f32(qb, r.uniform(dk)); f32(kb, r.uniform(dk)); f32(vb, r.uniform(dv));
        new Float32Array(arena.memory.buffer, ib, 1)[0] = 1 / Math.sqrt(decaySum(gamma, pos));
        runs.forEach((x, i) => k.f32_retention_step__wasmsimd(dk, dv, qb, kb, vb, gamma, x.S, x.z, x.o, x.r,
          flags.normalizeAttn ? ib : 0, flags.normalizeRetn ? 1 : 0, i === 0 ? 0 : acc));
        const sizes = `dk=${dk} dv=${dv} pos=${pos} ${JSON.stringify(flags)}`;
        assert.equal(getF64(runs[1].S, dk * dv), getF64(runs[0].S, dk * dv), `S ${sizes}`);
        assert.equal(getF64(runs[1].z, dk), getF64(runs[0].z, dk), `z ${sizes}`);
        assert.equal(getF32(runs[1].o, dv), getF32(runs[0].o, dv), `o ${sizes}`);
        assert.equal(getF32(runs[1].r, 1), getF32(runs[0].r, 1), `r ${sizes}`);
      }
      arena.reset(mark);
    }
  });
}

// The step on a float32 S (f32_retention_step_s32, a state of dtype float32) against its definition
// written out in JavaScript: S ← f32(f32(γ₃₂·S) + f32(k·v)) (float32 arithmetic: a product of two float32
// values is exact in float64, so Math.fround of it is the float32 product; the sum of two float32 values of
// these magnitudes is exact in float64, so fround of it is the float32 sum) and o = Σ_a q_a·S[a,:] (the
// updated S, float64 sums in row order), z float64, then the step's normalization — bit for bit. Odd dk
// and dv (the scalar tails), every flag, several steps from a random state.
for (const variant of VARIANTS) {
  test(`f32_retention_step_s32__wasmsimd (${variant}) = its definition (float32 arithmetic on a float32 S), bit for bit`, () => {
    const k = kernels(variant);
    const r = rng(27);
    for (const flags of FLAGS) for (const dk of [2, 7, 64]) for (const dv of [1, 5, 64, 67]) {
      const mark = arena.mark();
      const gamma = GAMMAS[r.int(2)];
      const S = Float32Array.from(r.uniform(dk * dv, -3, 3)), z = r.uniform(dk, 0, 5);
      const Sb = putF32(Float64Array.from(S)), zb = putF64(z);
      const ob = arena.alloc(dv * 4), rb = arena.alloc(4), acc = arena.alloc(dv * 8);
      const qb = arena.alloc(dk * 4), kb = arena.alloc(dk * 4), vb = arena.alloc(dv * 4), ib = arena.alloc(4);
      for (let pos = 0; pos < 5; pos++) {
        const q = Float32Array.from(r.uniform(dk)), kk = Float32Array.from(r.uniform(dk)), v = Float32Array.from(r.uniform(dv));
        new Float32Array(arena.memory.buffer, qb, dk).set(q); new Float32Array(arena.memory.buffer, kb, dk).set(kk);
        new Float32Array(arena.memory.buffer, vb, dv).set(v);
        const inv = Math.fround(1 / Math.sqrt(decaySum(gamma, pos)));
        new Float32Array(arena.memory.buffer, ib, 1)[0] = inv;
        k.f32_retention_step_s32__wasmsimd(dk, dv, qb, kb, vb, gamma, Sb, zb, ob, rb, flags.normalizeAttn ? ib : 0, flags.normalizeRetn ? 1 : 0, acc);
        // the definition
        const sum = new Float64Array(dv);
        let rs = 0;
        for (let a = 0; a < dk; a++) {
          z[a] = gamma * z[a] + kk[a];
          rs += q[a] * z[a];
          const g32 = Math.fround(gamma);
          for (let c = 0; c < dv; c++) { S[a * dv + c] = Math.fround(g32 * S[a * dv + c]) + Math.fround(kk[a] * v[c]); sum[c] += q[a] * S[a * dv + c]; }
        }
        const o = Float32Array.from(sum);
        let scale = 1;
        if (flags.normalizeAttn) { scale = inv; rs *= inv; }
        if (flags.normalizeRetn) scale /= Math.max(1, Math.abs(rs));
        if (scale !== 1) for (let c = 0; c < dv; c++) o[c] = o[c] * scale;
        const sizes = `dk=${dk} dv=${dv} pos=${pos} ${JSON.stringify(flags)}`;
        assert.equal(Array.from(new Float32Array(arena.memory.buffer, Sb, dk * dv)), Array.from(S), `S ${sizes}`);
        assert.equal(getF64(zb, dk), z, `z ${sizes}`);
        assert.equal(Array.from(getF32(ob, dv)), Array.from(o), `o ${sizes}`);
        assert.equal(getF32(rb, 1)[0], Math.fround(rs), `r ${sizes}`);
      }
      arena.reset(mark);
    }
  });
}

/** The whole chunkwise pipeline with these kernels: intra → cross (state from a float64 carry) → normalise → summary → carry. */
function chunkwiseWithKernels(k: Kernels, tw: Twin, q: Float64Array, kk: Float64Array, v: Float64Array, L: number, dk: number, dv: number,
                              gamma: number, C: number, flags: RetentionFlags): Float64Array {
  const intra = pick<Kernels['f32_retention_intra__scalar']>(k, 'intra', tw);
  const cross = pick<Kernels['f32_retention_cross__scalar']>(k, 'cross', tw);
  const norm = pick<Kernels['f32_retention_normalize__scalar']>(k, 'normalize', tw);
  const summary = pick<Kernels['f32_retention_summary__scalar']>(k, 'summary', tw);
  const mark = arena.mark();
  const qb = putF32(q), kb = putF32(kk), vb = putF32(v), ob = arena.alloc(L * dv * 4), rb = arena.alloc(L * 4);
  const pw = putF32(decayPowers(gamma, C)), scratch = arena.alloc(k.f32_retention_scratch_size(C, dk, dv));
  const inv = putF32(invSqrtDecaySums(gamma, 0, L)); // the tables as the runtime will build them
  const Sb = arena.alloc(dk * dv * 4), zb = arena.alloc(dk * 4), dSb = arena.alloc(dk * dv * 4), dzb = arena.alloc(dk * 4);
  const S = new Float64Array(dk * dv), z = new Float64Array(dk); // the carry, float64 in JS
  for (let s = 0; s < L; s += C) {
    const n = Math.min(C, L - s);
    const qs = qb + s * dk * 4, ks = kb + s * dk * 4, vs = vb + s * dv * 4, os = ob + s * dv * 4, rs = rb + s * 4;
    intra(n, dk, dv, qs, dk, ks, dk, vs, dv, pw, os, dv, rs, scratch);
    new Float32Array(arena.memory.buffer, Sb, dk * dv).set(S);
    new Float32Array(arena.memory.buffer, zb, dk).set(z);
    cross(n, dk, dv, qs, dk, pw, Sb, zb, os, dv, rs, scratch);
    norm(n, dv, os, dv, rs, flags.normalizeAttn ? inv + s * 4 : 0, flags.normalizeRetn ? 1 : 0);
    summary(n, dk, dv, ks, dk, vs, dv, pw, dSb, dzb, scratch);
    const g = Math.pow(gamma, n), dS = getF32(dSb, dk * dv), dz = getF32(dzb, dk);
    for (let i = 0; i < S.length; i++) S[i] = g * S[i] + dS[i];
    for (let i = 0; i < z.length; i++) z[i] = g * z[i] + dz[i];
  }
  const o = getF32(ob, L * dv);
  arena.reset(mark);
  return o;
}

for (const variant of VARIANTS) for (const tw of TWINS) {
  test(`chunkwise retention with ${tw} kernels (${variant}) = retentionParallel, chunk 1/7/64/L, all flags`, () => {
    const k = kernels(variant as Variant);
    const r = rng(31);
    for (const [L, dk, dv] of [[100, 8, 6], [130, 64, 64]]) {
      const q = r.uniform(L * dk), kk = r.uniform(L * dk), v = r.uniform(L * dv);
      for (const gamma of GAMMAS) for (const flags of FLAGS) {
        const want = retentionParallel(q, kk, v, L, dk, dv, gamma, flags);
        let maxRef = 0;
        for (const w of want) maxRef = Math.max(maxRef, Math.abs(w));
        for (const C of [1, 7, 64, L]) {
          const got = chunkwiseWithKernels(k, tw, q, kk, v, L, dk, dv, gamma, C, flags);
          // scale-free: float32 kernels over float64 carry agree to 1e-5 of the largest output
          expectClose(`chunkwise ${tw} ${variant}`, got, want, () => 1e-5 * maxRef, `L=${L} dk=${dk} dv=${dv} C=${C} γ=${gamma} ${JSON.stringify(flags)}`);
        }
      }
    }
    assert.ok(true);
  });
}

test('tables: decayPowers and invSqrtDecaySums match ops.ts in float64 to float32 rounding', () => {
  for (const gamma of [...GAMMAS, 1]) {
    const p = decayPowers(gamma, 70), inv = invSqrtDecaySums(gamma, 123456, 5);
    for (let d = 0; d <= 70; d++) assert.ok(Math.abs(p[d] - Math.pow(gamma, d)) <= U * Math.pow(gamma, d), `pow[${d}]`);
    for (let i = 0; i < 5; i++) {
      const want = 1 / Math.sqrt(decaySum(gamma, 123456 + i));
      assert.ok(Math.abs(inv[i] - want) <= U * want, `inv[${i}] ${inv[i]} vs ${want}`);
    }
  }
});

test.run();
