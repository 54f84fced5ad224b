// GEMM: y[M,N] = act(x[M,K] · Wᵀ + b)  (W is PyTorch's [N, K]),  or  y += that.
//
//   x       // [M, K]  row stride ldx (elements)
//   packed  // [ceil(N/8), K, 8]  W in 8-column panels, zero-padded (f32_gemm_pack_8)
//   bias    // [N] or 0
//   y       // [M, N]  row stride ldy (elements)
//   act     // 0 none, 1 gelu, 2 silu, 3 relu, 4 selu, 5 sigmoid
//   accumulate // 0: y = act(xWᵀ+b);  1: y += act(xWᵀ+b)
//   scratch // f32_gemm_scratch_size() bytes, or 0: x is then read in place (slower)
//
// Pointers are byte offsets into the shared memory; sizes and strides are in elements.
import { madd, act32, act_rows } from './common';
import { panel_tile_4x8, store_4x4_transposed, finish, EPI_GEMM, LOAD, FIN, ADDY } from './tiles';

/** K block (elements): each block is summed from zero and then added to y, so the float32 error grows like KC + K/KC, not K; 64 keeps it at the level of a pairwise-ish sum with no measurable speed cost (64×8 panel slice, 2 KiB, stays in L1). */
const KC: i32 = 64;
/** Row block: MC×KC of x (64 KiB) stays in L2 while the panels go by. */
const MC: i32 = 64;

/** Bytes of per-call scratch the SIMD GEMM uses to pack x (one MC×KC block). */
export function f32_gemm_scratch_size(): i32 { return MC * KC * 4; }

/** Bytes needed for W [N, K] packed by f32_gemm_pack_8. */
export function f32_gemm_packed_size(N: i32, K: i32): i32 {
  return ((N + 7) >> 3) * 8 * K * 4;
}

/** Packs W [N, K] (row stride ldw) into 8-column panels: packed[p][k][j] = W[8p+j, k], 0 past N. */
export function f32_gemm_pack_8(N: i32, K: i32, w: usize, ldw: i32, packed: usize): void {
  const panels = (N + 7) >> 3;
  for (let p = 0; p < panels; p++) {
    for (let j = 0; j < 8; j++) {
      const n = p * 8 + j;
      let dst = packed + ((<usize>(p * K) * 8 + j) << 2);
      if (n < N) {
        let src = w + (<usize>n * <usize>ldw << 2);
        for (let k = 0; k < K; k++) { store<f32>(dst, load<f32>(src)); dst += 32; src += 4; }
      } else {
        for (let k = 0; k < K; k++) { store<f32>(dst, 0); dst += 32; }
      }
    }
  }
}

/** 4 rows × 8 columns, kc steps of K: 8 v128 accumulators, 2 for the panel row, 1 for x. */
function tile_4x8(kc: i32, x: usize, ldxb: usize, wp: usize, y: usize, ldyb: usize,
                  nr: i32, bias: usize, act: i32, mode: i32): void {
  const y0 = y, y1 = y + ldyb, y2 = y1 + ldyb, y3 = y2 + ldyb;
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const x0 = x, x1 = x + ldxb, x2 = x1 + ldxb, x3 = x2 + ldxb;
  const kend = <usize>kc << 2;
  let kb: usize = 0;
  for (; kb < kend; kb += 4) {
    const b0 = v128.load(wp), b1 = v128.load(wp, 16);
    let a = v128.load_splat<f32>(x0 + kb);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load_splat<f32>(x1 + kb);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load_splat<f32>(x2 + kb);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load_splat<f32>(x3 + kb);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    wp += 32;
  }
  finish(c00, c01, bias, nr, act, mode, y0);
  finish(c10, c11, bias, nr, act, mode, y1);
  finish(c20, c21, bias, nr, act, mode, y2);
  finish(c30, c31, bias, nr, act, mode, y3);
}

/** Packs rows [0, 4·groups) × k [0, kc) of x into ap[g][k][4] (4×4 transposes in SIMD). */
function pack_x_4(groups: i32, kc: i32, x: usize, ldxb: usize, ap: usize): void {
  const kc4 = kc & ~3;
  for (let g = 0; g < groups; g++) {
    const r0 = x + <usize>(g * 4) * ldxb, r1 = r0 + ldxb, r2 = r1 + ldxb, r3 = r2 + ldxb;
    let k = 0;
    for (; k < kc4; k += 4) {
      const o = <usize>k << 2;
      const v0 = v128.load(r0 + o), v1 = v128.load(r1 + o), v2 = v128.load(r2 + o), v3 = v128.load(r3 + o);
      store_4x4_transposed(v0, v1, v2, v3, ap);
      ap += 64;
    }
    for (; k < kc; k++) {
      const o = <usize>k << 2;
      store<f32>(ap, load<f32>(r0 + o)); store<f32>(ap, load<f32>(r1 + o), 4);
      store<f32>(ap, load<f32>(r2 + o), 8); store<f32>(ap, load<f32>(r3 + o), 12);
      ap += 16;
    }
  }
}

