// Retention pieces for one head on strided views (docs/DESIGN.md §1, chunkwise form).
// The projection output [n, H·dk] is used in place: head h is the column offset
// h·dk, so q = base + h·dk·4 with row stride ldq = H·dk. Sizes and strides in
// elements; pointers are byte offsets.
//
//   q, k   // [n, dk]   row strides ldq, ldk
//   v      // [n, dv]   row stride ldv
//   o      // [n, dv]   row stride ldo
//   r      // [n]       row sums, contiguous
//   pow    // [n+1]     pow[d] = γ^d as f32 (JS computes it in f64)
//   S      // [dk, dv]  contiguous; z // [dk]
import { madd, hsum, loadN, storeN } from './common';

// @ts-ignore: decorator
@inline function dot_simd(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0), acc1 = acc0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    acc0 = madd(v128.load(a + o), v128.load(b + o), acc0);
    acc1 = madd(v128.load(a + o, 16), v128.load(b + o, 16), acc1);
  }
  if (i + 4 <= n) {
    const o = <usize>i << 2;
    acc0 = madd(v128.load(a + o), v128.load(b + o), acc0);
    i += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++) { const o = <usize>i << 2; s += load<f32>(a + o) * load<f32>(b + o); }
  return s;
}

// y[0..n) += a · x[0..n)
// @ts-ignore: decorator
@inline function axpy_simd(n: i32, a: f32, x: usize, y: usize): void {
  const av = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, madd(av, v128.load(x + o), v128.load(y + o)));
  }
  if (i < n) { const o = <usize>i << 2; storeN(y + o, madd(av, loadN(x + o, n - i), loadN(y + o, n - i)), n - i); }
}

// @ts-ignore: decorator
@inline function scale_simd(n: i32, a: f32, y: usize): void {
  const av = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= n; i += 4) { const o = <usize>i << 2; v128.store(y + o, f32x4.mul(av, v128.load(y + o))); }
  for (; i < n; i++) { const o = <usize>i << 2; store<f32>(y + o, a * load<f32>(y + o)); }
}

// @ts-ignore: decorator
@inline function zero(n: i32, y: usize): void { memory.fill(y, 0, <usize>n << 2); }

// ---------------------------------------------------------------- intra-chunk
// o[i,:] = Σ_{j≤i} A[i,j] v_j,  r[i] = Σ_{j≤i} A[i,j],  A[i,j] = (q_i·k_j) pow[i−j]  (o, r overwritten)
// scratch // [n, n] f32: the one score tile (lower triangle used), n·n·4 bytes

export function f32_retention_intra__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, k: usize, ldk: i32,
                                              v: usize, ldv: i32, pow: usize, o: usize, ldo: i32, r: usize, scratch: usize): void {
  for (let i = 0; i < n; i++) {
    const qi = q + (<usize>i * <usize>ldq << 2);
    const ai = scratch + (<usize>i * <usize>n << 2);
    let rs: f32 = 0;
    for (let j = 0; j <= i; j++) {
      const s = dot_simd(qi, k + (<usize>j * <usize>ldk << 2), dk) * load<f32>(pow + (<usize>(i - j) << 2));
      store<f32>(ai + (<usize>j << 2), s);
      rs += s;
    }
    store<f32>(r + (<usize>i << 2), rs);
  }
  for (let i = 0; i < n; i++) {
    const oi = o + (<usize>i * <usize>ldo << 2);
    const ai = scratch + (<usize>i * <usize>n << 2);
    zero(dv, oi);
    for (let j = 0; j <= i; j++) axpy_simd(dv, load<f32>(ai + (<usize>j << 2)), v + (<usize>j * <usize>ldv << 2), oi);
  }
}

