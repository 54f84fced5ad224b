// The f32x4 activations (gelu exact-erf form, silu, selu, sigmoid; relu) against
// a float64 reference over a dense grid incl. the tails, both modules:
//   f32_act__wasmsimd, f32_gate__wasmsimd (the GEMM epilogue uses the same actv)
//     |err| ≤ 8·2⁻²⁴·|ref| + 1e-35   — a few f32 roundings (the degree-10 polynomial
//     in f32 alone ≈ 4·2⁻²⁴, exp ≈ 2, the products and division); the 1e-35 floor covers the tails where exp's argument is
//     clamped to [−87, 88] (results below ~1e-36, e.g. sigmoid(−100)).
//   f32_act__scalar (float64 inside, one f32 rounding; gelu's 1 + erf cancels in
//     float64 far in the negative tail):  |err| ≤ 2·2⁻²⁴·|ref| + 1e-14.
// The reference gelu uses erfc for x < 0 so that it is itself accurate in
// relative terms there (0.5·x·(1 + erf) cancels in float64 below x ≈ −6).
// The measured maxima are printed (README "Kernels" quotes them).
import { test } from 'uvu';
import { activation, erf } from '../src/reference/ops.js';
import { VARIANTS, kernels, arena, putF32, getF32, ACT_NAMES, U } from './helpers/kernels.js';

/** erfc(z), z ≥ 0, to ~1e-15 relative: 1 − erf for z < 3 (erfc(3) = 2.2e-5, so ≤ 1e-11 relative lost), a continued fraction beyond. */
function erfc(z: number): number {
  if (z < 3) return 1 - erf(z);
  let f = z;
  for (let n = 200; n >= 1; n--) f = z + (n / 2) / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}
const REF: Record<string, (x: number) => number> = {
  gelu: (x) => (x < 0 ? 0.5 * x * erfc(-x / Math.SQRT2) : 0.5 * x * (1 + erf(x / Math.SQRT2))),
  silu: (x) => x / (1 + Math.exp(-x)),
  relu: activation('relu'),
  selu: (x) => 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * Math.expm1(x)),
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
};

/** Dense grid: step 2⁻⁹ on [−30, 30], ±10^e for e in [−40, 2] step 0.01, ±[30, 200] step 0.25; all f32. */
function grid(): Float64Array {
  const xs: number[] = [];
  for (let x = -30; x <= 30; x += 2 ** -9) xs.push(x);
  for (let e = -40; e <= 2; e += 0.01) { xs.push(Math.fround(10 ** e)); xs.push(-Math.fround(10 ** e)); }
  for (let x = 30; x <= 200; x += 0.25) { xs.push(x); xs.push(-x); }
  xs.push(0, -0);
  return Float64Array.from(xs);
}

type ActFn = (rows: number, cols: number, x: number, ldx: number, act: number) => void;

function measure(fn: ActFn, code: number, xs: Float64Array, rel: number, floor: number, what: string): { maxRel: number; maxAbs: number } {
  const mark = arena.mark();
  const p = putF32(xs);
  fn(1, xs.length, p, xs.length, code);
  const got = getF32(p, xs.length);
  arena.reset(mark);
  const f = REF[ACT_NAMES[code - 1]];
  let maxRel = 0, maxAbs = 0;
  for (let i = 0; i < xs.length; i++) {
    const want = f(xs[i]);
    const err = Math.abs(got[i] - want);
    if (!(err <= rel * U * Math.abs(want) + floor)) {
      throw new Error(`${what} ${ACT_NAMES[code - 1]}(${xs[i]}): got ${got[i]}, want ${want} (|err| ${err.toExponential(3)} > ${rel}·2⁻²⁴·|ref| + ${floor})`);
    }
    if (Math.abs(want) > 1e-30) maxRel = Math.max(maxRel, err / (U * Math.abs(want)));
    if (Math.abs(want) <= 1) maxAbs = Math.max(maxAbs, err);
  }
  return { maxRel, maxAbs };
}

for (const variant of VARIANTS) {
  test(`f32x4 activations (${variant}): |err| ≤ 8·2⁻²⁴·|ref| + 1e-35 on a dense grid; scalar twin ≤ 2·2⁻²⁴·|ref| + 1e-14`, () => {
    const k = kernels(variant);
    const xs = grid();
    for (let code = 1; code <= 5; code++) {
      const s = measure(k.f32_act__wasmsimd, code, xs, 8, 1e-35, `f32_act__wasmsimd (${variant})`);
      const t = measure(k.f32_act__scalar, code, xs, 2, 1e-14, `f32_act__scalar (${variant})`);
      console.log(`  ${variant} ${ACT_NAMES[code - 1].padEnd(8)} simd: max |err|/(2⁻²⁴|ref|) ${s.maxRel.toFixed(2)}, max |err| where |ref| ≤ 1 ${s.maxAbs.toExponential(2)};  scalar: ${t.maxAbs.toExponential(2)}`);
    }
  });

  test(`f32_gate__wasmsimd (${variant}) = act(g)·o within 9·2⁻²⁴·|ref| + 1e-35, odd sizes and strides`, () => {
    const k = kernels(variant);
    const xs = grid();
    for (let code = 1; code <= 5; code++) for (const [rows, cols, ld] of [[1, 1, 1], [3, 5, 7], [7, 33, 35], [2, 1021, 1023]]) {
      const mark = arena.mark();
      const n = rows * ld;
      const G = Float64Array.from({ length: n }, (_, i) => xs[(i * 7919) % xs.length]);
      const O = Float64Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i) * 3));
      const gp = putF32(G), op = putF32(O);
      k.f32_gate__wasmsimd(rows, cols, gp, ld, op, ld, code);
      const got = getF32(op, n);
      const f = REF[ACT_NAMES[code - 1]];
      for (let r = 0; r < rows; r++) for (let c = 0; c < ld; c++) {
        const i = r * ld + c;
        const want = c < cols ? f(G[i]) * O[i] : O[i];
        const err = Math.abs(got[i] - want);
        if (!(err <= 9 * U * Math.abs(want) + 1e-35)) {
          throw new Error(`gate ${ACT_NAMES[code - 1]} rows=${rows} cols=${cols} ld=${ld} [${r},${c}] g=${G[i]}: got ${got[i]}, want ${want}`);
        }
      }
      arena.reset(mark);
    }
  });

  test(`f32_act__f64x2 (${variant}), the former two-f64x2-halves path, within the old max(1e-5, 1e-6·|ref|)`, () => {
    const k = kernels(variant);
    const xs = grid();
    for (let code = 1; code <= 5; code++) {
      const mark = arena.mark();
      const p = putF32(xs);
      k.f32_act__f64x2(1, xs.length, p, xs.length, code);
      const got = getF32(p, xs.length);
      const f = REF[ACT_NAMES[code - 1]];
      for (let i = 0; i < xs.length; i++) {
        const want = f(xs[i]);
        if (!(Math.abs(got[i] - want) <= Math.max(1e-5, 1e-6 * Math.abs(want)))) throw new Error(`f32_act__f64x2 ${ACT_NAMES[code - 1]}(${xs[i]}): got ${got[i]}, want ${want}`);
      }
      arena.reset(mark);
    }
  });
}

test.run();
