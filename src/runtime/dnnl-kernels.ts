// The 'dnnl' engine, and the kernels of precision 'bf16' (ForwardOptions.precision):
//
// - bindDnnlKernels: the 'dnnl' engine. Every GEMM is a oneDNN matmul — at precision 'bf16' with
//   bfloat16 operands and float32 accumulation (src rows rounded to nearest even by oneDNN's reorder
//   on the way in), at 'f32' with float32 operands — on weights reordered once, at pack time, into
//   the blocked layout oneDNN picks, in the shared memory (one copy, read by every worker); except
//   BF16 weights at 'f32', which stay BF16 and are widened per call into a plain-weights matmul.
//   Everything else (norms, rotary, retention, gates) is the base engine's (CBLAS + WASM, or WASM),
//   float32 as at precision 'f32'.
// - bf16Rounding: the fallback on the 'wasm' and 'blas' engines (no oneDNN, or a CPU without
//   bfloat16 dot products): the same operands — x rounded to bfloat16 in place before each GEMM,
//   float32 weights rounded to bfloat16 when packed, BF16 weights as stored — multiplied by the
//   engine's float32 GEMM, which is exact on them (a product of two bfloat16 values is exact in
//   float32), so the two differ only in float32 accumulation order.
//
// Rounding x in place is safe because every GEMM input of the chunk worker (the normed rows, the
// gated retention output, the MLP's hidden rows) is read by GEMMs only.
import { errors } from '../errors.js';
import { envValue } from '../env.js';
import { createDnnlMatmul, dnnlBf16Missing, loadDnnl, type DnnlLibrary, type DnnlMatmul } from './dnnl.js';
import { ACT_FNS, type RuntimeKernels } from './kernels.js';
import { loadKernelsSync, type VariantRequest } from '../wasm/loader.js';
import { OP, runCall, type Call } from './step-helper.js';

const F4 = 4;

/** Round `rows` rows of `cols` float32 values (row stride ld, byte offset x) to bfloat16 in place:
 *  round to nearest even; ±Inf stay; a NaN stays a (quiet) NaN; values past the largest bfloat16 become ±Inf. */
export function roundRowsBf16(memory: WebAssembly.Memory, x: number, rows: number, cols: number, ld: number): void {
  const u = new Uint32Array(memory.buffer);
  for (let r = 0; r < rows; r++) {
    const o = (x >>> 2) + r * ld;
    for (let i = o; i < o + cols; i++) {
      const v = u[i]!;
      u[i] = (v & 0x7fffffff) > 0x7f800000 ? (v | 0x400000) & 0xffff0000 : (v + 0x7fff + ((v >>> 16) & 1)) & 0xffff0000;
    }
  }
}

/** The fallback: `base` with bfloat16 operands (see the file comment). Weights packed from float32 are
 *  rounded in their staging copy; BF16 weights are already bfloat16. */
export function bf16Rounding(base: RuntimeKernels, memory: WebAssembly.Memory): RuntimeKernels {
  return {
    ...base,
    name: `${base.name}, bf16 operands widened to float32`,
    precision: 'bf16',
    pack(w, N, K, out) { roundRowsBf16(memory, w, N, K, K); base.pack(w, N, K, out); },
    gemm(x, M, K, ldx, w, N, b, y, ldy, act, acc, scratch) {
      roundRowsBf16(memory, x, M, K, ldx);
      base.gemm(x, M, K, ldx, w, N, b, y, ldy, act, acc, scratch);
    },
    gemmBf16(x, M, K, ldx, w, N, b, y, ldy, act, acc, scratch, wide) {
      roundRowsBf16(memory, x, M, K, ldx);
      base.gemmBf16(x, M, K, ldx, w, N, b, y, ldy, act, acc, scratch, wide);
    },
  };
}

/** Column blocks of a weight cut in `T` parts: [first column, columns] per block, at most T of them,
 *  each a multiple of 64 columns but the last (oneDNN's brgemm takes N in blocks of up to 64). */
