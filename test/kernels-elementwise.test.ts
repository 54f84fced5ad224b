// LayerNorm, activations, gate, residual add: SIMD = scalar = float64 reference,
// elementwise tolerance max(1e-5, 1e-6·|ref|) (one f32 rounding of an O(1) result).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { layerNorm, activation, erf } from '../src/reference/ops.js';
import { jsKernels } from '../src/runtime/kernels.js';
import { scanChunks } from '../src/runtime/scan.js';
import { VARIANTS, kernels, memory, arena, rng, putF32, putF64, getF32, getF64, unstride, expectClose, elementwiseTol, ACT_NAMES } from './helpers/kernels.js';

test('erf64 and gelu in f64 match the reference erf (|err| ≤ 1e-7 for gelu, ≤ 1e-13 for erf)', () => {
  const k = kernels('simd');
  for (let x = -12; x <= 12; x += 0.001953125 * 3) {
    const e = Math.abs(k.erf64(x) - erf(x));
    if (!(e <= 1e-13)) throw new Error(`erf64(${x}) = ${k.erf64(x)}, want ${erf(x)}`);
    const g = Math.abs(k.act64(x, 1) - activation('gelu')(x));
    if (!(g <= 1e-7)) throw new Error(`gelu(${x}) = ${k.act64(x, 1)}, want ${activation('gelu')(x)}`);
  }
  for (const x of [-700, -50, -1e-10, 0, 1e-300, 3e-5, 1, 20, 700]) {
    const e = Math.abs(k.exp64(x) - Math.exp(x)) / Math.exp(x);
    if (!(e <= 1e-14)) throw new Error(`exp64(${x}) = ${k.exp64(x)}, want ${Math.exp(x)}`);
  }
});

// The scan step: bit for bit the JavaScript scan's float64 arithmetic (a product, then a sum).
for (const variant of VARIANTS) {
  for (const tw of ['wasmsimd', 'scalar'] as const) {
    test(`f64_scan_step__${tw} (${variant}) = the JavaScript scan, bit for bit (state, incoming), lengths 1…1,031`, () => {
      const k = kernels(variant);
      const step = tw === 'wasmsimd' ? k.f64_scan_step__wasmsimd : k.f64_scan_step__scalar;
      const r = rng(5);
      for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 64, 1031]) {
        const mark = arena.mark();
        const S = r.uniform(n, -1e3, 1e3), D = Float64Array.from(r.uniform(n, -2, 2), (v) => Math.fround(v));
        const g = 0.96875 ** 37;
        const sp = putF64(S), dp = putF32(D), ip = putF32(new Float64Array(n));
        step(n, g, sp, dp, ip);
        const gotS = getF64(sp, n), gotI = getF32(ip, n);
        for (let e = 0; e < n; e++) {
          assert.is(gotI[e], Math.fround(S[e]), `incoming[${e}] n=${n}`);
          assert.is(gotS[e], g * S[e] + D[e], `state[${e}] n=${n}`);
        }
        // in place (the runtime's one buffer for summaries and incoming states): incoming written over delta
        const sp2 = putF64(S), dp2 = putF32(D);
        step(n, g, sp2, dp2, dp2);
        const inS = getF64(sp2, n), inI = getF32(dp2, n);
        for (let e = 0; e < n; e++) {
          assert.is(inI[e], Math.fround(S[e]), `in place: incoming[${e}] n=${n}`);
          assert.is(inS[e], g * S[e] + D[e], `in place: state[${e}] n=${n}`);
        }
        arena.reset(mark);
      }
    });
  }
}

