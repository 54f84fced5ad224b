// GEMM: f32_gemm_4x8__wasmsimd = f32_gemm__scalar = ops.linear (+ activation,
// + accumulate) on odd sizes, strided x / y, both module variants.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { linear, activation } from '../src/reference/ops.js';
import { VARIANTS, kernels, arena, memory, rng, putF32, getF32, unstride, expectClose, U, ACT_NAMES } from './helpers/kernels.js';

const Ms = [1, 2, 3, 4, 5, 9, 17, 70]; // 70 > the 64-row block
const Ns = [1, 3, 7, 8, 9, 16, 33];
const Ks = [1, 2, 3, 8, 255, 256, 257, 600];
// Lipschitz constant of each activation (|f'| ≤ L): how much an input error can grow.
const LIP = [1, 1.13, 1.1, 1, 1.76, 0.25];

test('packed size and layout', () => {
  const k = kernels('simd');
  assert.is(k.f32_gemm_packed_size(9, 5), 16 * 5 * 4);
  const mark = arena.mark();
  const W = Float64Array.from({ length: 9 * 5 }, (_, i) => i + 1);
  const w = putF32(W);
  const p = arena.alloc(k.f32_gemm_packed_size(9, 5));
  k.f32_gemm_pack_8(9, 5, w, 5, p);
  const got = getF32(p, 16 * 5);
  for (let pn = 0; pn < 2; pn++) for (let kk = 0; kk < 5; kk++) for (let j = 0; j < 8; j++) {
    const n = pn * 8 + j;
    assert.is(got[(pn * 5 + kk) * 8 + j], n < 9 ? W[n * 5 + kk] : 0, `packed[${pn}][${kk}][${j}]`);
  }
  arena.reset(mark);
});

for (const variant of VARIANTS) {
  for (const [kernel, packX] of [['f32_gemm_4x8__wasmsimd', true], ['f32_gemm_4x8__wasmsimd', false], ['f32_gemm__scalar', false]] as const) {
    test(`${kernel} (${variant}${packX ? ', packed x' : ', x in place'}) = reference, all M×N×K`, () => {
      const k = kernels(variant);
      const r = rng(1234);
      let cases = 0;
      for (const M of Ms) for (const N of Ns) for (const K of Ks) {
        const mark = arena.mark();
        const ldx = K + (r.int(2) ? 3 : 0), ldy = N + (r.int(2) ? 5 : 0);
        const act = r.int(6), accumulate = r.int(3) === 0 ? 1 : 0, hasBias = r.int(2) === 1;
        const X = r.uniform(M * ldx), W = r.uniform(N * K), B = r.uniform(N), Y0 = r.uniform(M * ldy);
        const xp = putF32(X), wp = putF32(W), bp = hasBias ? putF32(B) : 0, yp = putF32(Y0);
        const packed = arena.alloc(k.f32_gemm_packed_size(N, K));
        k.f32_gemm_pack_8(N, K, wp, K, packed);
        const scratch = packX ? arena.alloc(k.f32_gemm_scratch_size()) : 0;
        k[kernel](M, N, K, xp, ldx, packed, bp, yp, ldy, act, accumulate, scratch);
        const got = getF32(yp, M * ldy);
        // reference in float64 on the same float32 inputs
        const x = unstride(X, M, K, ldx);
        const lin = linear(x, M, K, W, hasBias ? B : null, N);
        const absLin = linear(x.map(Math.abs), M, K, W.map(Math.abs), hasBias ? B.map(Math.abs) : null, N);
        const f = act ? activation(ACT_NAMES[act - 1]) : (t: number) => t;
        const want = new Float64Array(M * ldy), tol = new Float64Array(M * ldy);
        for (let i = 0; i < M * ldy; i++) { want[i] = Y0[i]; tol[i] = 0; } // padding columns must stay untouched
        for (let i = 0; i < M; i++) for (let n = 0; n < N; n++) {
          const y0 = Y0[i * ldy + n], t = lin[i * N + n];
          const inner = accumulate && !act ? y0 + t : t;
          let w = f(inner);
          if (accumulate && act) w += y0;
          want[i * ldy + n] = w;
          // Recursive f32 summation of K products + bias (+ y0): each of the ≤ K+2 roundings is at
          // most 2^-24 of a partial sum bounded by Σ|terms|; the activation scales that by its
          // Lipschitz constant, then its own f32 rounding and the final add round once more each.
          const sumAbs = absLin[i * N + n] + (accumulate && !act ? Math.abs(y0) : 0);
          tol[i * ldy + n] = (K + 3) * U * sumAbs * LIP[act] + 2 * U * (Math.abs(f(inner)) + Math.abs(y0)) + 1e-30;
        }
        expectClose(`${kernel} ${variant}`, got, want, (i) => tol[i], `M=${M} N=${N} K=${K} ldx=${ldx} ldy=${ldy} act=${act} acc=${accumulate} bias=${hasBias} packX=${packX}`);
        arena.reset(mark);
        cases++;
      }
      assert.is(cases, Ms.length * Ns.length * Ks.length);
    });
  }

  test(`f32_gemm_4x8__wasmsimd (${variant}) = f32_gemm__scalar`, () => {
    const k = kernels(variant);
    const r = rng(99);
    for (const [M, N, K] of [[1, 1, 1], [5, 9, 257], [17, 33, 600], [64, 64, 64], [67, 17, 513]]) {
      const mark = arena.mark();
      const X = r.uniform(M * K), W = r.uniform(N * K), B = r.uniform(N);
      const xp = putF32(X), wp = putF32(W), bp = putF32(B);
      const packed = arena.alloc(k.f32_gemm_packed_size(N, K));
      k.f32_gemm_pack_8(N, K, wp, K, packed);
      const y1 = putF32(new Float64Array(M * N)), y2 = putF32(new Float64Array(M * N));
      k.f32_gemm_4x8__wasmsimd(M, N, K, xp, K, packed, bp, y1, N, 0, 0, arena.alloc(k.f32_gemm_scratch_size()));
      k.f32_gemm__scalar(M, N, K, xp, K, packed, bp, y2, N, 0, 0, 0);
      const absLin = linear(X.map(Math.abs), M, K, W.map(Math.abs), B.map(Math.abs), N);
      // both are within (K+2)·2^-24·Σ|terms| of the exact sum, so within twice that of each other
      expectClose(`simd vs scalar ${variant}`, getF32(y1, M * N), getF32(y2, M * N), (i) => 2 * (K + 2) * U * absLin[i], `M=${M} N=${N} K=${K}`);
      arena.reset(mark);
    }
  });
}

