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
import { panel_tile_4x8, store_4x4_transposed, EPI_ADD, EPI_SCALED, LOAD } from './tiles';

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

// ------------------------------------------------------------------ scratch
// Bytes of scratch f32_retention_intra / _summary / _cross (SIMD and scalar) need for chunks of up to
// n tokens: the largest of
//   intra:   A in 4-row groups for a block of min(RB, n4) rows, [n4][4] each  min(RB, n4)·n4
//            + k copied contiguous                                            n·dk (rounded up to 4)
//            + v in 8-column panels                                           n·8⌈dv/8⌉
//   summary: ζk in 4-column groups + v in panels (less than intra's)          n·4⌈dk/4⌉ + n·8⌈dv/8⌉
//   cross:   S in 8-column panels + one 4-row group of q                      dk·8⌈dv/8⌉ + 16⌈dk/4⌉
// (n4 = n rounded up to 4). src/runtime/kernels.ts mirrors this (tileFloats) and a test holds them equal.
export function f32_retention_scratch_size(n: i32, dk: i32, dv: i32): i32 {
  const n4 = (n + 3) & ~3, dv8 = (dv + 7) & ~7, dk4 = (dk + 3) & ~3;
  const intra = min(RB, n4) * n4 + ((n * dk + 3) & ~3) + n * dv8;
  const cross = dk * dv8 + 4 * dk4;
  return max(intra, cross) << 2;
}

// ---------------------------------------------------------------- intra-chunk
// o[i,:] = Σ_{j≤i} A[i,j] v_j,  r[i] = Σ_{j≤i} A[i,j],  A[i,j] = (q_i·k_j) pow[i−j]  (o, r overwritten)
// scratch: f32_retention_scratch_size(n, dk, dv) bytes (the row kernel and the scalar twin use n floats: one row of A)

// The former kernel, one row of A at a time (kept as the baseline of the tests and benchmarks).
export function f32_retention_intra_rows__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, k: usize, ldk: i32,
                                              v: usize, ldv: i32, pow: usize, o: usize, ldo: i32, r: usize, scratch: usize): void {
  for (let i = 0; i < n; i++) {
    const qi = q + (<usize>i * <usize>ldq << 2);
    let rs: f32 = 0;
    for (let j = 0; j <= i; j++) {
      const s = dot_simd(qi, k + (<usize>j * <usize>ldk << 2), dk) * load<f32>(pow + (<usize>(i - j) << 2));
      store<f32>(scratch + (<usize>j << 2), s);
      rs += s;
    }
    store<f32>(r + (<usize>i << 2), rs);
    const oi = o + (<usize>i * <usize>ldo << 2);
    zero(dv, oi);
    for (let j = 0; j <= i; j++) axpy_simd(dv, load<f32>(scratch + (<usize>j << 2)), v + (<usize>j * <usize>ldv << 2), oi);
  }
}

// Blocked form. k is first copied to [n, dk] contiguous and v to 8-column panels [⌈dv/8⌉, n, 8]
// (zero-padded): the projection rows are Wp floats apart, a multiple of 4 KiB for the seed model,
// so every row of a strided view would fall into the same L1 sets. A is held in groups of 4 rows,
// column-major within a group (Ap[g][j][r], the packed-x layout of the GEMM), for a block of RB
// rows at a time. Per block, three passes:
//  1. scores, 4 rows × 4 columns at a time: two 2×4 passes of 8 f32x4 accumulators over dk, four
//     terms at a time (lanes = partial sums over t); a transpose-add per pair of rows gives
//     [A[i,j], A[i+1,j], A[i,j+1], A[i+1,j+1]]-style vectors, two shuffles make the columns, and
//     each column is multiplied by its decays pow[i−j..i−j+3] (one contiguous load). The diagonal
//     4×4 block is masked (exact zeros above the diagonal, whatever q·k is).
//  2. r: per group, the columns summed as vectors (lanes = rows) in blocks of JC, then across blocks.
//  3. o = A v in 4×8 register tiles exactly like the packed GEMM (a 4-row column of A is one
//     splat-load each, v's panel row two loads), j summed in blocks of JC from zero and added to o,
//     so a row's float32 error grows like JC + n/JC, not n; j in ranges of JR so one panel's
//     slice stays in L1 while every group of the block passes over it.
// Error of A: dk/4 terms per lane + the transpose-add (2) + the decay (1) roundings.