test('the JavaScript twin\'s scanStep and scanChunks with incoming = delta (one buffer): the same bits as apart', () => {
  const K = jsKernels(memory);
  const r = rng(6);
  const n = 37, H = 2, g = 0.96875 ** 5;
  const S = r.uniform(n, -1e3, 1e3), D = Float64Array.from(r.uniform(n, -2, 2), (v) => Math.fround(v));
  const mark = arena.mark();
  const sp = putF64(S), dp = putF32(D);
  K.scanStep(n, g, sp, dp, dp);
  const gotS = getF64(sp, n), gotI = getF32(dp, n);
  for (let e = 0; e < n; e++) {
    assert.is(gotI[e], Math.fround(S[e]), `incoming[${e}]`);
    assert.is(gotS[e], g * S[e] + D[e], `state[${e}]`);
  }
  arena.reset(mark);
  // scanChunks over 3 chunks of H heads: in place against separate buffers
  const stride = 5, lens = [4, 4, 3];
  const sums = Float32Array.from(r.uniform(lens.length * H * stride, -1, 1));
  const apart = new Float32Array(sums.length), st1 = new Float64Array(H * stride), st2 = new Float64Array(H * stride);
  const gp = (h: number, len: number) => (0.9 + 0.05 * h) ** len;
  scanChunks(sums, apart, st1, 0, lens, H, stride, gp);
  const inPlace = sums.slice();
  scanChunks(inPlace, inPlace, st2, 0, lens, H, stride, gp);
  assert.equal([...inPlace], [...apart], 'incoming states');
  assert.equal([...st2], [...st1], 'carried state');
});

// log Σ exp of float32 logits: the SIMD kernel's exponentials on f64 lanes (relative error < 1e-13 each)
// and the scalar twin's Math.exp against a float64 two-pass reference on the same float32 values:
// |Δ| ≤ 1e-12 · max(1, |ref|) (the sum's relative error, carried through the log as an absolute one).
for (const variant of VARIANTS) {
  for (const tw of ['wasmsimd', 'scalar'] as const) {
    test(`f64_logsumexp__${tw} (${variant}) = float64 reference: row lengths 1…32,003, strided, −∞ logits, NaN and +∞ rows`, () => {
      const k = kernels(variant);
      const lse = tw === 'wasmsimd' ? k.f64_logsumexp__wasmsimd : k.f64_logsumexp__scalar;
      const r = rng(11);
      const ref = (z: Float64Array, n: number, ld: number, row: number) => {
        let m = -Infinity;
        for (let i = 0; i < n; i++) { const v = z[row * ld + i]; if (v > m || Number.isNaN(v)) m = v; }
        let s = 0;
        for (let i = 0; i < n; i++) s += Math.exp(z[row * ld + i] - m);
        return m + Math.log(s);
      };
      for (const n of [1, 2, 3, 4, 5, 7, 8, 64, 1001, 32003]) for (const rows of [1, 3]) {
        const mark = arena.mark();
        const ld = n + r.int(5);
        const z = Float64Array.from(r.uniform(rows * ld, -30, 30), (v) => Math.fround(v));
        if (n > 4) { z[1] = -Infinity; z[(rows - 1) * ld + n - 1] = 88; } // a −∞ logit; a large one
        const zp = putF32(z), out = putF32(new Float64Array(2 * rows)); // rows float64 = 2·rows float32 slots
        lse(rows, n, zp, ld, out);
        const got = getF64(out, rows);
        for (let row = 0; row < rows; row++) {
          const want = ref(z, n, ld, row);
          if (!(Math.abs(got[row] - want) <= 1e-12 * Math.max(1, Math.abs(want)))) throw new Error(`${tw} ${variant} n=${n} row ${row}: ${got[row]}, want ${want}`);
        }
        arena.reset(mark);
      }
      // a NaN or +∞ logit makes the row NaN, as does a row of −∞ only
      for (const special of [NaN, Infinity]) {
        const mark = arena.mark();
        const z = new Float64Array(9).fill(0.5); z[6] = special;
        const zp = putF32(z), out = putF32(new Float64Array(2));
        lse(1, 9, zp, 9, out);
        assert.ok(Number.isNaN(getF64(out, 1)[0]), `${special}`);
        arena.reset(mark);
      }
      const mark = arena.mark();
      const zp = putF32(new Float64Array(6).fill(-Infinity)), out = putF32(new Float64Array(2));
      lse(1, 6, zp, 6, out);
      assert.ok(Number.isNaN(getF64(out, 1)[0]), 'all −∞');
      arena.reset(mark);
    });
  }
}