export function f32_retention_intra__scalar(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, k: usize, ldk: i32,
                                            v: usize, ldv: i32, pow: usize, o: usize, ldo: i32, r: usize, scratch: usize): void {
  for (let i = 0; i < n; i++) {
    const qi = q + (<usize>i * <usize>ldq << 2);
    const ai = scratch + (<usize>i * <usize>n << 2);
    let rs: f32 = 0;
    for (let j = 0; j <= i; j++) {
      const kj = k + (<usize>j * <usize>ldk << 2);
      let d: f32 = 0;
      for (let t = 0; t < dk; t++) d += load<f32>(qi + (<usize>t << 2)) * load<f32>(kj + (<usize>t << 2));
      const s = d * load<f32>(pow + (<usize>(i - j) << 2));
      store<f32>(ai + (<usize>j << 2), s);
      rs += s;
    }
    store<f32>(r + (<usize>i << 2), rs);
  }
  for (let i = 0; i < n; i++) {
    const oi = o + (<usize>i * <usize>ldo << 2);
    const ai = scratch + (<usize>i * <usize>n << 2);
    for (let c = 0; c < dv; c++) {
      let acc: f32 = 0;
      for (let j = 0; j <= i; j++) acc += load<f32>(ai + (<usize>j << 2)) * load<f32>(v + ((<usize>j * <usize>ldv + c) << 2));
      store<f32>(oi + (<usize>c << 2), acc);
    }
  }
}

// ------------------------------------------------------------- chunk summary
// S[a,:] = Σ_j ζ_j k_j[a] v_j,  z[a] = Σ_j ζ_j k_j[a],  ζ_j = pow[n−1−j]   (S, z overwritten, f32)

export function f32_retention_summary__wasmsimd(n: i32, dk: i32, dv: i32, k: usize, ldk: i32, v: usize, ldv: i32,
                                                pow: usize, S: usize, z: usize): void {
  zero(dk * dv, S);
  zero(dk, z);
  for (let j = 0; j < n; j++) {
    const zeta = load<f32>(pow + (<usize>(n - 1 - j) << 2));
    const kj = k + (<usize>j * <usize>ldk << 2);
    const vj = v + (<usize>j * <usize>ldv << 2);
    for (let a = 0; a < dk; a++) {
      const kz = load<f32>(kj + (<usize>a << 2)) * zeta;
      store<f32>(z + (<usize>a << 2), load<f32>(z + (<usize>a << 2)) + kz);
      axpy_simd(dv, kz, vj, S + (<usize>a * <usize>dv << 2));
    }
  }
}

export function f32_retention_summary__scalar(n: i32, dk: i32, dv: i32, k: usize, ldk: i32, v: usize, ldv: i32,
                                              pow: usize, S: usize, z: usize): void {
  for (let a = 0; a < dk; a++) {
    let za: f32 = 0;
    for (let j = 0; j < n; j++) za += load<f32>(k + ((<usize>j * <usize>ldk + a) << 2)) * load<f32>(pow + (<usize>(n - 1 - j) << 2));
    store<f32>(z + (<usize>a << 2), za);
    for (let c = 0; c < dv; c++) {
      let acc: f32 = 0;
      for (let j = 0; j < n; j++) {
        const kz = load<f32>(k + ((<usize>j * <usize>ldk + a) << 2)) * load<f32>(pow + (<usize>(n - 1 - j) << 2));
        acc += kz * load<f32>(v + ((<usize>j * <usize>ldv + c) << 2));
      }
      store<f32>(S + ((<usize>a * <usize>dv + c) << 2), acc);
    }
  }
}

// ---------------------------------------------------------------- cross term
// o[i,:] += (q_i ξ_i) S,  r[i] += (q_i ξ_i)·z,  ξ_i = pow[i+1]   (S [dk,dv], z [dk] f32)

