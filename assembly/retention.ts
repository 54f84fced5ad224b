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

export function f32_retention_intra_rows__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, k: usize, ldk: i32,
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

// Blocked form (f32_retention_intra__wasmsimd). When the scratch has room (n ≥ RB + dk + 8·⌈dv/8⌉)
// k is first copied to [n, dk] contiguous and v to 8-column panels [⌈dv/8⌉, n, 8] (zero-padded):
// the projection rows are Wp floats apart, a multiple of 4 KiB for the seed model, so every row
// of a strided view falls into the same L1 sets. Then, per block of RB rows, three passes:
//  1. scores A[i, j] = (q_i·k_j)·pow[i−j] for j ≤ i in 2×4 tiles: 8 f32x4 accumulators run over dk
//     four terms at a time (lanes = partial sums over t), one 4×4 transpose-add per row yields
//     A[i, j0..j0+3]; tiles above the diagonal are skipped, the few diagonal entries are single dots.
//     Entries j ∈ (i, roundup4(i+1)) ∩ [0, n) are written 0 so pass 3's 4-row tiles may read them.
//  2. r[i] = Σ_{j≤i} A[i, j]: f32x4 lanes, summed in blocks of JC columns, then across blocks.
//  3. o = A v in 4×8 register tiles like the GEMM (8-column panels of v), j summed in
//     blocks of JC from zero and added to o, so a row's float32 error grows like JC + n/JC, not n.

const JC: i32 = 32;
/** Rows of A held at once (RB × n floats at the start of the scratch). */
const RB: i32 = 64;

// [Σa0, Σa1, Σa2, Σa3]: four lane-sums in one vector (a 4×4 transpose-add).
// @ts-ignore: decorator
@inline function sum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 1, 4, 5), v128.shuffle<f32>(a0, a1, 2, 3, 6, 7));
  const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 1, 4, 5), v128.shuffle<f32>(a2, a3, 2, 3, 6, 7));
  return f32x4.add(v128.shuffle<f32>(s01, s23, 0, 2, 4, 6), v128.shuffle<f32>(s01, s23, 1, 3, 5, 7));
}

// pow[i−j0], pow[i−j0−1], pow[i−j0−2], pow[i−j0−3]   (i − j0 ≥ 3)
// @ts-ignore: decorator
@inline function decay4(pow: usize, d: i32): v128 {
  const v = v128.load(pow + (<usize>(d - 3) << 2));
  return v128.shuffle<f32>(v, v, 3, 2, 1, 0);
}

/** Scores for rows q0 (and q1 when two) against k rows j0..j0+3, stored at a0 (a1). */
// @ts-ignore: decorator
@inline function scores_2x4(dk: i32, q0: usize, q1: usize, kj: usize, ldkb: usize, pow: usize, d0: i32,
                            a0: usize, a1: usize, two: bool): void {
  const k0 = kj, k1 = kj + ldkb, k2 = k1 + ldkb, k3 = k2 + ldkb;
  let c00 = f32x4.splat(0), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  const dk4 = dk & ~3;
  let t = 0;
  for (; t < dk4; t += 4) {
    const o = <usize>t << 2;
    const x0 = v128.load(q0 + o);
    const b0 = v128.load(k0 + o), b1 = v128.load(k1 + o), b2 = v128.load(k2 + o), b3 = v128.load(k3 + o);
    c00 = madd(x0, b0, c00); c01 = madd(x0, b1, c01); c02 = madd(x0, b2, c02); c03 = madd(x0, b3, c03);
    if (two) {
      const x1 = v128.load(q1 + o);
      c10 = madd(x1, b0, c10); c11 = madd(x1, b1, c11); c12 = madd(x1, b2, c12); c13 = madd(x1, b3, c13);
    }
  }
  if (t < dk) {
    const o = <usize>t << 2, m = dk - t;
    const x0 = loadN(q0 + o, m);
    const b0 = loadN(k0 + o, m), b1 = loadN(k1 + o, m), b2 = loadN(k2 + o, m), b3 = loadN(k3 + o, m);
    c00 = madd(x0, b0, c00); c01 = madd(x0, b1, c01); c02 = madd(x0, b2, c02); c03 = madd(x0, b3, c03);
    if (two) {
      const x1 = loadN(q1 + o, m);
      c10 = madd(x1, b0, c10); c11 = madd(x1, b1, c11); c12 = madd(x1, b2, c12); c13 = madd(x1, b3, c13);
    }
  }
  v128.store(a0, f32x4.mul(sum4(c00, c01, c02, c03), decay4(pow, d0)));
  if (two) v128.store(a1, f32x4.mul(sum4(c10, c11, c12, c13), decay4(pow, d0 + 1)));
}

