// BF16 ↔ float32 conversions for weights stored as BF16 (bfloat16: the top 16 bits of a float32).
//
//   src // [n] u16 (widen) or f32 (narrow), contiguous
//   dst // [n] f32 (widen) or u16 (narrow), contiguous
//
// Widening is exact (x << 16) and memory-bound: it turns a BF16 weight block into the float32
// operand of the GEMM just before use. Narrowing truncates (keeps the top 16 bits) and is exact
// for values that came from BF16, which is the only use (packing a widened weight once); it returns
// 1 if some dropped low half was not zero (the value was not a BF16 value), else 0.

/** dst[i] = f32(src[i] << 16), 8 values per step (two zero-interleaving shuffles). */
export function f32_widen_bf16__wasmsimd(n: i32, src: usize, dst: usize): void {
  const zero = i32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    // u32 lane j = (v[j] << 16) | 0: in little-endian byte order, zero's u16 then v's u16
    v128.store(dst + (<usize>i << 2), v128.shuffle<u16>(zero, v, 0, 8, 1, 9, 2, 10, 3, 11));
    v128.store(dst + (<usize>i << 2), v128.shuffle<u16>(zero, v, 4, 12, 5, 13, 6, 14, 7, 15), 16);
  }
  for (; i < n; i++) store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
}

/** Scalar twin of f32_widen_bf16__wasmsimd. */
export function f32_widen_bf16__scalar(n: i32, src: usize, dst: usize): void {
  for (let i = 0; i < n; i++) store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
}

/** dst[i] = top 16 bits of src[i]; returns 1 if any low 16 bits were nonzero (inexact), else 0. */
export function f32_narrow_bf16__wasmsimd(n: i32, src: usize, dst: usize): i32 {
  const lowMask = i32x4.splat(0xffff);
  let lost = i32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a = v128.load(src + (<usize>i << 2)), b = v128.load(src + (<usize>i << 2), 16);
    lost = v128.or(lost, v128.and(v128.or(a, b), lowMask));
    v128.store(dst + (<usize>i << 1), v128.shuffle<u16>(a, b, 1, 3, 5, 7, 9, 11, 13, 15));
  }
  let lostS: u32 = 0;
  for (; i < n; i++) {
    const w = load<u32>(src + (<usize>i << 2));
    lostS |= w & 0xffff;
    store<u16>(dst + (<usize>i << 1), <u16>(w >>> 16));
  }
  return v128.any_true(lost) || lostS != 0 ? 1 : 0;
}

/** Scalar twin of f32_narrow_bf16__wasmsimd. */
export function f32_narrow_bf16__scalar(n: i32, src: usize, dst: usize): i32 {
  let lost: u32 = 0;
  for (let i = 0; i < n; i++) {
    const w = load<u32>(src + (<usize>i << 2));
    lost |= w & 0xffff;
    store<u16>(dst + (<usize>i << 1), <u16>(w >>> 16));
  }
  return lost != 0 ? 1 : 0;
}

// Unpacking BF16 8-column panels (packed[p][k][j] = W[8p + j, k], f32_gemm_pack_8's order narrowed to
// BF16) into row-major float32 W [nb, K] (dst[n·K + k]): the operand a native GEMM takes. Exact (a
// widening). Four k rows of a panel at a time: each widened into two f32x4 (columns j 0–3, 4–7), then
// two 4×4 transposes give four k values of eight rows.