export function f32_retention_cross__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, pow: usize,
                                              S: usize, z: usize, o: usize, ldo: i32, r: usize): void {
  for (let i = 0; i < n; i++) {
    const xi = load<f32>(pow + (<usize>(i + 1) << 2));
    const qi = q + (<usize>i * <usize>ldq << 2);
    const oi = o + (<usize>i * <usize>ldo << 2);
    let rs = load<f32>(r + (<usize>i << 2));
    for (let a = 0; a < dk; a++) {
      const qa = load<f32>(qi + (<usize>a << 2)) * xi;
      rs += qa * load<f32>(z + (<usize>a << 2));
      axpy_simd(dv, qa, S + (<usize>a * <usize>dv << 2), oi);
    }
    store<f32>(r + (<usize>i << 2), rs);
  }
}

export function f32_retention_cross__scalar(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, pow: usize,
                                            S: usize, z: usize, o: usize, ldo: i32, r: usize): void {
  for (let i = 0; i < n; i++) {
    const xi = load<f32>(pow + (<usize>(i + 1) << 2));
    const qi = q + (<usize>i * <usize>ldq << 2);
    const oi = o + (<usize>i * <usize>ldo << 2);
    let rs = load<f32>(r + (<usize>i << 2));
    for (let a = 0; a < dk; a++) rs += load<f32>(qi + (<usize>a << 2)) * xi * load<f32>(z + (<usize>a << 2));
    store<f32>(r + (<usize>i << 2), rs);
    for (let c = 0; c < dv; c++) {
      let acc = load<f32>(oi + (<usize>c << 2));
      for (let a = 0; a < dk; a++) acc += load<f32>(qi + (<usize>a << 2)) * xi * load<f32>(S + ((<usize>a * <usize>dv + c) << 2));
      store<f32>(oi + (<usize>c << 2), acc);
    }
  }
}

// ------------------------------------------------------------- normalisation
// Row i: rs = r[i]; if invSqrtC: scale = invSqrtC[i], rs *= invSqrtC[i]; if normRetn: scale /= max(1, |rs|);
// o[i,:] *= scale; r[i] = rs.   invSqrtC // [n] f32 or 0 (normalizeAttn off), 1/sqrt(c_pos) from JS.

// @ts-ignore: decorator
@inline function row_scale(i: i32, r: usize, invSqrtC: usize, normRetn: i32): f32 {
  let scale: f32 = 1;
  let rs = load<f32>(r + (<usize>i << 2));
  if (invSqrtC) { const s = load<f32>(invSqrtC + (<usize>i << 2)); scale = s; rs *= s; }
  if (normRetn) scale /= max<f32>(1, abs<f32>(rs));
  store<f32>(r + (<usize>i << 2), rs);
  return scale;
}

export function f32_retention_normalize__wasmsimd(n: i32, dv: i32, o: usize, ldo: i32, r: usize, invSqrtC: usize, normRetn: i32): void {
  for (let i = 0; i < n; i++) {
    const scale = row_scale(i, r, invSqrtC, normRetn);
    if (scale != 1) scale_simd(dv, scale, o + (<usize>i * <usize>ldo << 2));
  }
}

export function f32_retention_normalize__scalar(n: i32, dv: i32, o: usize, ldo: i32, r: usize, invSqrtC: usize, normRetn: i32): void {
  for (let i = 0; i < n; i++) {
    const scale = row_scale(i, r, invSqrtC, normRetn);
    const oi = o + (<usize>i * <usize>ldo << 2);
    for (let c = 0; c < dv; c++) store<f32>(oi + (<usize>c << 2), load<f32>(oi + (<usize>c << 2)) * scale);
  }
}

// ------------------------------------------------------------ recurrent step
// One token, one head, float64 state (in place):
//   S ← γS + kᵀv,  z ← γz + k,  o = q S,  r = q·z,  then the row normalisation.
//   q, k // [dk] f32;  v // [dv] f32;  S // [dk, dv] f64;  z // [dk] f64
//   o // [dv] f32 out;  r // [1] f32 out (the normalised row sum);  invSqrtC // [1] f32 or 0