/** A[i, jFrom..i] as single dots, then zeros up to min(n, roundup4(i+1)). */
// @ts-ignore: decorator
@inline function scores_diag(i: i32, jFrom: i32, n: i32, dk: i32, qi: usize, k: usize, ldkb: usize, pow: usize, ai: usize): void {
  for (let j = jFrom; j <= i; j++) {
    store<f32>(ai + (<usize>j << 2), dot_simd(qi, k + <usize>j * ldkb, dk) * load<f32>(pow + (<usize>(i - j) << 2)));
  }
  const jz = min(n, (i + 4) & ~3);
  for (let j = i + 1; j < jz; j++) store<f32>(ai + (<usize>j << 2), 0);
}

/** o rows i0..i0+3 (rows < 4 when few), columns c0..c0+nr−1 (nr ≤ 8) += Σ_{j ∈ [j0, j1)} A[i, j] v[j, c]. */
// @ts-ignore: decorator
@inline function av_4x8(j0: i32, j1: i32, a: usize, ldab: usize, v: usize, ldvb: usize, y: usize, ldyb: usize,
                        nr: i32, rows: i32, first: bool, fullLoad: bool): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  // fewer than 4 rows (the last tile): the missing rows re-read the last real one, results dropped
  const a0 = a, a1 = rows > 1 ? a0 + ldab : a0, a2 = rows > 2 ? a1 + ldab : a1, a3 = rows > 3 ? a2 + ldab : a2;
  let vp = v + <usize>j0 * ldvb;
  const full = fullLoad || nr == 8;
  for (let jb = <usize>j0 << 2, je = <usize>j1 << 2; jb < je; jb += 4) {
    let b0: v128, b1: v128;
    if (full) { b0 = v128.load(vp); b1 = v128.load(vp, 16); } else { b0 = loadN(vp, nr); b1 = loadN(vp + 16, nr - 4); }
    let x = v128.load_splat<f32>(a0 + jb);
    c00 = madd(x, b0, c00); c01 = madd(x, b1, c01);
    x = v128.load_splat<f32>(a1 + jb);
    c10 = madd(x, b0, c10); c11 = madd(x, b1, c11);
    x = v128.load_splat<f32>(a2 + jb);
    c20 = madd(x, b0, c20); c21 = madd(x, b1, c21);
    x = v128.load_splat<f32>(a3 + jb);
    c30 = madd(x, b0, c30); c31 = madd(x, b1, c31);
    vp += ldvb;
  }
  add_row(y, c00, c01, nr, first);
  if (rows > 1) add_row(y + ldyb, c10, c11, nr, first);
  if (rows > 2) add_row(y + 2 * ldyb, c20, c21, nr, first);
  if (rows > 3) add_row(y + 3 * ldyb, c30, c31, nr, first);
}

// @ts-ignore: decorator
@inline function add_row(y: usize, c0: v128, c1: v128, nr: i32, first: bool): void {
  if (!first) { c0 = f32x4.add(loadN(y, nr), c0); c1 = f32x4.add(loadN(y + 16, nr - 4), c1); }
  storeN(y, c0, nr);
  storeN(y + 16, c1, nr - 4);
}