export function dnnlColumnBlocks(N: number, T: number): [number, number][] {
  const per = Math.ceil(N / T / 64) * 64, out: [number, number][] = [];
  for (let n0 = 0; n0 < N; n0 += per) out.push([n0, Math.min(per, N - n0)]);
  return out;
}

/** Column blocks of a weight for `T` threads that claim them, big ones first: T blocks of about
 *  3/4 of N ÷ T, then the rest in 2T smaller ones (multiples of 64 columns but the last), so a thread
 *  that finishes its big block early takes more of the small ones, and the one still running at the end
 *  of the round runs a small block. N too small to split that way: dnnlColumnBlocks(N, T). */
export function guidedColumnBlocks(N: number, T: number): [number, number][] {
  const big = Math.floor((N * 3) / 4 / T / 64) * 64;
  if (T < 2 || big === 0) return dnnlColumnBlocks(N, T);
  const out: [number, number][] = [];
  for (let t = 0; t < T; t++) out.push([t * big, big]);
  const rest = N - T * big, per = Math.ceil(rest / (2 * T) / 64) * 64;
  for (let n0 = T * big; n0 < N; n0 += per) out.push([n0, Math.min(per, N - n0)]);
  return out;
}

/** The 'dnnl' engine with every weight packed as column blocks (dnnlColumnBlocks(N, blocks)), each its own
 *  oneDNN matrix one after another (64-byte aligned): a thread that runs block t's product reads only
 *  its columns. `calls` gives one call per block (OP.gemm on block t's W, columns, bias and output),
 *  which any thread's 'dnnl' engine (bindDnnlKernels, blocks 1) runs; gemm runs them in turn here. */
export interface BlockedDnnlKernels extends RuntimeKernels {
  library: DnnlLibrary;
  calls(x: number, M: number, K: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean): Call[];
  /** packWhole's work as one call per block (OP.packWhole on block t's rows of w and its place in out),
   *  which any thread's 'dnnl' engine runs: the blocks' reorders spread over a team */
  packCalls(w: number, dtype: 'f32' | 'bf16', N: number, K: number, out: number): Call[];
  /** this engine on one block (its gemm takes a block's W as a whole matrix): what runs a share here */
  block: RuntimeKernels;
  /** the column blocks of a packed [N, K] weight: rows [n0, n0 + nn) of W, packed at byte offset `off`
   *  (so a caller may stage and pack one block at a time: block.packWhole on its rows, at W + off) */
  blocksOf(N: number, K: number): readonly { n0: number; nn: number; off: number }[];
}

/** The 'dnnl' engine over `base` (see the file comment). `path`: the oneDNN library (RETNET_DNNL).
 *  `threads`: the oneDNN threads of its products (default 1: a pool worker); with more, the caller sets
 *  the thread's count (DnnlLibrary.setThreads) around its calls, as primitives are made on first use.
 *  `blocks` > 1: weights packed in column blocks (BlockedDnnlKernels). `dtype`: the products' operands,
 *  'bf16' (default) or 'f32'. */
export function bindDnnlKernels(memory: WebAssembly.Memory, base: RuntimeKernels, path?: string, threads?: number): RuntimeKernels & { library: DnnlLibrary };
export function bindDnnlKernels(memory: WebAssembly.Memory, base: RuntimeKernels, path: string | undefined, threads: number, blocks: number,
  /** how a weight is cut: dnnlColumnBlocks(N, blocks) (default), or this */
  cut?: (N: number) => [number, number][], dtype?: 'bf16' | 'f32'): BlockedDnnlKernels;