// One to three rows (decoding steps) take their own loop — each panel through every K block before the
// next, one sequential stream of weights — whose sums must be those of the general path: a row's result
// does not depend on how many rows share the call (the rows of a 7-row call: 4×8 tiles and one 1×8 row).
for (const variant of VARIANTS) {
  test(`f32_gemm_4x8__wasmsimd (${variant}): rows of a 1-, 2- or 3-row call = the same rows of a 7-row call, bit for bit`, () => {
    const k = kernels(variant);
    const r = rng(7);
    for (const [N, K] of [[1, 1], [9, 63], [33, 64], [40, 130], [17, 600]]) for (const act of [0, 1, 2]) for (const acc of [0, 1]) for (const withBias of [false, true]) {
      const mark = arena.mark();
      const X = r.uniform(7 * (K + 2)), W = r.uniform(N * K), B = r.uniform(N), Y0 = r.uniform(7 * (N + 1));
      const xp = putF32(X), wp = putF32(W), bp = withBias ? putF32(B) : 0;
      const packed = arena.alloc(k.f32_gemm_packed_size(N, K)), scratch = arena.alloc(k.f32_gemm_scratch_size());
      k.f32_gemm_pack_8(N, K, wp, K, packed);
      const all = putF32(Y0);
      k.f32_gemm_4x8__wasmsimd(7, N, K, xp, K + 2, packed, bp, all, N + 1, act, acc, scratch);
      const want = new Uint32Array(memory.buffer, all, 7 * (N + 1)).slice();
      for (const M of [1, 2, 3]) for (const r0 of [0, 4]) {
        if (r0 + M > 7) continue;
        const y = putF32(Y0.subarray(r0 * (N + 1), (r0 + M) * (N + 1)));
        k.f32_gemm_4x8__wasmsimd(M, N, K, xp + r0 * (K + 2) * 4, K + 2, packed, bp, y, N + 1, act, acc, scratch);
        const got = new Uint32Array(memory.buffer, y, M * (N + 1));
        for (let i = 0; i < M; i++) for (let n = 0; n < N; n++) {
          if (got[i * (N + 1) + n] !== want[(r0 + i) * (N + 1) + n]) throw new Error(`${variant} M=${M} rows from ${r0} N=${N} K=${K} act=${act} acc=${acc} bias=${withBias}: row ${i} column ${n} differs`);
        }
      }
      arena.reset(mark);
    }
  });
}

test('relaxed module really is the relaxed build', () => {
  assert.is(kernels('relaxed').is_relaxed(), 1);
  assert.is(kernels('simd').is_relaxed(), 0);
});

test.run();