export function f32_retention_intra__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, k: usize, ldk: i32,
                                              v: usize, ldv: i32, pow: usize, o: usize, ldo: i32, r: usize, scratch: usize): void {
  if (n <= 0) return;
  const panels = (dv + 7) >> 3;
  const packed = n >= RB + dk + 8 * panels;
  const ldqb = <usize>ldq << 2, ldob = <usize>ldo << 2, ldab = <usize>n << 2;
  let kk = k, ldkb = <usize>ldk << 2, vv = v, ldvb = <usize>ldv << 2, panelb: usize = 32; // panel p starts at vv + p·panelb
  if (packed) {
    kk = scratch + <usize>RB * ldab;
    vv = kk + (<usize>n * <usize>dk << 2);
    copy_rows(n, dk, k, ldkb, kk);
    pack_panels(n, dv, v, ldvb, vv);
    ldkb = <usize>dk << 2; ldvb = 32; panelb = <usize>n << 5;
  }
  for (let b0 = 0; b0 < n; b0 += RB) {
    const bEnd = min(n, b0 + RB);
    const A = scratch - <usize>b0 * ldab; // row i of A at A + i·ldab (only rows of this block are live)
    // 1. scores, two rows at a time
    for (let i0 = b0; i0 < bEnd; i0 += 2) {
      const two = i0 + 1 < bEnd;
      const q0 = q + <usize>i0 * ldqb, a0 = A + <usize>i0 * ldab;
      let j0 = 0;
      for (; j0 + 3 <= i0; j0 += 4) {
        scores_2x4(dk, q0, two ? q0 + ldqb : q0, kk + <usize>j0 * ldkb, ldkb, pow, i0 - j0, a0 + (<usize>j0 << 2), a0 + ldab + (<usize>j0 << 2), two);
      }
      scores_diag(i0, j0, n, dk, q0, kk, ldkb, pow, a0);
      if (two) scores_diag(i0 + 1, j0, n, dk, q0 + ldqb, kk, ldkb, pow, a0 + ldab);
    }
    // 2. row sums, in blocks of JC columns
    for (let i = b0; i < bEnd; i++) {
      const ai = A + <usize>i * ldab;
      const m = i + 1, m4 = m & ~3;
      let tot = f32x4.splat(0);
      let j = 0;
      while (j < m4) {
        const je = min(m4, j + JC);
        let blk = f32x4.splat(0);
        for (; j < je; j += 4) blk = f32x4.add(blk, v128.load(ai + (<usize>j << 2)));
        tot = f32x4.add(tot, blk);
      }
      let tail: f32 = 0;
      for (; j < m; j++) tail += load<f32>(ai + (<usize>j << 2));
      store<f32>(r + (<usize>i << 2), hsum(tot) + tail);
    }
    // 3. o = A v, 4×8 tiles, j in blocks of JC; panel-major so one v panel serves the whole block
    for (let p = 0; p < panels; p++) {
      const nr = min(8, dv - p * 8);
      const vc = vv + <usize>p * panelb;
      for (let i0 = b0; i0 < bEnd; i0 += 4) {
        const rows = min(4, bEnd - i0);
        const jEnd = min(n, i0 + 4);
        const ai = A + <usize>i0 * ldab;
        const oc = o + <usize>i0 * ldob + (<usize>p << 5);
        for (let jb = 0; jb < jEnd; jb += JC) {
          av_4x8(jb, min(jEnd, jb + JC), ai, ldab, vc, ldvb, oc, ldob, nr, rows, jb == 0, packed);
        }
      }
    }
  }
}

/** dst [n, m] contiguous ← src [n, m] row stride srcb bytes. */
function copy_rows(n: i32, m: i32, src: usize, srcb: usize, dst: usize): void {
  const bytes = <usize>m << 2;
  for (let i = 0; i < n; i++) { memory.copy(dst, src, bytes); dst += bytes; src += srcb; }
}

