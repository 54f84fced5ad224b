// Single-thread matrix-product rates of the native libraries that load, on one shape: what the
// benchmarks that state a compute bound (bench/peers/peers.ts, bench/fla-1p3b.ts) divide by.
// float32: OpenBLAS's cblas_sgemm and oneDNN's f32 matmul; bfloat16: oneDNN's bf16 matmul (bfloat16
// operands, float32 accumulation, the source rows rounded on the way in as the dnnl engine does).
// oneDNN's weights are reordered once, as its engine does; every call runs on the calling thread.
import { loadBlas } from '../src/runtime/blas-kernels.js';
import { createDnnlMatmul } from '../src/runtime/dnnl.js';
import { createMemory } from '../src/wasm/loader.js';

export interface GemmRate { gflops: number; library: string; dtype: 'f32' | 'bf16' }

/** GFLOP/s (2·M·N·K per call, mean over ≥ 1 s and ≥ 5 calls after one warm call) of x [M, K] · Wᵀ
 *  (W [N, K]) for each library and operand type that loads; `dtypes` picks which are measured. */
export function gemmRates(M: number, N: number, K: number, dtypes: readonly ('f32' | 'bf16')[] = ['f32']): GemmRate[] {
  const memory = createMemory(Math.ceil(((M + N) * K + M * N) * 4 / 65536) + 1);
  const f = new Float32Array(memory.buffer);
  for (let i = 0; i < (M + N) * K; i++) f[i] = Math.sin(i * 0.7) * 0.1;
  const rate = (call: () => void) => {
    call();
    let runs = 0; const t0 = performance.now();
    while (performance.now() - t0 < 1000 || runs < 5) { call(); runs++; }
    const s = (performance.now() - t0) / 1000 / runs;
    return +(2 * M * N * K / s / 1e9).toFixed(2);
  };
  const out: GemmRate[] = [];
  if (dtypes.includes('f32')) {
    try {
      const blas = loadBlas();
      const base = blas.baseOf(memory), x = base, w = base + M * K * 4, y = w + N * K * 4;
      out.push({ library: `${blas.label} sgemm`, dtype: 'f32', gflops: rate(() => blas.sgemm(101, 111, 112, M, N, K, 1, x, K, w, K, 0, y, N)) });
    } catch { /* no CBLAS library */ }
  }
  for (const dtype of dtypes) {
    try {
      const mm = createDnnlMatmul({ N, K, dtype, weights: new Float32Array(memory.buffer, M * K * 4, N * K) });
      try {
        const base = mm.library.baseOf(memory), x = base, y = base + (M + N) * K * 4;
        out.push({ library: `${mm.library.label} ${dtype} matmul (${mm.impl(M)})`, dtype, gflops: rate(() => mm.run(x, M, K, y, N)) });
      } finally { mm.destroy(); }
    } catch { /* no oneDNN */ }
  }
  return out;
}