/** 4×8 tile over packed x (ap[k][4]): every load has a constant offset from one pointer (tiles.ts). */
function tile_4x8_packed(kc: i32, ap: usize, wp: usize, y: usize, ldyb: usize,
                         nr: i32, bias: usize, act: i32, mode: i32): void {
  if (nr == 8 && act == 0) {
    // the common tiles get the epilogue's flags as constants: a branchy epilogue after every
    // 64-step K loop cost ~10% (448×512·(3072×512)ᵀ: 37.5 → 41.3 GFLOP/s in a scratch timing)
    switch (mode) {
      case LOAD: panel_tile_4x8(kc, ap, wp, y, ldyb, 8, 4, EPI_GEMM, 0, 0, LOAD, 0); return;
      case 0: panel_tile_4x8(kc, ap, wp, y, ldyb, 8, 4, EPI_GEMM, 0, 0, 0, 0); return;
      case FIN | LOAD: panel_tile_4x8(kc, ap, wp, y, ldyb, 8, 4, EPI_GEMM, bias, 0, FIN | LOAD, 0); return;
      case FIN: panel_tile_4x8(kc, ap, wp, y, ldyb, 8, 4, EPI_GEMM, bias, 0, FIN, 0); return;
    }
  }
  panel_tile_4x8(kc, ap, wp, y, ldyb, nr, 4, EPI_GEMM, bias, act, mode, 0);
}

/** 1 row × 8 columns (the M remainder). */
function tile_1x8(kc: i32, x: usize, wp: usize, y: usize, nr: i32, bias: usize, act: i32, mode: i32): void {
  let c0 = f32x4.splat(0), c1 = c0;
  const kend = <usize>kc << 2;
  for (let kb: usize = 0; kb < kend; kb += 4) {
    const a = v128.load_splat<f32>(x + kb);
    c0 = madd(a, v128.load(wp), c0);
    c1 = madd(a, v128.load(wp, 16), c1);
    wp += 32;
  }
  finish(c0, c1, bias, nr, act, mode, y);
}

/** The epilogue flags of the K block [k0, k0 + kc): add to y (a later block, or accumulating into y),
 *  finish (the last block: bias, activation), and the activation added onto y (accumulate with act).
 *  Shared by the GEMM and the one-row BF16 product, whose sums must be the GEMM's. */
// @ts-ignore: decorator
@inline function blockMode(k0: i32, kc: i32, K: i32, accumulate: i32, addy: bool): i32 {
  let mode = 0;
  if (k0 > 0 || (accumulate != 0 && !addy)) mode |= LOAD;
  if (k0 + kc >= K) mode |= FIN;
  if (addy) mode |= ADDY;
  return mode;
}