/** dst [⌈m/8⌉, n, 8] ← src [n, m] (row stride srcb bytes), zero past m. */
function pack_panels(n: i32, m: i32, src: usize, srcb: usize, dst: usize): void {
  const panels = (m + 7) >> 3;
  for (let p = 0; p < panels; p++) {
    const nr = min(8, m - p * 8);
    let s = src + (<usize>p << 5);
    let d = dst + ((<usize>p * <usize>n) << 5);
    for (let j = 0; j < n; j++) {
      v128.store(d, loadN(s, nr));
      v128.store(d, loadN(s + 16, nr - 4), 16);
      s += srcb; d += 32;
    }
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

// S in 4×8 register tiles (a × c) over j: ζ_j·k[j, a..a+3] is one load and a multiply, its four
// lanes splatted by shuffles; v[j, c..c+7] two loads; 8 multiply-adds. j is summed in blocks of
// JC from zero, each block then added to S (and z likewise): error ∝ JC + n/JC instead of n.
export function f32_retention_summary__wasmsimd(n: i32, dk: i32, dv: i32, k: usize, ldk: i32, v: usize, ldv: i32,
                                                pow: usize, S: usize, z: usize): void {
  const ldkb = <usize>ldk << 2, ldvb = <usize>ldv << 2, ldsb = <usize>dv << 2;
  // block-major: one block's k and v rows (JC of them) serve every tile while in cache
  for (let jb = 0; jb < n || jb == 0; jb += JC) {
    const je = min(n, jb + JC), first = jb == 0;
    for (let a0 = 0; a0 < dk; a0 += 4) {
      const ar = min(4, dk - a0);
      // z[a0..a0+ar) (=|+=) Σ_{j in block} ζ_j k[j, a]
      let zb = f32x4.splat(0);
      let kp = k + <usize>jb * ldkb + (<usize>a0 << 2);
      for (let j = jb; j < je; j++) { zb = madd(loadN(kp, ar), v128.load_splat<f32>(pow + (<usize>(n - 1 - j) << 2)), zb); kp += ldkb; }
      const zp = z + (<usize>a0 << 2);
      storeN(zp, first ? zb : f32x4.add(loadN(zp, ar), zb), ar);
      for (let c0 = 0; c0 < dv; c0 += 8) {
        summary_4x8(jb, je, n, ar, min(8, dv - c0), k + (<usize>a0 << 2), ldkb, v + (<usize>c0 << 2), ldvb, pow,
                    S + <usize>a0 * ldsb + (<usize>c0 << 2), ldsb, first);
      }
    }
  }
}

/** S tile rows a0..a0+ar−1, columns c0..c0+nr−1 (=|+=) Σ_{j ∈ [j0, j1)} ζ_j k[j, a] v[j, c]. */
// @ts-ignore: decorator
@inline function summary_4x8(j0: i32, j1: i32, n: i32, ar: i32, nr: i32, k: usize, ldkb: usize, v: usize, ldvb: usize,
                             pow: usize, sp: usize, ldsb: usize, first: bool): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  let kp = k + <usize>j0 * ldkb, vp = v + <usize>j0 * ldvb;
  for (let j = j0; j < j1; j++) {
    const kz = f32x4.mul(loadN(kp, ar), v128.load_splat<f32>(pow + (<usize>(n - 1 - j) << 2)));
    let b0: v128, b1: v128;
    if (nr == 8) { b0 = v128.load(vp); b1 = v128.load(vp, 16); } else { b0 = loadN(vp, nr); b1 = loadN(vp + 16, nr - 4); }
    let x = v128.shuffle<f32>(kz, kz, 0, 0, 0, 0);
    c00 = madd(x, b0, c00); c01 = madd(x, b1, c01);
    x = v128.shuffle<f32>(kz, kz, 1, 1, 1, 1);
    c10 = madd(x, b0, c10); c11 = madd(x, b1, c11);
    x = v128.shuffle<f32>(kz, kz, 2, 2, 2, 2);
    c20 = madd(x, b0, c20); c21 = madd(x, b1, c21);
    x = v128.shuffle<f32>(kz, kz, 3, 3, 3, 3);
    c30 = madd(x, b0, c30); c31 = madd(x, b1, c31);
    kp += ldkb; vp += ldvb;
  }
  add_row(sp, c00, c01, nr, first);
  if (ar > 1) add_row(sp + ldsb, c10, c11, nr, first);
  if (ar > 2) add_row(sp + 2 * ldsb, c20, c21, nr, first);
  if (ar > 3) add_row(sp + 3 * ldsb, c30, c31, nr, first);
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

// o += diag(ξ) Q S in 4×8 register tiles (i × c) over a (q[i, a] splat loads, S[a, c..c+7] two
// loads), the tile times ξ_i added to o; r[i] += ξ_i (q_i·z).
export function f32_retention_cross__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, pow: usize,
                                              S: usize, z: usize, o: usize, ldo: i32, r: usize): void {
  const ldqb = <usize>ldq << 2, ldob = <usize>ldo << 2, ldsb = <usize>dv << 2;
  for (let i = 0; i < n; i++) {
    const rp = r + (<usize>i << 2);
    store<f32>(rp, load<f32>(rp) + load<f32>(pow + (<usize>(i + 1) << 2)) * dot_simd(q + <usize>i * ldqb, z, dk));
  }
  for (let i0 = 0; i0 < n; i0 += 4) {
    const rows = min(4, n - i0);
    const q0 = q + <usize>i0 * ldqb;
    const q1 = rows > 1 ? q0 + ldqb : q0, q2 = rows > 2 ? q1 + ldqb : q1, q3 = rows > 3 ? q2 + ldqb : q2;
    const o0 = o + <usize>i0 * ldob;
    for (let c0 = 0; c0 < dv; c0 += 8) {
      const nr = min(8, dv - c0);
      let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      let sp = S + (<usize>c0 << 2);
      for (let ab: usize = 0, ae = <usize>dk << 2; ab < ae; ab += 4) {
        let b0: v128, b1: v128;
        if (nr == 8) { b0 = v128.load(sp); b1 = v128.load(sp, 16); } else { b0 = loadN(sp, nr); b1 = loadN(sp + 16, nr - 4); }
        let x = v128.load_splat<f32>(q0 + ab);
        c00 = madd(x, b0, c00); c01 = madd(x, b1, c01);
        x = v128.load_splat<f32>(q1 + ab);
        c10 = madd(x, b0, c10); c11 = madd(x, b1, c11);
        x = v128.load_splat<f32>(q2 + ab);
        c20 = madd(x, b0, c20); c21 = madd(x, b1, c21);
        x = v128.load_splat<f32>(q3 + ab);
        c30 = madd(x, b0, c30); c31 = madd(x, b1, c31);
        sp += ldsb;
      }
      const oc = o0 + (<usize>c0 << 2);
      cross_row(oc, c00, c01, pow, i0, nr);
      if (rows > 1) cross_row(oc + ldob, c10, c11, pow, i0 + 1, nr);
      if (rows > 2) cross_row(oc + 2 * ldob, c20, c21, pow, i0 + 2, nr);
      if (rows > 3) cross_row(oc + 3 * ldob, c30, c31, pow, i0 + 3, nr);
    }
  }
}

// o[i, c..c+nr) += ξ_i · (c0 | c1)
// @ts-ignore: decorator
@inline function cross_row(op: usize, c0: v128, c1: v128, pow: usize, i: i32, nr: i32): void {
  const xi = v128.load_splat<f32>(pow + (<usize>(i + 1) << 2));
  storeN(op, madd(xi, c0, loadN(op, nr)), nr);
  storeN(op + 16, madd(xi, c1, loadN(op + 16, nr - 4)), nr - 4);
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
