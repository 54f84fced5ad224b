// Shared helpers for every kernel. No static data, no globals, no allocation:
// the module runs over one shared memory in many workers at once.
//
// One source, two builds: the `relaxed` target enables the relaxed-simd
// feature, and ASC_FEATURE_RELAXED_SIMD (a compile-time constant) selects
// f32x4.relaxed_madd there; the plain `simd` target gets mul + add. The dead
// branch is never compiled, so the plain module contains no relaxed opcode.

// a·b + c on four f32 lanes.
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

// Horizontal sum of four f32 lanes (fixed order: (l0+l1)+(l2+l3)).
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// Loads the first n (0..4) f32 lanes at p, zero elsewhere; never reads past p + 4n.
// @ts-ignore: decorator
@inline export function loadN(p: usize, n: i32): v128 {
  if (n >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  if (n > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

// Stores the first n (0..4) f32 lanes of v at p.
// @ts-ignore: decorator
@inline export function storeN(p: usize, v: v128, n: i32): void {
  if (n >= 4) { v128.store(p, v); return; }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

// ------------------------------------------------------------ f64 scalar math
// Table-free exp/erf in float64 (the AssemblyScript Math uses lookup tables in
// static data; we keep the module free of data segments).

// ln2 split so that k·LN2_HI is exact for |k| < 2^11 (Cody–Waite reduction)
const LN2_HI: f64 = 6.93147180369123816490e-01;
const LN2_LO: f64 = 1.90821492927058770002e-10;
const INV_LN2: f64 = 1.4426950408889634;

/** e^x in f64, relative error ~1e-15 (range reduction by ln2, degree-13 Taylor on |r| ≤ ln2/2). */
export function exp64(x: f64): f64 {
  if (x != x) return x;
  if (x > 709.78) return Infinity;
  if (x < -745.2) return 0;
  const k = nearest<f64>(x * INV_LN2);
  const r = (x - k * LN2_HI) - k * LN2_LO;
  let p: f64 = 1.0 / 6227020800.0; // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^k in two normal halves so subnormal results come out right.
  const ki = <i64>k;
  const h = ki >> 1;
  const s1 = reinterpret<f64>((h + 1023) << 52);
  const s2 = reinterpret<f64>((ki - h + 1023) << 52);
  return p * s1 * s2;
}

const TWO_OVER_SQRT_PI: f64 = 1.1283791670955126;
const INV_SQRT_PI: f64 = 0.5641895835477563;

/** erf(x) in f64, absolute error < 1e-14: for |x| < 2.5 the positive series
 *  erf(x) = 2/√π e^{−x²} Σ 2ⁿ x^{2n+1}/(2n+1)!! (no cancellation); beyond, the
 *  continued fraction for erfc evaluated backwards at fixed depth. */
export function erf64(x: f64): f64 {
  if (x != x) return x;
  const ax = abs<f64>(x);
  const s: f64 = x < 0 ? -1 : 1;
  if (ax > 6.0) return s; // erfc(6) ≈ 2e-17
  const x2 = ax * ax;
  if (ax < 2.5) {
    let term = ax, sum = ax;
    const t2 = 2.0 * x2;
    for (let n = 1; n < 120; n++) {
      term *= t2 / <f64>(2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return s * TWO_OVER_SQRT_PI * exp64(-x2) * sum;
  }
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  let f = ax;
  for (let n = 80; n >= 1; n--) f = ax + (<f64>n * 0.5) / f;
  const erfc = exp64(-x2) * INV_SQRT_PI / f;
  return s * (1.0 - erfc);
}

const SELU_ALPHA: f64 = 1.6732632423543772;
const SELU_SCALE: f64 = 1.0507009873554805;

/** Activation by code: 0 none, 1 gelu (exact, erf), 2 silu, 3 relu, 4 selu, 5 sigmoid. Computed in f64. */
export function act64(x: f64, code: i32): f64 {
  switch (code) {
    case 1: return 0.5 * x * (1.0 + erf64(x * 0.7071067811865476));
    case 2: return x / (1.0 + exp64(-x));
    case 3: return x > 0 ? x : 0;
    case 4: return SELU_SCALE * (x > 0 ? x : SELU_ALPHA * (exp64(x) - 1.0));
    case 5: return 1.0 / (1.0 + exp64(-x));
    default: return x;
  }
}

// @ts-ignore: decorator
@inline export function act32(x: f32, code: i32): f32 {
  return code == 0 ? x : <f32>act64(<f64>x, code);
}

// ------------------------------------------------------------ f64x2 SIMD math
// The transcendental activations run two lanes at a time in f64 (f32x4 is
// split into two f64x2 halves): a float32 result then carries only its own
// rounding, and there is no lane-by-lane scalar code on the hot path.

/** e^x on two f64 lanes, |x| clamped to 700: Cody–Waite reduction by ln2, degree-11 Taylor on |r| ≤ ln2/2
 *  (relative error < 1e-13), 2^k built in the exponent bits. */
// @ts-ignore: decorator
@inline export function exp_f64x2(x: v128): v128 {
  x = f64x2.min(f64x2.max(x, f64x2.splat(-700.0)), f64x2.splat(700.0));
  const k = f64x2.nearest(f64x2.mul(x, f64x2.splat(INV_LN2)));
  const r = f64x2.sub(f64x2.sub(x, f64x2.mul(k, f64x2.splat(LN2_HI))), f64x2.mul(k, f64x2.splat(LN2_LO)));
  let p = f64x2.splat(1.0 / 39916800.0); // 1/11!
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 3628800.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 362880.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 40320.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 5040.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 720.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 120.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 24.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 6.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(0.5));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  // k (|k| ≤ 1010) to an integer via the 1.5·2^52 trick, then 2^k = (k + 1023) << 52.
  const magic = f64x2.splat(6755399441055744.0);
  const ki = i64x2.sub(f64x2.add(k, magic), magic);
  const two_k = i64x2.shl(i64x2.add(ki, i64x2.splat(1023)), 52);
  return f64x2.mul(p, two_k);
}

/** erf on two f64 lanes: x·P(x²)/Q(x²) on |x| ≤ 4 (a rational fit made for this project: max error
 *  3.2e-9 there), clamped to ±erf(4) beyond (1 − erf(4) = 1.5e-8). Absolute error < 2e-8. */
// @ts-ignore: decorator
@inline export function erf_f64x2(x: v128): v128 {
  const ax = f64x2.min(f64x2.abs(x), f64x2.splat(4.0));
  const u = f64x2.mul(ax, ax);
  let p = f64x2.splat(-1.369479818436048e-08);
  p = f64x2.add(f64x2.mul(p, u), f64x2.splat(4.787274228045674e-06));
  p = f64x2.add(f64x2.mul(p, u), f64x2.splat(0.0003828970427834865));
  p = f64x2.add(f64x2.mul(p, u), f64x2.splat(0.0038375545292757053));
  p = f64x2.add(f64x2.mul(p, u), f64x2.splat(0.05432954516757679));
  p = f64x2.add(f64x2.mul(p, u), f64x2.splat(0.1846422054303867));
  p = f64x2.add(f64x2.mul(p, u), f64x2.splat(1.1283791828639418));
  let q = f64x2.splat(6.407436226868197e-05);
  q = f64x2.add(f64x2.mul(q, u), f64x2.splat(0.0013094599513854602));
  q = f64x2.add(f64x2.mul(q, u), f64x2.splat(0.015450241626201382));
  q = f64x2.add(f64x2.mul(q, u), f64x2.splat(0.11380344296551904));
  q = f64x2.add(f64x2.mul(q, u), f64x2.splat(0.4969684484638127));
  q = f64x2.add(f64x2.mul(q, u), f64x2.splat(1.0));
  const e = f64x2.div(f64x2.mul(ax, p), q);
  // restore the sign of x (copysign through the sign bit)
  const sign = v128.and(x, i64x2.splat(0x8000000000000000));
  return v128.or(e, sign);
}

/** Activation on two f64 lanes (codes as act64). */
// @ts-ignore: decorator
@inline function act_f64x2(x: v128, code: i32): v128 {
  const one = f64x2.splat(1.0);
  switch (code) {
    case 1: return f64x2.mul(f64x2.mul(f64x2.splat(0.5), x), f64x2.add(one, erf_f64x2(f64x2.mul(x, f64x2.splat(0.7071067811865476)))));
    case 2: return f64x2.div(x, f64x2.add(one, exp_f64x2(f64x2.neg(x))));
    case 4: {
      const neg = f64x2.mul(f64x2.splat(SELU_ALPHA), f64x2.sub(exp_f64x2(f64x2.min(x, f64x2.splat(0.0))), one));
      return f64x2.mul(f64x2.splat(SELU_SCALE), v128.bitselect(x, neg, f64x2.gt(x, f64x2.splat(0.0))));
    }
    case 5: return f64x2.div(one, f64x2.add(one, exp_f64x2(f64x2.neg(x))));
    default: return x;
  }
}

// ------------------------------------------------------------ f32x4 SIMD math
// The activations on four f32 lanes, no f64 and no table. Measured against
// float64 over a dense grid incl. the tails (test/kernels-activations.test.ts,
// README "Kernels"): see the bound there.

// ln2 split so that k·LN2F_HI is exact in f32 for |k| ≤ 2^8 (9 significant bits)
const LN2F_HI: f32 = 0.693359375;
const LN2F_LO: f32 = -2.12194440e-4;
const LOG2EF: f32 = 1.44269504088896341;

/** e^{x+lo} (want_m1 false) or e^x − 1 (true; lo = 0) on four f32 lanes, x clamped to [−87, 88] (2^k stays normal):
 *  x = k·ln2 + r (Cody–Waite), |r| ≤ ln2/2, e^r − 1 = r·P(r) with P the degree-6 Taylor polynomial
 *  (truncation ≤ 5e-9 relative); e^x = 2^k + 2^k·rP, e^x − 1 = (2^k − 1) + 2^k·rP (2^k − 1 exact,
 *  no cancellation at k = 0). lo (|lo| ≤ 0.05) is a low-order part of the argument added to r. */
// @ts-ignore: decorator
@inline function exp_core(x: v128, lo: v128, want_m1: bool): v128 {
  // pmin/pmax: one instruction each (NaN still propagates: the comparisons fail and keep x)
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.0)), f32x4.splat(88.0));
  // k = nearest(x·log2e) by the 1.5·2²³ trick: the sum's low mantissa bits are k as an integer
  const magic = f32x4.splat(12582912.0);
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(LOG2EF)), magic);
  const k = f32x4.sub(t, magic);
  const r = f32x4.add(f32x4.sub(f32x4.sub(x, f32x4.mul(k, f32x4.splat(LN2F_HI))), f32x4.mul(k, f32x4.splat(LN2F_LO))), lo);
  let p = f32x4.splat(1.0 / 5040.0);
  p = madd(p, r, f32x4.splat(1.0 / 720.0));
  p = madd(p, r, f32x4.splat(1.0 / 120.0));
  p = madd(p, r, f32x4.splat(1.0 / 24.0));
  p = madd(p, r, f32x4.splat(1.0 / 6.0));
  p = madd(p, r, f32x4.splat(0.5));
  p = madd(p, r, f32x4.splat(1.0));
  const rp = f32x4.mul(r, p); // e^r − 1
  const s = i32x4.shl(i32x4.add(i32x4.sub(t, magic), i32x4.splat(127)), 23); // 2^k (t − magic as integers = k)
  return want_m1 ? madd(s, rp, f32x4.sub(s, f32x4.splat(1.0))) : madd(s, rp, s);
}