/** SIMD GEMM, 4×8 register tile. See the file header for the arguments. */
export function f32_gemm_4x8__wasmsimd(M: i32, N: i32, K: i32, x: usize, ldx: i32, packed: usize,
                                       bias: usize, y: usize, ldy: i32, act: i32, accumulate: i32, scratch: usize): void {
  if (M <= 0 || N <= 0) return;
  if (K < 0) K = 0;
  const ldxb = <usize>ldx << 2, ldyb = <usize>ldy << 2;
  const addy = accumulate != 0 && act != 0;
  const kcMax = addy ? max(K, 1) : KC; // y holds partial sums between K blocks, so no blocking when y must stay intact
  const deferAct = act != 0 && !addy, tileAct = deferAct ? 0 : act;
  const panels = (N + 7) >> 3;
  if (M < 4) {
    // one to three rows (decoding steps): each panel through every K block before the next, so its
    // weights are read as one sequential stream (K blocks outside the panels read 2 KiB of each panel
    // per block, then jump); the same tile_1x8 calls in the same K order per column: the same sums
    for (let p = 0; p < panels; p++) {
      const nr = min(8, N - p * 8);
      const bp = bias ? bias + (<usize>p << 5) : 0;
      let k0 = 0;
      do {
        const kc = min(kcMax, K - k0);
        const mode = blockMode(k0, kc, K, accumulate, addy);
        const wp = packed + ((<usize>p * <usize>K + <usize>k0) << 5);
        for (let i = 0; i < M; i++) tile_1x8(kc, x + <usize>i * ldxb + (<usize>k0 << 2), wp, y + <usize>i * ldyb + (<usize>p << 5), nr, bp, tileAct, mode);
        k0 += kc;
      } while (k0 < K);
    }
    if (deferAct) act_rows(M, N, y, ldy, act, false);
    return;
  }
  let k0 = 0;
  do {
    const kc = min(kcMax, K - k0);
    const mode = blockMode(k0, kc, K, accumulate, addy);
    for (let m0 = 0; m0 < M; m0 += MC) {
      const mEnd = min(M, m0 + MC);
      const groups = (mEnd - m0) >> 2;
      const packA = scratch != 0 && kc <= KC && groups > 0;
      if (packA) pack_x_4(groups, kc, x + <usize>m0 * ldxb + (<usize>k0 << 2), ldxb, scratch);
      for (let p = 0; p < panels; p++) {
        const nr = min(8, N - p * 8);
        const wp = packed + ((<usize>p * <usize>K + <usize>k0) << 5);
        const bp = bias ? bias + (<usize>p << 5) : 0;
        let i = m0;
        let xp = x + <usize>i * ldxb + (<usize>k0 << 2);
        let yp = y + <usize>i * ldyb + (<usize>p << 5);
        if (packA) {
          let ap = scratch;
          for (; i + 4 <= mEnd; i += 4) {
            tile_4x8_packed(kc, ap, wp, yp, ldyb, nr, bp, tileAct, mode);
            ap += <usize>kc << 4; xp += ldxb << 2; yp += ldyb << 2;
          }
        } else {
          for (; i + 4 <= mEnd; i += 4) {
            tile_4x8(kc, xp, ldxb, wp, yp, ldyb, nr, bp, tileAct, mode);
            xp += ldxb << 2; yp += ldyb << 2;
          }
        }
        for (; i < mEnd; i++) {
          tile_1x8(kc, xp, wp, yp, nr, bp, tileAct, mode);
          xp += ldxb; yp += ldyb;
        }
      }
      // the activation over the finished row block (≤ MC × N, just written, in L2) in the
      // activation's own two-vectors-per-step loop (one copy per activation): 512×512·(2048×512)ᵀ with
      // gelu ran at 35.2 GFLOP/s this way against 31.6 with the activation per 4×8 tile (38.5 without)
      if (deferAct && (mode & FIN)) act_rows(mEnd - m0, N, y + <usize>m0 * ldyb, ldy, act, false);
    }
    k0 += kc;
  } while (k0 < K);
}

const HI16 = i32x4.splat(0xffff0000);

/** One row: y[1, N] (=|+=) act(x[1, K] · Wᵀ + b) on W packed as BF16 8-column panels (f32_gemm_pack_8's
 *  order narrowed to BF16: 16 bytes per panel and k). The arithmetic of f32_gemm_4x8__wasmsimd with M = 1
 *  on the widened panels — tile_1x8 per K block of KC, the same madd, finish and deferred activation —
 *  so the result is bit for bit that of gemmBf16, but each weight is read once, as 2 bytes, and widened
 *  in registers (a decoding step is a matrix-vector product bound by reading the weights). */
