// Adapter from the AssemblyScript module's exports (src/wasm/loader.ts) to
// the RuntimeKernels contract the chunk worker programs against.
import { loadKernelsSync, type Kernels, type VariantRequest } from '../wasm/loader.js';
import { wasmRetentionScratchFloats, type RuntimeKernels } from './kernels.js';

/** Columns of a BF16 weight widened per GEMM call (gemmBf16): 256 columns × K floats (2 MiB at K = 2,048)
 *  stay in L2/L3 while the GEMM runs over them; each column's dot products are the same as over
 *  the whole weight (8-column panels, the same K blocks), so the result is bit-identical. */
export const BF16_BLOCK_COLS = 256;

export function bindWasmKernels(memory: WebAssembly.Memory, variant: string): RuntimeKernels {
  return wasmContract(loadKernelsSync({ memory, variant: variant as VariantRequest }));
}

/** The contract over an instantiated module. */
export function wasmContract(k: Kernels): RuntimeKernels {
  const packedBytes = (N: number, K: number) => k.f32_gemm_packed_size(N, K);
  return {
    name: `wasm-${k.variant === 'relaxed' ? 'relaxed-simd' : 'simd'}`,
    layerNorm: (x, rows, n, ldx, gamma, beta, eps, y, ldy) => k.f32_layernorm__wasmsimd(rows, n, x, ldx, gamma, beta, y, ldy, eps),
    rmsNorm: (x, rows, n, ldx, gamma, eps, y, ldy) => k.f32_rmsnorm__wasmsimd(rows, n, x, ldx, gamma, y, ldy, eps),
    packedSize: (N, K) => k.f32_gemm_packed_size(N, K) / 4,
    pack: (w, N, K, out) => k.f32_gemm_pack_8(N, K, w, K, out),
    gemmScratchBytes: () => k.f32_gemm_scratch_size(),
    // BF16 weights in the GEMM's 8-column panel order, as BF16 (half the float32 panels)
    packedBf16Bytes: (N, K) => packedBytes(N, K) / 2,
    // narrowed to BF16 rows (exact or refused), then transposed into panels as BF16: the bytes of
    // f32_gemm_pack_8 then f32_narrow_bf16 (a packing only moves values; zero narrows to zero)
    packBf16: (w, N, K, out, tmp) => {
      if (k.f32_narrow_bf16__wasmsimd(N * K, w, tmp) !== 0) return false;
      k.bf16_pack_8__wasmsimd(N, K, tmp, out);
      return true;
    },
    packBf16Bits: (bits, N, K, out) => k.bf16_pack_8__wasmsimd(N, K, bits, out),
    scaleF32: (x, n, s) => k.f32_scale__wasmsimd(n, x, s),
    bf16ScratchBytes: (N, K) => packedBytes(Math.min(N, BF16_BLOCK_COLS), K),
    widenBf16: (src, n, dst) => k.f32_widen_bf16__wasmsimd(n, src, dst),
    // blocks of BF16_BLOCK_COLS columns: widen their panels into `wide`, then the float32 GEMM on them
    gemmBf16: (x, M, K, ldx, w, N, b, y, ldy, act, acc, scratch, wide) => {
      // one row (a decoding step): the weights read once as BF16, widened in registers — the same sums
      if (M === 1) { k.f32_gemv_bf16__wasmsimd(N, K, x, w, b, y, act, acc ? 1 : 0); return; }
      for (let n0 = 0; n0 < N; n0 += BF16_BLOCK_COLS) {
        const nb = Math.min(BF16_BLOCK_COLS, N - n0);
        k.f32_widen_bf16__wasmsimd(packedBytes(nb, K) / 4, w + n0 * K * 2, wide);
        k.f32_gemm_4x8__wasmsimd(M, nb, K, x, ldx, wide, b ? b + n0 * 4 : 0, y + n0 * 4, ldy, act, acc ? 1 : 0, scratch);
      }
    },
    tileFloats: wasmRetentionScratchFloats, // no C×C score tile: A is held 64 rows at a time
    gemm: (x, M, K, ldx, wp, N, b, y, ldy, act, acc, scratch) => k.f32_gemm_4x8__wasmsimd(M, N, K, x, ldx, wp, b, y, ldy, act, acc ? 1 : 0, scratch),
    rotary: (x, rows, heads, dk, ld, cos, sin) => k.f32_rotary__wasmsimd(rows, heads, dk, x, ld, cos, sin),
    intra: (q, kk, v, n, dk, dv, ldq, ldk, ldv, pow, o, ldo, r, tile) => k.f32_retention_intra__wasmsimd(n, dk, dv, q, ldq, kk, ldk, v, ldv, pow, o, ldo, r, tile),
    summary: (kk, v, n, dk, dv, ldk, ldv, pow, S, z, tile) => k.f32_retention_summary__wasmsimd(n, dk, dv, kk, ldk, v, ldv, pow, S, z, tile),
    cross: (q, n, dk, dv, ldq, pow, S, z, o, ldo, r, tile) => k.f32_retention_cross__wasmsimd(n, dk, dv, q, ldq, pow, S, z, o, ldo, r, tile),
    normalize: (o, n, dv, ldo, r, inv, retn) => k.f32_retention_normalize__wasmsimd(n, dv, o, ldo, r, inv, retn ? 1 : 0),
    step: (dk, dv, q, kk, v, gamma, S, z, o, r, inv, retn, scratch = 0) => k.f32_retention_step__wasmsimd(dk, dv, q, kk, v, gamma, S, z, o, r, inv, retn ? 1 : 0, scratch),
    stepS32: (dk, dv, q, kk, v, gamma, S, z, o, r, inv, retn, scratch) => k.f32_retention_step_s32__wasmsimd(dk, dv, q, kk, v, gamma, S, z, o, r, inv, retn ? 1 : 0, scratch),
    gate: (g, ldg, o, ldo, rows, cols, act) => k.f32_gate__wasmsimd(rows, cols, g, ldg, o, ldo, act),
    scanStep: (n, g, state, delta, incoming) => k.f64_scan_step__wasmsimd(n, g, state, delta, incoming),
  };
}