for (const variant of VARIANTS) {
  for (const tw of ['wasmsimd', 'scalar'] as const) {
    test(`f32_layernorm__${tw} (${variant}) = reference, strided and in place`, () => {
      const k = kernels(variant);
      const ln = tw === 'wasmsimd' ? k.f32_layernorm__wasmsimd : k.f32_layernorm__scalar;
      const r = rng(7);
      for (const rows of [1, 3, 7]) for (const n of [1, 2, 3, 4, 5, 8, 63, 64, 513]) for (const inPlace of [false, true]) {
        const mark = arena.mark();
        const ldx = n + r.int(3), ldy = inPlace ? ldx : n + r.int(4);
        const X = r.uniform(rows * ldx, -2, 3), G = r.uniform(n, 0.5, 1.5), B = r.uniform(n, -0.5, 0.5);
        const xp = putF32(X), gp = putF32(G), bp = putF32(B);
        const yp = inPlace ? xp : putF32(new Float64Array(rows * ldy));
        ln(rows, n, xp, ldx, gp, bp, yp, ldy, 1e-5);
        const want = layerNorm(unstride(X, rows, n, ldx), rows, n, G, B);
        const got = unstride(getF32(yp, rows * ldy), rows, n, ldy);
        expectClose(`layernorm ${tw} ${variant}`, got, want, elementwiseTol(want), `rows=${rows} n=${n} ldx=${ldx} ldy=${ldy} inPlace=${inPlace}`);
        arena.reset(mark);
      }
    });

    test(`f32_act__${tw}, f32_gate__${tw} (${variant}) = reference, every activation`, () => {
      const k = kernels(variant);
      const act = tw === 'wasmsimd' ? k.f32_act__wasmsimd : k.f32_act__scalar;
      const gate = tw === 'wasmsimd' ? k.f32_gate__wasmsimd : k.f32_gate__scalar;
      const r = rng(11);
      for (let code = 0; code <= 5; code++) for (const rows of [1, 3]) for (const cols of [1, 2, 3, 4, 5, 7, 9, 33]) {
        const f = code ? activation(ACT_NAMES[code - 1]) : (t: number) => t;
        const mark = arena.mark();
        const ld = cols + r.int(3);
        const X = r.uniform(rows * ld, -9, 9), O = r.uniform(rows * ld);
        const sizes = `act=${code} rows=${rows} cols=${cols} ld=${ld}`;
        // act in place
        const xp = putF32(X);
        act(rows, cols, xp, ld, code);
        const got = getF32(xp, rows * ld);
        const want = X.slice();
        for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) want[i * ld + c] = f(X[i * ld + c]);
        expectClose(`act ${tw} ${variant}`, got, want, elementwiseTol(want), sizes);
        // gate: o = act(g) ⊙ o
        const gp = putF32(X), op = putF32(O);
        gate(rows, cols, gp, ld, op, ld, code);
        const gw = O.slice();
        for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) gw[i * ld + c] = f(X[i * ld + c]) * O[i * ld + c];
        expectClose(`gate ${tw} ${variant}`, getF32(op, rows * ld), gw, elementwiseTol(gw), sizes);
        arena.reset(mark);
      }
    });

    test(`f32_add__${tw} (${variant}) = reference`, () => {
      const k = kernels(variant);
      const add = tw === 'wasmsimd' ? k.f32_add__wasmsimd : k.f32_add__scalar;
      const r = rng(5);
      for (const rows of [1, 2, 5]) for (const cols of [1, 3, 4, 6, 17]) {
        const mark = arena.mark();
        const lda = cols + r.int(3), ldy = cols + r.int(3);
        const A = r.uniform(rows * lda), Y = r.uniform(rows * ldy);
        const ap = putF32(A), yp = putF32(Y);
        add(rows, cols, ap, lda, yp, ldy);
        const want = Y.slice();
        for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) want[i * ldy + c] += A[i * lda + c];
        expectClose(`add ${tw} ${variant}`, getF32(yp, rows * ldy), want, elementwiseTol(want), `rows=${rows} cols=${cols} lda=${lda} ldy=${ldy}`);
        arena.reset(mark);
      }
    });
  }
}