export function f32_gemv_bf16__wasmsimd(N: i32, K: i32, x: usize, packed: usize, bias: usize, y: usize, act: i32, accumulate: i32): void {
  if (N <= 0) return;
  if (K < 0) K = 0;
  const addy = accumulate != 0 && act != 0;
  const kcMax = addy ? max(K, 1) : KC;
  const deferAct = act != 0 && !addy, tileAct = deferAct ? 0 : act;
  const panels = (N + 7) >> 3;
  const pstride = <usize>K << 4; // bytes from one panel to the next
  // A 32-bit lane j of a panel row holds BF16 columns 2j (low half) and 2j+1 (high half): `<< 16`
  // gives the even columns as float32, `& 0xffff0000` the odd ones, so the sums run over (even, odd)
  // column sets and are put back in column order once per K block — each column's sum is unchanged.
  // Four panels at a time (eight independent accumulator chains), each group through every K block
  // before the next: four sequential streams of its weights. (K blocks outside the panels, as the
  // GEMM orders them, read 1 KiB of every panel per block — 64 × 16 bytes, then a jump of K × 16 —
  // and ran at a third of this order's rate on one thread; each column's arithmetic is the same.)
  // groups of four whole panels, one from each quarter of the whole panels (Q apart): four far-apart streams
  const Q = (N >> 3) >> 2, qstride = <usize>Q * pstride, qy = <usize>Q << 5;
  for (let g = 0; g < Q; g++) {
    const yp = y + (<usize>g << 5), bp = bias ? bias + (<usize>g << 5) : 0;
    let k0 = 0;
    do {
      const kc = min(kcMax, K - k0);
      const mode = blockMode(k0, kc, K, accumulate, addy);
      const xp = x + (<usize>k0 << 2), kend = <usize>kc << 2;
      let wp = packed + ((<usize>g * <usize>K + <usize>k0) << 4);
      let e0 = f32x4.splat(0), o0 = e0, e1 = e0, o1 = e0, e2 = e0, o2 = e0, e3 = e0, o3 = e0;
      for (let kb: usize = 0; kb < kend; kb += 4) {
        const a = v128.load_splat<f32>(xp + kb);
        const w0 = v128.load(wp), w1 = v128.load(wp + qstride), w2 = v128.load(wp + 2 * qstride), w3 = v128.load(wp + 3 * qstride);
        e0 = madd(a, i32x4.shl(w0, 16), e0); o0 = madd(a, v128.and(w0, HI16), o0);
        e1 = madd(a, i32x4.shl(w1, 16), e1); o1 = madd(a, v128.and(w1, HI16), o1);
        e2 = madd(a, i32x4.shl(w2, 16), e2); o2 = madd(a, v128.and(w2, HI16), o2);
        e3 = madd(a, i32x4.shl(w3, 16), e3); o3 = madd(a, v128.and(w3, HI16), o3);
        wp += 16;
      }
      finish(v128.shuffle<f32>(e0, o0, 0, 4, 1, 5), v128.shuffle<f32>(e0, o0, 2, 6, 3, 7), bp, 8, tileAct, mode, yp);
      finish(v128.shuffle<f32>(e1, o1, 0, 4, 1, 5), v128.shuffle<f32>(e1, o1, 2, 6, 3, 7), bp ? bp + qy : 0, 8, tileAct, mode, yp + qy);
      finish(v128.shuffle<f32>(e2, o2, 0, 4, 1, 5), v128.shuffle<f32>(e2, o2, 2, 6, 3, 7), bp ? bp + 2 * qy : 0, 8, tileAct, mode, yp + 2 * qy);
      finish(v128.shuffle<f32>(e3, o3, 0, 4, 1, 5), v128.shuffle<f32>(e3, o3, 2, 6, 3, 7), bp ? bp + 3 * qy : 0, 8, tileAct, mode, yp + 3 * qy);
      k0 += kc;
    } while (k0 < K);
  }
  let p = 4 * Q;
  for (; p < panels; p++) {
    const nr = min(8, N - p * 8);
    const yp = y + (<usize>p << 5), bp = bias ? bias + (<usize>p << 5) : 0;
    let k0 = 0;
    do {
      const kc = min(kcMax, K - k0);
      const mode = blockMode(k0, kc, K, accumulate, addy);
      const xp = x + (<usize>k0 << 2), kend = <usize>kc << 2;
      let wp = packed + ((<usize>p * <usize>K + <usize>k0) << 4);
      let e = f32x4.splat(0), o = e;
      for (let kb: usize = 0; kb < kend; kb += 4) {
        const a = v128.load_splat<f32>(xp + kb);
        const w = v128.load(wp);
        e = madd(a, i32x4.shl(w, 16), e); o = madd(a, v128.and(w, HI16), o);
        wp += 16;
      }
      finish(v128.shuffle<f32>(e, o, 0, 4, 1, 5), v128.shuffle<f32>(e, o, 2, 6, 3, 7), bp, nr, tileAct, mode, yp);
      k0 += kc;
    } while (k0 < K);
  }
  if (deferAct) act_rows(1, N, y, N, act, false);
}

/** Scalar twin of f32_gemm_4x8__wasmsimd: same arguments, same packed W, plain f32 mul + add. */
export function f32_gemm__scalar(M: i32, N: i32, K: i32, x: usize, ldx: i32, packed: usize,
                                 bias: usize, y: usize, ldy: i32, act: i32, accumulate: i32, scratch: usize): void {
  for (let i = 0; i < M; i++) {
    const xr = x + (<usize>i * <usize>ldx << 2);
    const yr = y + (<usize>i * <usize>ldy << 2);
    for (let n = 0; n < N; n++) {
      const p = n >> 3, j = n & 7;
      const yp = yr + (<usize>n << 2);
      let acc: f32 = accumulate != 0 && act == 0 ? load<f32>(yp) : 0;
      let wp = packed + ((<usize>p * <usize>K * 8 + j) << 2);
      for (let k = 0; k < K; k++) {
        acc += load<f32>(xr + (<usize>k << 2)) * load<f32>(wp);
        wp += 32;
      }
      if (bias) acc += load<f32>(bias + (<usize>n << 2));
      acc = act32(acc, act);
      if (accumulate != 0 && act != 0) acc = load<f32>(yp) + acc;
      store<f32>(yp, acc);
    }
  }
}