/** e^x on four f32 lanes (x clamped to [−87, 88]). */
// @ts-ignore: decorator
@inline export function exp_f32x4(x: v128): v128 { return exp_core(x, f32x4.splat(0), false); }

/** e^x − 1 on four f32 lanes (x clamped to [−87, 88]); no cancellation near 0. */
// @ts-ignore: decorator
@inline export function expm1_f32x4(x: v128): v128 { return exp_core(x, f32x4.splat(0), true); }

/** erfc(|x|/√2) on four f32 lanes: e^{−x²/2}·R(t), t = 1/(1 + z/2), z = |x|/√2, R a degree-10
 *  polynomial fitted for this project (least squares toward minimax on z ∈ [0, 9.5]; relative error
 *  5e-9 in f64, about 2.5e-7 when evaluated in f32). Relative accuracy holds in the tail, where
 *  1 − erf would cancel: x² is split exactly (x = xh + xl, xh with 12 significant bits, so xh² is
 *  exact) and −x²/2 = −xh²/2 − xl·(x + xh)/2 goes to exp as a hi + lo pair. */
// @ts-ignore: decorator
@inline export function erfc_half_f32x4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(ax, f32x4.splat(0.7071067811865476));
  const t = f32x4.div(f32x4.splat(2.0), f32x4.add(f32x4.splat(2.0), z));
  let p = f32x4.splat(0.02920815276192475);
  p = madd(p, t, f32x4.splat(-0.21822504358044806));
  p = madd(p, t, f32x4.splat(0.661440390222427));
  p = madd(p, t, f32x4.splat(-0.9962617238316809));
  p = madd(p, t, f32x4.splat(0.7110419274779171));
  p = madd(p, t, f32x4.splat(-0.26811864908971317));
  p = madd(p, t, f32x4.splat(0.291861451103059));
  p = madd(p, t, f32x4.splat(0.22163358533934852));
  p = madd(p, t, f32x4.splat(0.28559513687530724));
  p = madd(p, t, f32x4.splat(0.28181499399390514));
  p = madd(p, t, f32x4.splat(9.77381311609605e-06));
  const xh = v128.and(ax, i32x4.splat(0xfffff000));
  const xl = f32x4.sub(ax, xh);
  const hi = f32x4.mul(f32x4.mul(xh, xh), f32x4.splat(-0.5));
  const lo = f32x4.mul(f32x4.mul(xl, f32x4.add(ax, xh)), f32x4.splat(-0.5));
  return f32x4.mul(exp_core(hi, lo, false), p);
}