/** dst[n·K + k] = f32(W[n, k]) for n < nb from BF16 panels at src (nb ≤ the panels' columns). */
export function f32_unpack_panels_bf16__wasmsimd(nb: i32, K: i32, src: usize, dst: usize): void {
  const zero = i32x4.splat(0);
  const full = nb >> 3;
  const K4 = K & ~3;
  const rowb = <usize>K << 2;
  for (let p = 0; p < full; p++) {
    const sp = src + (<usize>p * <usize>K << 4); // 8 BF16 (16 bytes) per k
    const d0 = dst + (<usize>(p << 3) * rowb);
    for (let k = 0; k < K4; k += 4) {
      const s = sp + (<usize>k << 4);
      const v0 = v128.load(s), v1 = v128.load(s, 16), v2 = v128.load(s, 32), v3 = v128.load(s, 48);
      // widen: lo = columns 0–3, hi = columns 4–7 of rows k … k+3
      const l0 = v128.shuffle<u16>(zero, v0, 0, 8, 1, 9, 2, 10, 3, 11), h0 = v128.shuffle<u16>(zero, v0, 4, 12, 5, 13, 6, 14, 7, 15);
      const l1 = v128.shuffle<u16>(zero, v1, 0, 8, 1, 9, 2, 10, 3, 11), h1 = v128.shuffle<u16>(zero, v1, 4, 12, 5, 13, 6, 14, 7, 15);
      const l2 = v128.shuffle<u16>(zero, v2, 0, 8, 1, 9, 2, 10, 3, 11), h2 = v128.shuffle<u16>(zero, v2, 4, 12, 5, 13, 6, 14, 7, 15);
      const l3 = v128.shuffle<u16>(zero, v3, 0, 8, 1, 9, 2, 10, 3, 11), h3 = v128.shuffle<u16>(zero, v3, 4, 12, 5, 13, 6, 14, 7, 15);
      const o = d0 + (<usize>k << 2);
      transpose4(l0, l1, l2, l3, o, rowb);
      transpose4(h0, h1, h2, h3, o + 4 * rowb, rowb);
    }
    for (let k = K4; k < K; k++) {
      for (let j = 0; j < 8; j++) store<u32>(d0 + <usize>j * rowb + (<usize>k << 2), <u32>load<u16>(sp + (<usize>k << 4) + (<usize>j << 1)) << 16);
    }
  }
  unpackTail(full, nb, K, src, dst);
}

/** Scalar twin of f32_unpack_panels_bf16__wasmsimd. */
export function f32_unpack_panels_bf16__scalar(nb: i32, K: i32, src: usize, dst: usize): void {
  unpackTail(0, nb, K, src, dst);
}

/** Rows of panels from `p0` on (a partial last panel: only its columns below nb), one value at a time. */
function unpackTail(p0: i32, nb: i32, K: i32, src: usize, dst: usize): void {
  for (let n = p0 << 3; n < nb; n++) {
    const p = n >> 3, j = n & 7;
    const sp = src + (<usize>p * <usize>K << 4) + (<usize>j << 1), d = dst + (<usize>n * <usize>K << 2);
    for (let k = 0; k < K; k++) store<u32>(d + (<usize>k << 2), <u32>load<u16>(sp + (<usize>k << 4)) << 16);
  }
}