const JC: i32 = 32;
/** Rows of A held at once (RB/4 groups of [n4][4] floats at the start of the scratch). */
const RB: i32 = 64;
/** Columns j of one pass of the A·v tiles over a block (JR·32 bytes of a v panel). */
const JR: i32 = 256;

// [Σa0, Σa1, Σa2, Σa3]: four lane-sums in one vector (a 4×4 transpose-add).
// @ts-ignore: decorator
@inline function sum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 1, 4, 5), v128.shuffle<f32>(a0, a1, 2, 3, 6, 7));
  const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 1, 4, 5), v128.shuffle<f32>(a2, a3, 2, 3, 6, 7));
  return f32x4.add(v128.shuffle<f32>(s01, s23, 0, 2, 4, 6), v128.shuffle<f32>(s01, s23, 1, 3, 5, 7));
}

/** Rows a, b against k rows k0..k0+3: stores [a·k0, b·k0, a·k1, b·k1] at out, [a·k2, b·k2, a·k3, b·k3] at out + 16. */
// @ts-ignore: decorator
@inline function dots_2x4(dk: i32, qa: usize, qb: usize, k0: usize, ldkb: usize, out: usize): void {
  const k1 = k0 + ldkb, k2 = k1 + ldkb, k3 = k2 + ldkb;
  let c00 = f32x4.splat(0), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  const dk4 = dk & ~3;
  let t = 0;
  for (; t < dk4; t += 4) {
    const o = <usize>t << 2;
    const x0 = v128.load(qa + o), x1 = v128.load(qb + o);
    const b0 = v128.load(k0 + o), b1 = v128.load(k1 + o), b2 = v128.load(k2 + o), b3 = v128.load(k3 + o);
    c00 = madd(x0, b0, c00); c01 = madd(x0, b1, c01); c02 = madd(x0, b2, c02); c03 = madd(x0, b3, c03);
    c10 = madd(x1, b0, c10); c11 = madd(x1, b1, c11); c12 = madd(x1, b2, c12); c13 = madd(x1, b3, c13);
  }
  if (t < dk) {
    const o = <usize>t << 2, m = dk - t;
    const x0 = loadN(qa + o, m), x1 = loadN(qb + o, m);
    const b0 = loadN(k0 + o, m), b1 = loadN(k1 + o, m), b2 = loadN(k2 + o, m), b3 = loadN(k3 + o, m);
    c00 = madd(x0, b0, c00); c01 = madd(x0, b1, c01); c02 = madd(x0, b2, c02); c03 = madd(x0, b3, c03);
    c10 = madd(x1, b0, c10); c11 = madd(x1, b1, c11); c12 = madd(x1, b2, c12); c13 = madd(x1, b3, c13);
  }
  v128.store(out, sum4(c00, c10, c01, c11));
  v128.store(out, sum4(c02, c12, c03, c13), 16);
}

/** A for rows i..i+3 (q row pointers q0..q3) × columns j..j+3 (k rows from kj), d = i − j, stored
 *  column-major at ap (ap[c][r] = A[i+r, j+c]); diag: j = i, entries above the diagonal set to 0. */