/** Activation on four f32 lanes, not inlined (the GEMM epilogue: two calls per tile row). */
export function actv(v: v128, code: i32): v128 { return actv_inline(v, code); }

/** Activation on four f32 lanes, all in f32x4 (codes as act64); inlined into the elementwise loops. */
// @ts-ignore: decorator
@inline export function actv_inline(v: v128, code: i32): v128 {
  const one = f32x4.splat(1.0);
  switch (code) {
    case 1: { // 0.5·x·(1 + erf(x/√2)) = x − h·erfc(|x|/√2) for x ≥ 0, h·erfc(|x|/√2) below, h = x/2
      const he = f32x4.mul(f32x4.mul(f32x4.splat(0.5), v), erfc_half_f32x4(v));
      return v128.bitselect(f32x4.sub(v, he), he, f32x4.ge(v, f32x4.splat(0)));
    }
    case 2: return f32x4.div(v, f32x4.add(one, exp_f32x4(f32x4.neg(v))));
    case 3: return f32x4.pmax(v, f32x4.splat(0));
    case 4: {
      const neg = f32x4.mul(f32x4.splat(<f32>(SELU_SCALE * SELU_ALPHA)), expm1_f32x4(f32x4.pmin(v, f32x4.splat(0))));
      return v128.bitselect(f32x4.mul(f32x4.splat(<f32>SELU_SCALE), v), neg, f32x4.gt(v, f32x4.splat(0)));
    }
    case 5: return f32x4.div(one, f32x4.add(one, exp_f32x4(f32x4.neg(v))));
    default: return v;
  }
}