// Row scaling and masked row sums (the CBLAS engine's decay scalings and intra-chunk mask),
// with negative table strides as the engine uses them. Scaling: one f32 product per element,
// elementwise tolerance. Row sums of `cols` f32 products: |Σ| error ≤ cols·u·Σ|terms| (float32
// accumulation over cols terms, any order), so the bound is (cols + 1)·2⁻²⁴·Σ|terms|, scale-free.
for (const variant of VARIANTS) {
  for (const tw of ['wasmsimd', 'scalar'] as const) {
    test(`f32_scale_rows__${tw} (${variant}) = reference, forward and backward tables, in place`, () => {
      const k = kernels(variant);
      const scale = tw === 'wasmsimd' ? k.f32_scale_rows__wasmsimd : k.f32_scale_rows__scalar;
      const r = rng(11);
      for (const rows of [1, 3, 8]) for (const cols of [1, 3, 4, 7, 64, 65]) for (const sinc of [1, -1, 2]) for (const inPlace of [false, true]) {
        const mark = arena.mark();
        const ldx = cols + r.int(3), ldy = inPlace ? ldx : cols + r.int(3);
        const X = r.uniform(rows * ldx, -3, 3), T = r.uniform(2 * rows + 2, 0.01, 1);
        const xp = putF32(X), tp = putF32(T);
        const s0 = sinc < 0 ? tp + (rows - 1) * 4 : tp; // backwards: row i reads T[rows − 1 − i]
        const yp = inPlace ? xp : putF32(new Float64Array(rows * ldy));
        scale(rows, cols, xp, ldx, s0, sinc, yp, ldy);
        const Tf = Float32Array.from(T), Xf = Float32Array.from(X);
        const want = new Float64Array(rows * cols);
        for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) want[i * cols + c] = Xf[i * ldx + c] * Tf[(s0 - tp) / 4 + i * sinc];
        expectClose(`scale_rows ${tw} ${variant}`, unstride(getF32(yp, rows * ldy), rows, cols, ldy), want, elementwiseTol(want), `rows=${rows} cols=${cols} sinc=${sinc} inPlace=${inPlace}`);
        arena.reset(mark);
      }
    });

    test(`f32_mask_rowsum__${tw} (${variant}) = reference, sliding mask (ldm = −1) and plain`, () => {
      const k = kernels(variant);
      const mrs = tw === 'wasmsimd' ? k.f32_mask_rowsum__wasmsimd : k.f32_mask_rowsum__scalar;
      const r = rng(13);
      let checked = 0;
      for (const rows of [1, 2, 5, 64]) for (const cols of [1, 3, 4, 5, 8, 67, 512]) for (const ldm of [-1, 0, cols + 1]) {
        const mark = arena.mark();
        const lda = cols + r.int(3);
        const A = r.uniform(rows * lda, -2, 2);
        const span = rows + cols + Math.max(0, ldm) * rows;
        const M = r.uniform(span, 0, 1);
        const ap = putF32(A), mp = putF32(M), rp = putF32(new Float64Array(rows));
        const m0 = ldm < 0 ? mp + (rows - 1) * 4 : mp; // row i's mask starts rows − 1 − i floats in
        mrs(rows, cols, m0, ldm, ap, lda, rp);
        const Af = Float32Array.from(A), Mf = Float32Array.from(M);
        const gotA = unstride(getF32(ap, rows * lda), rows, cols, lda), gotR = getF32(rp, rows);
        const wantA = new Float64Array(rows * cols), wantR = new Float64Array(rows), absR = new Float64Array(rows);
        for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) {
          const t = Math.fround(Af[i * lda + c] * Mf[(m0 - mp) / 4 + i * ldm + c]);
          wantA[i * cols + c] = t; wantR[i] += t; absR[i] += Math.abs(t);
        }
        expectClose(`mask ${tw} ${variant}`, gotA, wantA, () => 0, `rows=${rows} cols=${cols} ldm=${ldm}`); // one f32 product: exact
        expectClose(`rowsum ${tw} ${variant}`, gotR, wantR, (i) => (cols + 1) * 2 ** -24 * absR[i], `rows=${rows} cols=${cols} ldm=${ldm}`);
        checked++;
        arena.reset(mark);
      }
      assert.ok(checked === 4 * 7 * 3);
    });
  }
}

test('activation codes 0..5 are none, gelu, silu, relu, selu, sigmoid', () => {
  const k = kernels('simd');
  assert.is(k.act64(-1, 3), 0);
  assert.ok(Math.abs(k.act64(1, 5) - 1 / (1 + Math.exp(-1))) < 1e-15);
  assert.is(k.act64(-1, 0), -1);
});

test.run();