// @ts-ignore: decorator
@inline function scores_4x4(dk: i32, q0: usize, q1: usize, q2: usize, q3: usize, kj: usize, ldkb: usize,
                            pow: usize, d: i32, diag: bool, ap: usize): void {
  dots_2x4(dk, q0, q1, kj, ldkb, ap);
  dots_2x4(dk, q2, q3, kj, ldkb, ap + 32);
  const x = v128.load(ap), y = v128.load(ap, 16), x2 = v128.load(ap, 32), y2 = v128.load(ap, 48);
  let c0 = v128.shuffle<f32>(x, x2, 0, 1, 4, 5), c1 = v128.shuffle<f32>(x, x2, 2, 3, 6, 7);
  let c2 = v128.shuffle<f32>(y, y2, 0, 1, 4, 5), c3 = v128.shuffle<f32>(y, y2, 2, 3, 6, 7);
  if (!diag) {
    // column c, row r: pow[d + r − c]
    c0 = f32x4.mul(c0, v128.load(pow + (<usize>d << 2)));
    c1 = f32x4.mul(c1, v128.load(pow + (<usize>(d - 1) << 2)));
    c2 = f32x4.mul(c2, v128.load(pow + (<usize>(d - 2) << 2)));
    c3 = f32x4.mul(c3, v128.load(pow + (<usize>(d - 3) << 2)));
  } else {
    const p = v128.load(pow), z = f32x4.splat(0);
    c0 = f32x4.mul(c0, p);
    c1 = v128.and(f32x4.mul(c1, v128.shuffle<f32>(z, p, 0, 4, 5, 6)), i32x4(0, -1, -1, -1));
    c2 = v128.and(f32x4.mul(c2, v128.shuffle<f32>(z, p, 0, 0, 4, 5)), i32x4(0, 0, -1, -1));
    c3 = v128.and(f32x4.mul(c3, v128.shuffle<f32>(z, p, 0, 0, 0, 4)), i32x4(0, 0, 0, -1));
  }
  v128.store(ap, c0); v128.store(ap, c1, 16); v128.store(ap, c2, 32); v128.store(ap, c3, 48);
}

/** The last diagonal block when fewer than 4 rows are left (rows i0..n−1): single dots, zeros elsewhere. */
function scores_tail(dk: i32, n: i32, i0: i32, q0: usize, ldqb: usize, kk: usize, ldkb: usize, pow: usize, ap: usize): void {
  for (let c = 0; c < 4; c++) {
    for (let rr = 0; rr < 4; rr++) {
      let s: f32 = 0;
      if (c <= rr && i0 + rr < n) s = dot_simd(q0 + <usize>rr * ldqb, kk + <usize>(i0 + c) * ldkb, dk) * load<f32>(pow + (<usize>(rr - c) << 2));
      store<f32>(ap + (<usize>(c * 4 + rr) << 2), s);
    }
  }
}

/** y rows (≤ 4) × columns (nr ≤ 8) (=|+=, += when !first) Σ_{j<kc} ap[j][r]·vp[j][c] (ap: [kc][4], vp: [kc][8]):
 *  the packed GEMM's tile (tiles.ts). */
// @ts-ignore: decorator
@inline function tile_4x8(kc: i32, ap: usize, vp: usize, y: usize, ldyb: usize, nr: i32, rows: i32, first: bool): void {
  // full tiles with constant epilogue flags (see the GEMM's tile_4x8_packed)
  if (nr == 8 && rows == 4) {
    if (first) panel_tile_4x8(kc, ap, vp, y, ldyb, 8, 4, EPI_ADD, 0, 0, 0, 0);
    else panel_tile_4x8(kc, ap, vp, y, ldyb, 8, 4, EPI_ADD, 0, 0, LOAD, 0);
  } else {
    panel_tile_4x8(kc, ap, vp, y, ldyb, nr, rows, EPI_ADD, 0, 0, first ? 0 : LOAD, 0);
  }
}