export function bindDnnlKernels(memory: WebAssembly.Memory, base: RuntimeKernels, path?: string, threads = 1, blocks = 1,
  cut?: (N: number) => [number, number][], dtype: 'bf16' | 'f32' = 'bf16'): BlockedDnnlKernels {
  const lib = loadDnnl(path);
  const at = (off: number) => lib.baseOf(memory) + off;
  // one matmul per weight shape: its weights memory is pointed at each call's W (run's weightsAt)
  const byShape = new Map<string, DnnlMatmul>();
  const matmul = (N: number, K: number, W: number): DnnlMatmul => {
    const key = `${N}x${K}`;
    let m = byShape.get(key);
    if (!m) { m = createDnnlMatmul({ N, K, dtype, packedAt: at(W), path, threads }); byShape.set(key, m); }
    return m;
  };
  const sizes = new Map<string, number>();
  const packedBytes = (N: number, K: number): number => {
    const key = `${N}x${K}`;
    let b = sizes.get(key);
    if (b === undefined) {
      const m = createDnnlMatmul({ N, K, dtype, path, sizeOnly: true });
      b = m.packedBytes; m.destroy();
      sizes.set(key, b);
    }
    return b;
  };
  // the epilogue's bias rows and activations on the WASM kernels (the same code as the float32 GEMM's)
  const wk = loadKernelsSync({ memory, variant: (envValue('RETNET_WASM_VARIANT') ?? 'auto') as VariantRequest });
  // y (=|+=) act(x·Wᵀ + b) on matmul `m` with its weights at byte offset W
  const product = (m: DnnlMatmul, x: number, M: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean): void => {
    if (!(acc && act !== 0)) {
      // y = [old y +] x·Wᵀ on oneDNN, then y += b (one bias row, lda 0), then y = act(y) — WASM SIMD
      m.run(at(x), M, ldx, at(y), ldy, acc, at(W));
      if (b) wk.f32_add__wasmsimd(M, N, b, 0, y, ldy);
      if (act) wk.f32_act__wasmsimd(M, N, y, ldy, act);
      return;
    }
    // an activation into an accumulated output (no family has one): the product into y, then
    // y = old y + act(y + b), float32 per element in JavaScript
    const F = new Float32Array(memory.buffer);
    const y0 = y >>> 2, b0 = b >>> 2, f = ACT_FNS[act];
    if (!f) throw errors.engine(`dnnl engine: unknown activation code ${act}`);
    let old: Float32Array | null = null;
    if (acc) {
      old = new Float32Array(M * N);
      for (let r = 0; r < M; r++) old.set(F.subarray(y0 + r * ldy, y0 + r * ldy + N), r * N);
    }
    m.run(at(x), M, ldx, at(y), ldy, false, at(W));
    for (let r = 0; r < M; r++) {
      for (let j = 0; j < N; j++) {
        const i = y0 + r * ldy + j;
        const v = f(b ? F[i]! + F[b0 + j]! : F[i]!);
        F[i] = old ? old[r * N + j]! + v : v;
      }
    }
  };
  const gemm = (x: number, M: number, K: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean): void =>
    product(matmul(N, K, W), x, M, ldx, W, N, b, y, ldy, act, acc);
  const packOne = (w: number, wt: 'f32' | 'bf16', N: number, K: number, out: number): void => {
    createDnnlMatmul({ N, K, dtype, weights: at(w), weightsType: wt, packedAt: at(out), path }).destroy();
  };
  // column blocks: block t is rows [n0, n0 + nn) of W [N, K], packed at its offset (64-byte aligned)
  const layouts = new Map<string, { n0: number; nn: number; off: number }[]>();
  const layout = (N: number, K: number): { n0: number; nn: number; off: number }[] => {
    const key = `${N}x${K}`;
    let l = layouts.get(key);
    if (!l) {
      let off = 0;
      l = (cut ? cut(N) : dnnlColumnBlocks(N, blocks)).map(([n0, nn]) => {
        const o = off;
        off += Math.ceil(packedBytes(nn, K) / 64) * 64;
        return { n0, nn, off: o };
      });
      layouts.set(key, l);
    }
    return l;
  };
  const totalBytes = (N: number, K: number): number => {
    if (blocks === 1 && !cut) return packedBytes(N, K);
    const l = layout(N, K).at(-1)!;
    return l.off + packedBytes(l.nn, K);
  };
  const packWhole = (w: number, wt: 'f32' | 'bf16', N: number, K: number, out: number): void => {
    if (blocks === 1 && !cut) { packOne(w, wt, N, K, out); return; }
    for (const { n0, nn, off } of layout(N, K)) packOne(w + n0 * K * (wt === 'bf16' ? 2 : F4), wt, nn, K, out + off);
  };
  const calls = (x: number, M: number, K: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean): Call[] =>
    layout(N, K).map(({ n0, nn, off }) => [OP.gemm, x, M, K, ldx, W + off, nn, b ? b + n0 * F4 : 0, y + n0 * F4, ldy, act, acc ? 1 : 0, 0]);
  // every block in turn on this thread (a caller without helpers)
  const gemmAll = (x: number, M: number, K: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean): void => {
    if (blocks === 1 && !cut) { gemm(x, M, K, ldx, W, N, b, y, ldy, act, acc); return; }
    for (const c of calls(x, M, K, ldx, W, N, b, y, ldy, act, acc)) runCall(one, c);
  };
  const one: RuntimeKernels = {
    ...base,
    packBf16Bits: undefined, // oneDNN's weights are in its own layout (packWhole)
    name: `${lib.label}, ${dtype === 'bf16' ? 'bf16 operands' : 'f32 operands'}`,
    precision: dtype,
    packedSize: (N, K) => Math.ceil(packedBytes(N, K) / F4),
    packedBf16Bytes: (N, K) => packedBytes(N, K),
    bf16ScratchBytes: () => 0,
    gemmScratchBytes: () => 64,
    pack(w, N, K, out) { packOne(w, 'f32', N, K, out); },
    packBf16() { throw errors.engine('dnnl engine: weights are packed whole (packWhole), not in row blocks'); },
    packWhole: packOne,
    gemm(x, M, K, ldx, w, N, b, y, ldy, act, acc) { gemm(x, M, K, ldx, w, N, b, y, ldy, act, acc); },
    gemmBf16(x, M, K, ldx, w, N, b, y, ldy, act, acc) { gemm(x, M, K, ldx, w, N, b, y, ldy, act, acc); },
  };
  if (dtype === 'f32' && blocks === 1 && !cut) {
    // float32 operands: a float32 weight is reordered once (pack); a BF16 one stays BF16 in memory
    // (half the bytes: the fla-hub 1.3B fits the shared memory only so) and is widened into `wide` per
    // call, then multiplied by a matmul that takes plain [N, K] weights (no reorder; one per shape)
    const plain = new Map<string, DnnlMatmul>();
    const plainOf = (N: number, K: number): DnnlMatmul => {
      const key = `${N}x${K}`;
      let m = plain.get(key);
      if (!m) { m = createDnnlMatmul({ N, K, dtype, plainWeights: true, path, threads }); plain.set(key, m); }
      return m;
    };
    // Where oneDNN's float32 matmul is not a brgemm one (below AVX-512: gemm:jit), the reordered and the plain
    // weights run different kernels with different sums, so a float32 weight stays plain too (copied when
    // packed) and takes the same plain-weights matmul as a widened BF16 one: BF16 = widened float32, bit for bit
    const plainF32 = !dnnlImplFor(64, 64, 512, path, 'f32').startsWith('brg:');
    const f32: RuntimeKernels & { library: DnnlLibrary } = {
      ...one,
      library: lib,
      packWhole: undefined,
      ...(plainF32 ? {
        packedSize: (N: number, K: number) => N * K,
        gemm(x: number, M: number, K: number, ldx: number, w: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean) {
          product(plainOf(N, K), x, M, ldx, w, N, b, y, ldy, act, acc);
        },
      } : {}),
      pack(w, N, K, out) {
        if (plainF32) new Float32Array(memory.buffer).copyWithin(out >>> 2, w >>> 2, (w >>> 2) + N * K);
        else packOne(w, 'f32', N, K, out);
      },
      packedBf16Bytes: (N, K) => (N * K * 2 + 63) & ~63,
      packBf16: (w, N, K, out) => wk.f32_narrow_bf16__wasmsimd(N * K, w, out) === 0,
      bf16ScratchBytes: (N, K) => N * K * F4 + 64,
      gemmBf16(x, M, K, ldx, w, N, b, y, ldy, act, acc, _scratch, wide) {
        const wd = Math.ceil(wide / 64) * 64;
        wk.f32_widen_bf16__wasmsimd(N * K, w, wd);
        product(plainOf(N, K), x, M, ldx, wd, N, b, y, ldy, act, acc);
      },
    };
    return f32 as BlockedDnnlKernels; // one block: `calls` and `block` are for blocks > 1 only (the stepper's)
  }
  return {
    ...one,
    library: lib,
    packedSize: (N, K) => Math.ceil(totalBytes(N, K) / F4),
    packedBf16Bytes: (N, K) => totalBytes(N, K),
    pack(w, N, K, out) { packWhole(w, 'f32', N, K, out); },
    packWhole,
    gemm(x, M, K, ldx, w, N, b, y, ldy, act, acc) { gemmAll(x, M, K, ldx, w, N, b, y, ldy, act, acc); },
    gemmBf16(x, M, K, ldx, w, N, b, y, ldy, act, acc) { gemmAll(x, M, K, ldx, w, N, b, y, ldy, act, acc); },
    calls,
    packCalls: (w, wt, N, K, out) => layout(N, K).map(({ n0, nn, off }): Call => [OP.packWhole, w + n0 * K * (wt === 'bf16' ? 2 : F4), wt === 'bf16' ? 1 : 0, nn, K, out + off]),
    block: one,
    blocksOf: layout,
  };
}

