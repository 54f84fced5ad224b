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
