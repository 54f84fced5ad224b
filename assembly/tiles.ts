// The 4×8 register tile over packed operands that the GEMM and the retention kernels share, and
// its epilogues. Not re-exported by index.ts: everything here is inlined into its callers.
//
//   ap // [kc][4]  the left operand, 4 rows transposed (the GEMM's packed x; A, ζk or q groups)
//   wp // [kc][8]  the right operand, one 8-column panel (the GEMM's packed W; v or S panels)
// Each step: two panel loads, four splat loads at constant offsets from one pointer, 8 multiply-adds.
import { madd, loadN, storeN, actv } from './common';

// mode bits of the GEMM epilogue for one K block of one tile
export const LOAD: i32 = 1; // add y (partial sums of earlier K blocks, or y itself when accumulating) to this block's sum
export const FIN: i32 = 2;  // last K block: add bias, apply activation
export const ADDY: i32 = 4; // after the activation add the old y (accumulate with an activation; K is then not blocked)

/** Epilogues: the GEMM's (bias, activation, mode bits); y (=|+=) the tile (mode & LOAD: +=);
 *  y[r] += xi[r]·(tile row r) (the cross term's ξ). */
export const EPI_GEMM: i32 = 0, EPI_ADD: i32 = 1, EPI_SCALED: i32 = 2;

/** y rows (`rows` ≤ 4, all 4 for EPI_GEMM) × columns (nr ≤ 8) ← Σ_{k<kc} ap[k][r]·wp[k][c], then the epilogue. */
// @ts-ignore: decorator
@inline export function panel_tile_4x8(kc: i32, ap: usize, wp: usize, y: usize, ldyb: usize, nr: i32, rows: i32,
                                       epi: i32, bias: usize, act: i32, mode: i32, xi: usize): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const aend = ap + (<usize>kc << 4);
  for (; ap < aend; ap += 16) {
    const b0 = v128.load(wp), b1 = v128.load(wp, 16);
    let a = v128.load_splat<f32>(ap);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load_splat<f32>(ap, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load_splat<f32>(ap, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load_splat<f32>(ap, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    wp += 32;
  }
  const y1 = y + ldyb, y2 = y1 + ldyb, y3 = y2 + ldyb;
  if (epi == EPI_GEMM) {
    finish(c00, c01, bias, nr, act, mode, y);
    finish(c10, c11, bias, nr, act, mode, y1);
    finish(c20, c21, bias, nr, act, mode, y2);
    finish(c30, c31, bias, nr, act, mode, y3);
  } else if (epi == EPI_SCALED) {
    scaled_add_row(y, c00, c01, xi, nr);
    if (rows > 1) scaled_add_row(y1, c10, c11, xi + 4, nr);
    if (rows > 2) scaled_add_row(y2, c20, c21, xi + 8, nr);
    if (rows > 3) scaled_add_row(y3, c30, c31, xi + 12, nr);
  } else {
    add_row(y, c00, c01, nr, mode);
    if (rows > 1) add_row(y1, c10, c11, nr, mode);
    if (rows > 2) add_row(y2, c20, c21, nr, mode);
    if (rows > 3) add_row(y3, c30, c31, nr, mode);
  }
}

/** dst[0..16) ← the 4×4 block with rows v0..v3, transposed (dst[4c + r] = v_r[c]). */
// @ts-ignore: decorator
@inline export function store_4x4_transposed(v0: v128, v1: v128, v2: v128, v3: v128, dst: usize): void {
  const t0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 16);
  v128.store(dst, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 32);
  v128.store(dst, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 48);
}

// y[0..nr) (=|+=) (c0 | c1)
// @ts-ignore: decorator
@inline function add_row(y: usize, c0: v128, c1: v128, nr: i32, mode: i32): void {
  if (mode & LOAD) { c0 = f32x4.add(loadN(y, nr), c0); c1 = f32x4.add(loadN(y + 16, nr - 4), c1); }
  storeN(y, c0, nr);
  storeN(y + 16, c1, nr - 4);
}

// y[0..nr) += xi[0] · (c0 | c1)
// @ts-ignore: decorator
@inline function scaled_add_row(y: usize, c0: v128, c1: v128, xi: usize, nr: i32): void {
  const s = v128.load_splat<f32>(xi);
  storeN(y, madd(s, c0, loadN(y, nr)), nr);
  storeN(y + 16, madd(s, c1, loadN(y + 16, nr - 4)), nr - 4);
}

// @ts-ignore: decorator
@inline export function finish(c0: v128, c1: v128, bias: usize, nr: i32, act: i32, mode: i32, yp: usize): void {
  // The block's partial sum started from zero: adding it to y (earlier blocks'
  // partial sums, or y itself when accumulating) sums K in two levels — within a
  // KC block, then across blocks — so the float32 error grows like KC + K/KC
  // instead of K.
  if (mode & LOAD) {
    c0 = f32x4.add(loadN(yp, nr), c0);
    c1 = f32x4.add(loadN(yp + 16, nr - 4), c1);
  }
  if (mode & FIN) {
    if (bias) {
      c0 = f32x4.add(c0, loadN(bias, nr));
      c1 = f32x4.add(c1, loadN(bias + 16, nr - 4));
    }
    if (mode & ADDY) {
      c0 = actv(c0, act);
      c1 = actv(c1, act);
      c0 = f32x4.add(loadN(yp, nr), c0);
      c1 = f32x4.add(loadN(yp + 16, nr - 4), c1);
    }
  }
  storeN(yp, c0, nr);
  storeN(yp + 16, c1, nr - 4);
}