/** Whether precision 'bf16' under kernel request `req` runs on oneDNN — the one rule the pool's engine
 *  choice and the LM head share: 'auto' takes oneDNN where it loads and reports bfloat16 dot products
 *  (AVX512-BF16, AMX; elsewhere it would emulate them, slower than the float32 GEMM), 'dnnl' wherever
 *  it loads (E_ENGINE when it does not), any other request never. `why` says why not, when it is not. */
export function dnnlForBf16(req: string): { lib: DnnlLibrary | null; why?: string } {
  if (req !== 'auto' && req !== 'dnnl') return { lib: null };
  let lib: DnnlLibrary;
  try { lib = loadDnnl(envValue('RETNET_DNNL')); } catch (e) {
    if (req === 'dnnl') throw e;
    return { lib: null, why: `oneDNN unavailable: ${(e as Error).message}` };
  }
  if (lib.hasBf16Hardware) return { lib };
  if (req === 'dnnl') {
    const no = dnnlBf16Missing(lib.path);
    if (no) throw errors.engine(`kernels 'dnnl' at precision 'bf16': ${no}; kernels 'auto' runs bf16 as rounded operands on the WASM or CBLAS engine`);
    return { lib };
  }
  return { lib: null, why: `oneDNN dispatches to ${lib.isa} here, which has no bfloat16 dot products: bfloat16 operands are widened to float32` };
}

/** Which implementation oneDNN runs for a matmul of this shape, row count and operand type (for backendInfo). */
export function dnnlImplFor(N: number, K: number, M: number, path?: string, dtype: 'bf16' | 'f32' = 'bf16'): string {
  const w = new Float32Array(N * K);
  const m = createDnnlMatmul({ N, K, dtype, weights: w, path });
  try { return m.impl(M); } finally { m.destroy(); }
}