export function f32_retention_intra__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, k: usize, ldk: i32,
                                              v: usize, ldv: i32, pow: usize, o: usize, ldo: i32, r: usize, scratch: usize): void {
  if (n <= 0) return;
  const panels = (dv + 7) >> 3, n4 = (n + 3) & ~3;
  const ldqb = <usize>ldq << 2, ldob = <usize>ldo << 2, ldkb = <usize>dk << 2;
  const groupb = <usize>n4 << 4;                         // one group of A: [n4][4] floats
  const kk = scratch + <usize>(min(RB, n4) >> 2) * groupb; // k: [n, dk]
  const vv = kk + (<usize>((n * dk + 3) & ~3) << 2);      // v: [panels][n][8]
  const panelb = <usize>n << 5;
  copy_rows(n, dk, k, <usize>ldk << 2, kk);
  pack_panels(n, dv, v, <usize>ldv << 2, vv);
  for (let b0 = 0; b0 < n; b0 += RB) {
    const bEnd = min(n, b0 + RB);
    // 1. scores: group of rows i0..i0+3 against columns j < i0 in full 4×4 blocks, then its diagonal block
    for (let i0 = b0; i0 < bEnd; i0 += 4) {
      const ag = scratch + <usize>((i0 - b0) >> 2) * groupb;
      // in the last group, rows past n re-read row n−1 (their lanes are never used)
      const q0 = q + <usize>i0 * ldqb, last = q + <usize>(n - 1) * ldqb;
      const q1 = min(q0 + ldqb, last), q2 = min(q0 + 2 * ldqb, last), q3 = min(q0 + 3 * ldqb, last);
      for (let j0 = 0; j0 < i0; j0 += 4) scores_4x4(dk, q0, q1, q2, q3, kk + <usize>j0 * ldkb, ldkb, pow, i0 - j0, false, ag + (<usize>j0 << 4));
      if (i0 + 4 <= n) scores_4x4(dk, q0, q1, q2, q3, kk + <usize>i0 * ldkb, ldkb, pow, 0, true, ag + (<usize>i0 << 4));
      else scores_tail(dk, n, i0, q0, ldqb, kk, ldkb, pow, ag + (<usize>i0 << 4));
    }
    // 2. row sums
    for (let i0 = b0; i0 < bEnd; i0 += 4) {
      const ag = scratch + <usize>((i0 - b0) >> 2) * groupb;
      const m = min(n, i0 + 4);
      let tot = f32x4.splat(0);
      for (let j = 0; j < m;) {
        const je = min(m, j + JC);
        let blk = f32x4.splat(0);
        for (; j < je; j++) blk = f32x4.add(blk, v128.load(ag + (<usize>j << 4)));
        tot = f32x4.add(tot, blk);
      }
      storeN(r + (<usize>i0 << 2), tot, min(4, n - i0));
    }
    // 3. o = A v
    const bjEnd = min(n, bEnd + 3);
    for (let jr = 0; jr < bjEnd; jr += JR) {
      for (let p = 0; p < panels; p++) {
        const nr = min(8, dv - p * 8);
        const vc = vv + <usize>p * panelb;
        for (let i0 = b0; i0 < bEnd; i0 += 4) {
          const jEnd = min(min(n, i0 + 4), jr + JR);
          const ag = scratch + <usize>((i0 - b0) >> 2) * groupb;
          const oc = o + <usize>i0 * ldob + (<usize>p << 5);
          for (let jb = jr; jb < jEnd; jb += JC) {
            tile_4x8(min(jEnd, jb + JC) - jb, ag + (<usize>jb << 4), vc + (<usize>jb << 5), oc, ldob, nr, min(4, bEnd - i0), jb == 0);
          }
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
    let rs: f32 = 0;
    for (let j = 0; j <= i; j++) {
      const kj = k + (<usize>j * <usize>ldk << 2);
      let d: f32 = 0;
      for (let t = 0; t < dk; t++) d += load<f32>(qi + (<usize>t << 2)) * load<f32>(kj + (<usize>t << 2));
      const s = d * load<f32>(pow + (<usize>(i - j) << 2));
      store<f32>(scratch + (<usize>j << 2), s);
      rs += s;
    }
    store<f32>(r + (<usize>i << 2), rs);
    const oi = o + (<usize>i * <usize>ldo << 2);
    for (let c = 0; c < dv; c++) {
      let acc: f32 = 0;
      for (let j = 0; j <= i; j++) acc += load<f32>(scratch + (<usize>j << 2)) * load<f32>(v + ((<usize>j * <usize>ldv + c) << 2));
      store<f32>(oi + (<usize>c << 2), acc);
    }
  }
}

// ------------------------------------------------------------- chunk summary
// S[a,:] = Σ_j ζ_j k_j[a] v_j,  z[a] = Σ_j ζ_j k_j[a],  ζ_j = pow[n−1−j]   (S, z overwritten, f32)

// A GEMM with K = the chunk's tokens: ζ_j·k[j, a..a+3] is packed per 4-column group (Zp[g][j][4],
// one vector multiply per row and group) and v in 8-column panels, then S in the 4×8 tiles of
// the intra kernel's A·v; j summed in blocks of JC from zero, each block added to S (and z
// likewise, as vectors over Zp): error ∝ JC + n/JC instead of n.
export function f32_retention_summary__wasmsimd(n: i32, dk: i32, dv: i32, k: usize, ldk: i32, v: usize, ldv: i32,
                                                pow: usize, S: usize, z: usize, scratch: usize): void {
  if (n <= 0) { memory.fill(S, 0, <usize>(dk * dv) << 2); memory.fill(z, 0, <usize>dk << 2); return; }
  const ldkb = <usize>ldk << 2, ldsb = <usize>dv << 2;
  const groups = (dk + 3) >> 2, panels = (dv + 7) >> 3;
  const groupb = <usize>n << 4, panelb = <usize>n << 5;
  const zp = scratch, vv = scratch + <usize>groups * groupb;
  for (let j = 0; j < n; j++) {
    const zeta = v128.load_splat<f32>(pow + (<usize>(n - 1 - j) << 2));
    const kj = k + <usize>j * ldkb;
    for (let g = 0; g < groups; g++) {
      v128.store(zp + <usize>g * groupb + (<usize>j << 4), f32x4.mul(loadN(kj + (<usize>g << 4), min(4, dk - g * 4)), zeta));
    }
  }
  pack_panels(n, dv, v, <usize>ldv << 2, vv);
  // block-major: one block of Zp and of the panels serves every tile while in cache
  for (let jb = 0; jb < n; jb += JC) {
    const kc = min(n, jb + JC) - jb, first = jb == 0;
    for (let g = 0; g < groups; g++) {
      const ar = min(4, dk - g * 4);
      const ag = zp + <usize>g * groupb + (<usize>jb << 4);
      let zb = f32x4.splat(0);
      for (let j = 0; j < kc; j++) zb = f32x4.add(zb, v128.load(ag + (<usize>j << 4)));
      const zg = z + (<usize>g << 4);
      storeN(zg, first ? zb : f32x4.add(loadN(zg, ar), zb), ar);
      const sg = S + <usize>(g * 4) * ldsb;
      for (let p = 0; p < panels; p++) {
        tile_4x8(kc, ag, vv + <usize>p * panelb + (<usize>jb << 5), sg + (<usize>p << 5), ldsb, min(8, dv - p * 8), ar, first);
      }
    }
  }
}

export function f32_retention_summary__scalar(n: i32, dk: i32, dv: i32, k: usize, ldk: i32, v: usize, ldv: i32,
                                              pow: usize, S: usize, z: usize, scratch: usize): void {
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

// o += diag(ξ) Q S as a GEMM with K = dk: S in 8-column panels (Sp[p][a][8]), each group of 4 q
// rows transposed into Qp[a][4], the 4×8 tiles of the intra kernel with ξ_i applied on the way
// into o; r[i] += ξ_i (q_i·z) as vectors over Qp (lanes = rows).
export function f32_retention_cross__wasmsimd(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, pow: usize,
                                              S: usize, z: usize, o: usize, ldo: i32, r: usize, scratch: usize): void {
  if (n <= 0) return;
  const ldqb = <usize>ldq << 2, ldob = <usize>ldo << 2;
  const panels = (dv + 7) >> 3, panelb = <usize>dk << 5;
  const sp = scratch, qp = scratch + <usize>panels * panelb;
  pack_panels(dk, dv, S, <usize>dv << 2, sp);
  const last = q + <usize>(n - 1) * ldqb;
  for (let i0 = 0; i0 < n; i0 += 4) {
    const rows = min(4, n - i0);
    const q0 = q + <usize>i0 * ldqb;
    pack_rows_4(dk, q0, min(q0 + ldqb, last), min(q0 + 2 * ldqb, last), min(q0 + 3 * ldqb, last), qp);
    let acc = f32x4.splat(0);
    for (let a = 0; a < dk; a++) acc = madd(v128.load(qp + (<usize>a << 4)), v128.load_splat<f32>(z + (<usize>a << 2)), acc);
    const xi = pow + (<usize>(i0 + 1) << 2), rp = r + (<usize>i0 << 2);
    storeN(rp, madd(loadN(xi, rows), acc, loadN(rp, rows)), rows);
    const o0 = o + <usize>i0 * ldob;
    for (let p = 0; p < panels; p++) {
      const nr = min(8, dv - p * 8), sp_ = sp + <usize>p * panelb, op = o0 + (<usize>p << 5);
      if (nr == 8 && rows == 4) panel_tile_4x8(dk, qp, sp_, op, ldob, 8, 4, EPI_SCALED, 0, 0, 0, xi);
      else panel_tile_4x8(dk, qp, sp_, op, ldob, nr, rows, EPI_SCALED, 0, 0, 0, xi);
    }
  }
}

/** dst [⌈m/4⌉·4][4] ← four rows r0..r3 of m floats, transposed (dst[a][i] = r_i[a]; zero past m). */
function pack_rows_4(m: i32, r0: usize, r1: usize, r2: usize, r3: usize, dst: usize): void {
  for (let a = 0; a < m; a += 4) {
    const o = <usize>a << 2, w = min(4, m - a);
    const v0 = loadN(r0 + o, w), v1 = loadN(r1 + o, w), v2 = loadN(r2 + o, w), v3 = loadN(r3 + o, w);
    store_4x4_transposed(v0, v1, v2, v3, dst);
    dst += 64;
  }
}

export function f32_retention_cross__scalar(n: i32, dk: i32, dv: i32, q: usize, ldq: i32, pow: usize,
                                            S: usize, z: usize, o: usize, ldo: i32, r: usize, scratch: usize): void {
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

//   acc // [dv] f64 scratch, or 0. Given, S is read and written once (the output's sums run
//   alongside the update, row by row of S, in the same order a = 0..dk−1, from 0, as the
//   two-pass path: bit for bit the same o); without it, a second pass reads S by columns.
export function f32_retention_step__wasmsimd(dk: i32, dv: i32, q: usize, k: usize, v: usize, gamma: f64,
                                             S: usize, z: usize, o: usize, r: usize, invSqrtC: usize, normRetn: i32, acc: usize): void {
  if (acc) { retention_step_fused(dk, dv, q, k, v, gamma, S, z, o, r, invSqrtC, normRetn, acc); return; }
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

function retention_step_fused(dk: i32, dv: i32, q: usize, k: usize, v: usize, gamma: f64,
                              S: usize, z: usize, o: usize, r: usize, invSqrtC: usize, normRetn: i32, acc: usize): void {
  const g2 = f64x2.splat(gamma);
  const dv2 = dv & ~1;
  memory.fill(acc, 0, <usize>dv << 3);
  let rs: f64 = 0;
  for (let a = 0; a < dk; a++) {
    const ka = <f64>load<f32>(k + (<usize>a << 2));
    const qa = <f64>load<f32>(q + (<usize>a << 2));
    const zp = z + (<usize>a << 3);
    const za = gamma * load<f64>(zp) + ka;
    store<f64>(zp, za);
    rs += qa * za;
    const k2 = f64x2.splat(ka), q2 = f64x2.splat(qa);
    const Sa = S + (<usize>a * <usize>dv << 3);
    let c = 0;
    for (; c < dv2; c += 2) {
      const vp = f64x2.promote_low_f32x4(v128.load64_zero(v + (<usize>c << 2)));
      const sp = Sa + (<usize>c << 3), ap = acc + (<usize>c << 3);
      const sn = f64x2.add(f64x2.mul(g2, v128.load(sp)), f64x2.mul(k2, vp));
      v128.store(sp, sn);
      v128.store(ap, f64x2.add(v128.load(ap), f64x2.mul(q2, sn)));
    }
    if (c < dv) {
      const sp = Sa + (<usize>c << 3), ap = acc + (<usize>c << 3);
      const sn = gamma * load<f64>(sp) + ka * <f64>load<f32>(v + (<usize>c << 2));
      store<f64>(sp, sn);
      store<f64>(ap, load<f64>(ap) + qa * sn);
    }
  }
  let c = 0;
  for (; c < dv2; c += 2) v128.store_lane<i64>(o + (<usize>c << 2), f32x4.demote_f64x2_zero(v128.load(acc + (<usize>c << 3))), 0);
  if (c < dv) store<f32>(o + (<usize>c << 2), <f32>load<f64>(acc + (<usize>c << 3)));
  step_normalize(dv, o, r, rs, invSqrtC, normRetn);
}

/** The recurrent step with a float32 S (a state of dtype float32), one pass, S's update in float32
 *  arithmetic (four lanes): S[a,c] ← f32(f32(γ₃₂·S[a,c]) + f32(k_a·v_c)), γ₃₂ = f32(γ); z (float64) ←
 *  γz + k; o = q·S of the updated S, summed in float64 in the [dv] float64 scratch `acc` (row order);
 *  r = q·z; then normalized as f32_retention_step. */
export function f32_retention_step_s32__wasmsimd(dk: i32, dv: i32, q: usize, k: usize, v: usize, gamma: f64,
                                                 S: usize, z: usize, o: usize, r: usize, invSqrtC: usize, normRetn: i32, acc: usize): void {
  const g32 = <f32>gamma;
  const g4 = f32x4.splat(g32);
  const dv4 = dv & ~3;
  memory.fill(acc, 0, <usize>dv << 3);
  let rs: f64 = 0;
  for (let a = 0; a < dk; a++) {
    const k32 = load<f32>(k + (<usize>a << 2));
    const qa = <f64>load<f32>(q + (<usize>a << 2));
    const zp = z + (<usize>a << 3);
    const za = gamma * load<f64>(zp) + <f64>k32;
    store<f64>(zp, za);
    rs += qa * za;
    const k4 = f32x4.splat(k32), q2 = f64x2.splat(qa);
    const Sa = S + (<usize>a * <usize>dv << 2);
    let c = 0;
    for (; c < dv4; c += 4) {
      const sp = Sa + (<usize>c << 2), ap = acc + (<usize>c << 3);
      const sn = f32x4.add(f32x4.mul(g4, v128.load(sp)), f32x4.mul(k4, v128.load(v + (<usize>c << 2))));
      v128.store(sp, sn);
      v128.store(ap, f64x2.add(v128.load(ap), f64x2.mul(q2, f64x2.promote_low_f32x4(sn))));
      v128.store(ap, f64x2.add(v128.load(ap, 16), f64x2.mul(q2, f64x2.promote_low_f32x4(i32x4.shuffle(sn, sn, 2, 3, 0, 1)))), 16);
    }
    for (; c < dv; c++) {
      const sp = Sa + (<usize>c << 2), ap = acc + (<usize>c << 3);
      const sn: f32 = g32 * load<f32>(sp) + k32 * load<f32>(v + (<usize>c << 2));
      store<f32>(sp, sn);
      store<f64>(ap, load<f64>(ap) + qa * <f64>sn);
    }
  }
  const dv2 = dv & ~1;
  let c = 0;
  for (; c < dv2; c += 2) v128.store_lane<i64>(o + (<usize>c << 2), f32x4.demote_f64x2_zero(v128.load(acc + (<usize>c << 3))), 0);
  if (c < dv) store<f32>(o + (<usize>c << 2), <f32>load<f64>(acc + (<usize>c << 3)));
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