export function f32_retention_step__wasmsimd(dk: i32, dv: i32, q: usize, k: usize, v: usize, gamma: f64,
                                             S: usize, z: usize, o: usize, r: usize, invSqrtC: usize, normRetn: i32): void {
  const g2 = f64x2.splat(gamma);
  const dv2 = dv & ~1;
  let rs: f64 = 0;
  for (let a = 0; a < dk; a++) {
    const ka = <f64>load<f32>(k + (<usize>a << 2));
    const zp = z + (<usize>a << 3);
    const za = gamma * load<f64>(zp) + ka;
    store<f64>(zp, za);
    rs += <f64>load<f32>(q + (<usize>a << 2)) * za;
    const k2 = f64x2.splat(ka);
    const Sa = S + (<usize>a * <usize>dv << 3);
    let c = 0;
    for (; c < dv2; c += 2) {
      const vp = f64x2.promote_low_f32x4(v128.load64_zero(v + (<usize>c << 2)));
      const sp = Sa + (<usize>c << 3);
      v128.store(sp, f64x2.add(f64x2.mul(g2, v128.load(sp)), f64x2.mul(k2, vp)));
    }
    if (c < dv) { const sp = Sa + (<usize>c << 3); store<f64>(sp, gamma * load<f64>(sp) + ka * <f64>load<f32>(v + (<usize>c << 2))); }
  }
  let c = 0;
  for (; c < dv2; c += 2) {
    let acc = f64x2.splat(0);
    for (let a = 0; a < dk; a++) {
      acc = f64x2.add(acc, f64x2.mul(f64x2.splat(<f64>load<f32>(q + (<usize>a << 2))), v128.load(S + ((<usize>a * <usize>dv + c) << 3))));
    }
    v128.store_lane<i64>(o + (<usize>c << 2), f32x4.demote_f64x2_zero(acc), 0);
  }
  if (c < dv) {
    let acc: f64 = 0;
    for (let a = 0; a < dk; a++) acc += <f64>load<f32>(q + (<usize>a << 2)) * load<f64>(S + ((<usize>a * <usize>dv + c) << 3));
    store<f32>(o + (<usize>c << 2), <f32>acc);
  }
  step_normalize(dv, o, r, rs, invSqrtC, normRetn);
}

function step_normalize(dv: i32, o: usize, r: usize, rs: f64, invSqrtC: usize, normRetn: i32): void {
  let scale: f64 = 1;
  if (invSqrtC) { const s = <f64>load<f32>(invSqrtC); scale = s; rs *= s; }
  if (normRetn) scale /= max<f64>(1, abs<f64>(rs));
  if (r) store<f32>(r, <f32>rs);
  if (scale != 1) for (let c = 0; c < dv; c++) store<f32>(o + (<usize>c << 2), <f32>(<f64>load<f32>(o + (<usize>c << 2)) * scale));
}

export function f32_retention_step__scalar(dk: i32, dv: i32, q: usize, k: usize, v: usize, gamma: f64,
                                           S: usize, z: usize, o: usize, r: usize, invSqrtC: usize, normRetn: i32): void {
  let rs: f64 = 0;
  for (let a = 0; a < dk; a++) {
    const ka = <f64>load<f32>(k + (<usize>a << 2));
    const zp = z + (<usize>a << 3);
    const za = gamma * load<f64>(zp) + ka;
    store<f64>(zp, za);
    rs += <f64>load<f32>(q + (<usize>a << 2)) * za;
    for (let c = 0; c < dv; c++) {
      const sp = S + ((<usize>a * <usize>dv + c) << 3);
      store<f64>(sp, gamma * load<f64>(sp) + ka * <f64>load<f32>(v + (<usize>c << 2)));
    }
  }
  for (let c = 0; c < dv; c++) {
    let acc: f64 = 0;
    for (let a = 0; a < dk; a++) acc += <f64>load<f32>(q + (<usize>a << 2)) * load<f64>(S + ((<usize>a * <usize>dv + c) << 3));
    store<f32>(o + (<usize>c << 2), <f32>acc);
  }
  step_normalize(dv, o, r, rs, invSqrtC, normRetn);
}