/** Rows r0…r3 (4 k values × 4 columns, as f32x4) stored transposed: column c's 4 values at o + c·rowb. */
// @ts-ignore: decorator
@inline function transpose4(r0: v128, r1: v128, r2: v128, r3: v128, o: usize, rowb: usize): void {
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(o, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(o + rowb, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
  v128.store(o + 2 * rowb, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
  v128.store(o + 3 * rowb, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
}

// Packing BF16 rows into BF16 8-column panels without widening: dst[p][k][j] = W[8p + j, k] (u16), zero
// for rows past N — the bytes f32_gemm_pack_8 then f32_narrow_bf16 write for the same values (a packing
// is a permutation, and zero narrows to zero). Eight rows × eight k at a time: an 8×8 transpose of u16
// in three rounds of interleaving shuffles, stored as eight consecutive k rows of the panel.

/** dst = W [N, K] (BF16 rows at src, row stride K) as BF16 8-column panels. */
export function bf16_pack_8__wasmsimd(N: i32, K: i32, src: usize, dst: usize): void {
  const full = N >> 3, K8 = K & ~7;
  const rowb = <usize>K << 1;
  for (let p = 0; p < full; p++) {
    const s0 = src + <usize>(p << 3) * rowb;
    const d0 = dst + (<usize>p * <usize>K << 4);
    for (let k = 0; k < K8; k += 8) {
      const s = s0 + (<usize>k << 1);
      const r0 = v128.load(s), r1 = v128.load(s + rowb), r2 = v128.load(s + 2 * rowb), r3 = v128.load(s + 3 * rowb);
      const r4 = v128.load(s + 4 * rowb), r5 = v128.load(s + 5 * rowb), r6 = v128.load(s + 6 * rowb), r7 = v128.load(s + 7 * rowb);
      // round 1: pairs of rows, 16-bit interleave → a0 = (r0k0 r1k0 r0k1 r1k1 r0k2 r1k2 r0k3 r1k3), …
      const a0 = v128.shuffle<u16>(r0, r1, 0, 8, 1, 9, 2, 10, 3, 11), a1 = v128.shuffle<u16>(r0, r1, 4, 12, 5, 13, 6, 14, 7, 15);
      const a2 = v128.shuffle<u16>(r2, r3, 0, 8, 1, 9, 2, 10, 3, 11), a3 = v128.shuffle<u16>(r2, r3, 4, 12, 5, 13, 6, 14, 7, 15);
      const a4 = v128.shuffle<u16>(r4, r5, 0, 8, 1, 9, 2, 10, 3, 11), a5 = v128.shuffle<u16>(r4, r5, 4, 12, 5, 13, 6, 14, 7, 15);
      const a6 = v128.shuffle<u16>(r6, r7, 0, 8, 1, 9, 2, 10, 3, 11), a7 = v128.shuffle<u16>(r6, r7, 4, 12, 5, 13, 6, 14, 7, 15);
      // round 2: 32-bit interleave of row pairs (0,1)+(2,3) and (4,5)+(6,7) → b0 = rows 0–3 at k0, k1
      const b0 = v128.shuffle<u32>(a0, a2, 0, 4, 1, 5), b1 = v128.shuffle<u32>(a0, a2, 2, 6, 3, 7);
      const b2 = v128.shuffle<u32>(a1, a3, 0, 4, 1, 5), b3 = v128.shuffle<u32>(a1, a3, 2, 6, 3, 7);
      const b4 = v128.shuffle<u32>(a4, a6, 0, 4, 1, 5), b5 = v128.shuffle<u32>(a4, a6, 2, 6, 3, 7);
      const b6 = v128.shuffle<u32>(a5, a7, 0, 4, 1, 5), b7 = v128.shuffle<u32>(a5, a7, 2, 6, 3, 7);
      // round 3: 64-bit halves → k row t = rows 0–7 at k + t
      const d = d0 + (<usize>k << 4);
      v128.store(d, v128.shuffle<u64>(b0, b4, 0, 2));
      v128.store(d, v128.shuffle<u64>(b0, b4, 1, 3), 16);
      v128.store(d, v128.shuffle<u64>(b1, b5, 0, 2), 32);
      v128.store(d, v128.shuffle<u64>(b1, b5, 1, 3), 48);
      v128.store(d, v128.shuffle<u64>(b2, b6, 0, 2), 64);
      v128.store(d, v128.shuffle<u64>(b2, b6, 1, 3), 80);
      v128.store(d, v128.shuffle<u64>(b3, b7, 0, 2), 96);
      v128.store(d, v128.shuffle<u64>(b3, b7, 1, 3), 112);
    }
    for (let k = K8; k < K; k++) {
      for (let j = 0; j < 8; j++) store<u16>(d0 + (<usize>k << 4) + (<usize>j << 1), load<u16>(s0 + <usize>j * rowb + (<usize>k << 1)));
    }
  }
  packTail(full, N, K, src, dst);
}

/** Scalar twin of bf16_pack_8__wasmsimd. */
export function bf16_pack_8__scalar(N: i32, K: i32, src: usize, dst: usize): void {
  packTail(0, N, K, src, dst);
}

/** Panels from `p0` on, one value at a time; a partial last panel's columns past N are zero. */
function packTail(p0: i32, N: i32, K: i32, src: usize, dst: usize): void {
  const panels = (N + 7) >> 3;
  for (let p = p0; p < panels; p++) {
    const d0 = dst + (<usize>p * <usize>K << 4);
    for (let j = 0; j < 8; j++) {
      const n = (p << 3) + j;
      let d = d0 + (<usize>j << 1);
      if (n < N) {
        let s = src + (<usize>n * <usize>K << 1);
        for (let k = 0; k < K; k++) { store<u16>(d, load<u16>(s)); d += 16; s += 2; }
      } else {
        for (let k = 0; k < K; k++) { store<u16>(d, 0); d += 16; }
      }
    }
  }
}