/** The former activation path: four f32 lanes as two f64x2 halves (kept as the f64 twin for tests and benches). */
export function actv64(v: v128, code: i32): v128 {
  if (code == 0) return v;
  if (code == 3) return f32x4.max(v, f32x4.splat(0));
  const lo = act_f64x2(f64x2.promote_low_f32x4(v), code);
  const hi = act_f64x2(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)), code);
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

// ---------------------------------------------------------------- activation rows
//   x // [rows, cols] row stride ldx, in place: x = act(x)   (f32_act, and the GEMM's activation epilogue)

// One activation over the rows, two vectors per step (the transcendental activations are long
// dependency chains: two independent ones keep both FMA pipes busy). `code` is a constant at
// every call site below, so each copy of this loop carries one activation only.
// @ts-ignore: decorator
@inline function act_rows_f32x4(rows: i32, cols: i32, x: usize, ldx: i32, code: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    let i = 0;
    for (; i + 8 <= cols; i += 8) {
      const p = xr + (<usize>i << 2);
      const a = actv_inline(v128.load(p), code), b = actv_inline(v128.load(p, 16), code);
      v128.store(p, a); v128.store(p, b, 16);
    }
    for (; i + 4 <= cols; i += 4) { const p = xr + (<usize>i << 2); v128.store(p, actv_inline(v128.load(p), code)); }
    if (i < cols) { const p = xr + (<usize>i << 2), m = cols - i; storeN(p, actv_inline(loadN(p, m), code), m); }
  }
}

// @ts-ignore: decorator
@inline export function act_rows(rows: i32, cols: i32, x: usize, ldx: i32, act: i32, wide: bool): void {
  if (act == 0) return;
  if (!wide) {
    switch (act) {
      case 1: act_rows_f32x4(rows, cols, x, ldx, 1); return;
      case 2: act_rows_f32x4(rows, cols, x, ldx, 2); return;
      case 3: act_rows_f32x4(rows, cols, x, ldx, 3); return;
      case 4: act_rows_f32x4(rows, cols, x, ldx, 4); return;
      case 5: act_rows_f32x4(rows, cols, x, ldx, 5); return;
      default: return;
    }
  }
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    let i = 0;
    for (; i + 4 <= cols; i += 4) { const p = xr + (<usize>i << 2); const v = v128.load(p); v128.store(p, actv64(v, act)); }
    if (i < cols) { const p = xr + (<usize>i << 2), m = cols - i; const v = loadN(p, m); storeN(p, actv64(v, act), m); }
  }
}
