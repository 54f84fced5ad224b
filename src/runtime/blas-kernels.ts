// The CBLAS engine: the RuntimeKernels contract with its big GEMMs on a
// native CBLAS library (OpenBLAS by default; RETNET_BLAS=/path picks another)
// loaded at run time through koffi, and everything else on the WASM kernels
// in the same thread. cblas_sgemm reads and writes the one shared
// WebAssembly.Memory in place: a pointer is the memory's base address plus a
// byte offset (the base is the same in every worker and stays put across
// memory.grow, since a shared memory reserves its maximum up front).
//
// Packed weight layout (pack/packedSize): [ W raw [N, K] | WASM 8-column panels ].
// GEMMs with at least GEMM_MIN_ROWS rows run on BLAS over the raw copy; smaller
// ones (where BLAS's per-call repacking of W loses) on the WASM GEMM over the panels.
// Which path runs depends only on the call's sizes, never on the worker or window,
// so outputs stay bitwise identical for any worker count and window size.
import { errors } from '../errors.js';
import { tileFloats, type RuntimeKernels } from './kernels.js';
import { loadKernelsSync, type VariantRequest } from '../wasm/loader.js';
import { BF16_BLOCK_COLS, wasmContract } from './wasm-kernels.js';
import { envValue } from '../env.js';
import { cpuFeatures, hasFlags, type CpuFeatures } from './cpu.js';

/** Rows from which a projection/MLP GEMM goes to BLAS (bench/blas-crossover.ts, CPU time, seed shapes:
 *  BLAS/WASM 0.72–1.01× at 4 rows, 1.12–1.84× at 8, 1.62–1.84× at 12, 2.1–4.2× at 256). */
export const GEMM_MIN_ROWS = 12;
/** Chunk length from which the intra-chunk retention, chunk summary and cross term run on BLAS
 *  (same bench: intra 0.45–0.76× at 16 tokens, 1.14–1.89× at 32, 4.2–5.8× at 512; summary + cross ≥ 1.03× from 16). */
export const INTRA_MIN_ROWS = 32;
/** Row block of the BLAS intra-chunk retention: block b only multiplies columns [0, end of block b). */
export const INTRA_BLOCK = 64;
/** A·v of the BLAS intra-chunk retention in K blocks of this many tokens, each sgemm adding into o
 *  (β = 1): OpenBLAS sums a whole K block per output element in one float32 chain, so one sgemm over
 *  the chunk's j has an error ∝ min(n, its K block) — 16.9·2⁻²⁴·Σ|terms| at n = 512 on positive
 *  data against 6.7 in blocks of 64 (∝ 64 + n/64), at 0.81 vs 0.87 ms (n = 512), +3% at n = 4,096,
 *  +7% at 2,048 (seed head, CPU time; a scratch timing). */
export const INTRA_AV_BLOCK = 64;

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;
const F4 = 4;

/** Library names tried in order when RETNET_BLAS is not set. */
export const BLAS_CANDIDATES: readonly string[] = process.platform === 'darwin'
  ? ['libopenblas.dylib', '/opt/homebrew/opt/openblas/lib/libopenblas.dylib', '/usr/local/opt/openblas/lib/libopenblas.dylib',
    '/System/Library/Frameworks/Accelerate.framework/Accelerate']
  : process.platform === 'win32'
    ? ['libopenblas.dll', 'openblas.dll', 'mkl_rt.dll']
    : ['libopenblas.so.0', 'libopenblas.so', 'libopenblasp.so.0', 'libmkl_rt.so', 'libmkl_rt.so.2', 'libblis.so.4', 'libblis.so'];

export const BLAS_INSTALL_HINT = 'install OpenBLAS (Debian/Ubuntu: apt-get install -y libopenblas0-pthread; macOS: brew install openblas) or set RETNET_BLAS=/path/to/a/cblas/library';

type Sgemm = (order: number, ta: number, tb: number, M: number, N: number, K: number, alpha: number,
  a: number, lda: number, b: number, ldb: number, beta: number, c: number, ldc: number) => void;
type Sgemv = (order: number, ta: number, M: number, N: number, alpha: number, a: number, lda: number,
  x: number, incx: number, beta: number, y: number, incy: number) => void;

export interface BlasLibrary {
  /** what was loaded: the path or name given to the loader */
  path: string;
  /** e.g. 'openblas 0.3.21 (SkylakeX)': name, version and, for OpenBLAS, the kernel set it runs */
  label: string;
  /** set where OpenBLAS runs kernels below what the CPU has (openblasCoreNote), for backendInfo's note */
  note?: string;
  sgemm: Sgemm;
  sgemv: Sgemv;
  /** the address of a shared memory's first byte */
  baseOf(memory: WebAssembly.Memory): number;
}

import { loadFirst, loadLibc, pinLibrary, memoryBase, requireKoffi, type KLib } from './native-lib.js';

function tryFunc(lib: KLib, decl: string): ((...a: unknown[]) => unknown) | null {
  try { return lib.func(decl) as (...a: unknown[]) => unknown; } catch { return null; }
}

/** The AVX-512 subsets OpenBLAS's AVX-512 kernels (SkylakeX and later) use. */
const AVX512_FLAGS = ['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'];
/** OpenBLAS's x86 kernel sets that use AVX-512. */
const AVX512_CORES = ['skylakex', 'cooperlake', 'sapphirerapids'];

/** A note for backendInfo when OpenBLAS runs kernels below what the CPU has — AVX2 or older kernels on
 *  a CPU with AVX-512 — else null. OpenBLAS picks its kernel set from the CPU model, unless
 *  OPENBLAS_CORETYPE names one (read once, when the library loads; retnet never sets it). Measured on an
 *  AMD EPYC (Zen 5, AVX-512) on 2026-12-06: OpenBLAS 0.3.21 chose its Cooperlake kernels, and
 *  cblas_sgemm (512 × 2,048 × 512, one thread) ran at 167–191 GFLOP/s on them against 66–97 on the
 *  Haswell kernels that OPENBLAS_CORETYPE=Haswell selects. `core`: openblas_get_corename(); `env`: the
 *  OPENBLAS_CORETYPE the library saw (undefined: not set). */
export function openblasCoreNote(cpu: CpuFeatures, core: string, env: string | undefined): string | null {
  if (!hasFlags(cpu, ...AVX512_FLAGS) || AVX512_CORES.includes(core.toLowerCase())) return null;
  return env !== undefined
    ? `OpenBLAS runs its ${core} kernels because OPENBLAS_CORETYPE=${env} is set; this CPU has AVX-512, where OpenBLAS's AVX-512 kernels multiply up to about twice as fast (unset OPENBLAS_CORETYPE to let OpenBLAS choose)`
    : `OpenBLAS chose its ${core} kernels on a CPU with AVX-512 (a release older than the CPU?); its AVX-512 kernels (OPENBLAS_CORETYPE=SkylakeX) may multiply up to about twice as fast`;
}

/** One BLAS thread per caller (the pool is the parallelism), and the library's name + version
 *  (+ OpenBLAS's kernel set). */
function configure(lib: KLib, path: string): string | { label: string; core?: string } {
  const oset = tryFunc(lib, 'void openblas_set_num_threads(int)');
  if (oset) {
    oset(1);
    const cfg = tryFunc(lib, 'const char *openblas_get_config()')?.() as string | undefined;
    const m = /OpenBLAS\s+([\d.]+)/i.exec(cfg ?? '');
    const core = tryFunc(lib, 'const char *openblas_get_corename()')?.() as string | undefined;
    return { label: `openblas ${m ? m[1] : 'unknown version'}${core ? ` (${core})` : ''}`, core };
  }
  const mset = tryFunc(lib, 'int MKL_Set_Num_Threads_Local(int)') ?? tryFunc(lib, 'void MKL_Set_Num_Threads(int)');
  if (mset) {
    mset(1);
    const ver = tryFunc(lib, 'int MKL_Get_Version_String(_Out_ char *buf, int len)');
    if (ver) { const buf = Buffer.alloc(256); ver(buf, 256); return `mkl ${buf.toString('latin1').replace(/\0.*$/s, '').trim()}`; }
    return 'mkl';
  }
  const bset = tryFunc(lib, 'void bli_thread_set_num_threads(int64_t)');
  if (bset) {
    bset(1);
    const v = tryFunc(lib, 'const char *bli_info_get_version_str()')?.() as string | undefined;
    return `blis ${v ?? 'unknown version'}`;
  }
  // Accelerate and others: no portable thread setter (Accelerate honours VECLIB_MAXIMUM_THREADS).
  return path.includes('Accelerate') ? 'accelerate' : `cblas (${path})`;
}

const loaded = new Map<string, BlasLibrary>();

/** Loads a CBLAS library: `path` (RETNET_BLAS) or the first of BLAS_CANDIDATES that loads.
 *  Throws E_ENGINE naming every attempt and the install command. */
export function loadBlas(path: string | undefined = envValue('RETNET_BLAS')): BlasLibrary {
  const key = path ?? '';
  const have = loaded.get(key);
  if (have) return have;
  const koffi = requireKoffi('the BLAS engine');
  const r = loadFirst(koffi, path ? [path] : BLAS_CANDIDATES, (lib, name): BlasLibrary | string => {
    const sgemm = tryFunc(lib, 'void cblas_sgemm(int, int, int, int, int, int, float, uintptr_t, int, uintptr_t, int, float, uintptr_t, int)');
    const sgemv = tryFunc(lib, 'void cblas_sgemv(int, int, int, int, float, uintptr_t, int, uintptr_t, int, float, uintptr_t, int)');
    if (!sgemm || !sgemv) return 'exports no cblas_sgemm/cblas_sgemv';
    const c = configure(lib, name), label = typeof c === 'string' ? c : c.label;
    const note = typeof c !== 'string' && c.core ? openblasCoreNote(cpuFeatures(), c.core, process.env.OPENBLAS_CORETYPE) : null;
    return { path: name, label, ...(note ? { note } : {}), sgemm: sgemm as Sgemm, sgemv: sgemv as Sgemv, baseOf: memoryBase(loadLibc(koffi)) };
  });
  if ('value' in r) { pinLibrary(koffi, r.value.path); loaded.set(key, r.value); return r.value; } // see pinLibrary
  const tried = r.tried;
  throw errors.engine(`no CBLAS library could be loaded for the BLAS engine; tried: ${tried.join('; ')}. To use it, ${BLAS_INSTALL_HINT}; or use kernels: 'wasm'`);
}

/** Columns of BF16 panels a gemmBf16Rows call unpacks at a time (its scratch: this many rows of K floats). */
export const PANEL_BLOCK_COLS = 512;

/** Bytes of scratch gemmBf16Rows needs for products of up to K inputs. */
export const panelScratchBytes = (K: number): number => PANEL_BLOCK_COLS * K * F4;

/** y = [y +] b + x·Wᵀ (then act) on BLAS, W raw [N, K] float32 (the CBLAS engine's product). */
function blasProduct(memory: WebAssembly.Memory, wk: ReturnType<typeof loadKernelsSync>, blas: BlasLibrary) {
  const base = blas.baseOf(memory);
  return (x: number, M: number, K: number, ldx: number, w: number, N: number, b: number, y: number, ldy: number, act: number, accumulate: boolean): void => {
    if (!accumulate) {
      if (b) { const m = new Float32Array(memory.buffer); for (let i = 0; i < M; i++) m.copyWithin((y >>> 2) + i * ldy, b >>> 2, (b >>> 2) + N); }
    } else if (b) wk.f32_add__wasmsimd(M, N, b, 0, y, ldy); // lda 0: the bias row added to every row
    blas.sgemm(ROW_MAJOR, NO_TRANS, TRANS, M, N, K, 1, base + x, ldx, base + w, K, accumulate || b ? 1 : 0, base + y, ldy);
    if (act !== 0) wk.f32_act__wasmsimd(M, N, y, ldy, act);
  };
}

/** Where BLAS takes over (defaults: the measured crossovers above; benchmarks and tests move them). */
export interface BlasTuning { gemmMinRows: number; intraMinRows: number; intraBlock: number; /** default INTRA_AV_BLOCK */ intraAvBlock?: number }

/** The CBLAS engine over a shared memory: BLAS for the GEMMs, WASM (`variant`) for the rest. */
export function bindBlasKernels(memory: WebAssembly.Memory, variant: string, path?: string,
  tune: BlasTuning = { gemmMinRows: GEMM_MIN_ROWS, intraMinRows: INTRA_MIN_ROWS, intraBlock: INTRA_BLOCK }): RuntimeKernels {
  const blas = loadBlas(path);
  const wk = loadKernelsSync({ memory, variant: variant as VariantRequest });
  const W = wasmContract(wk);
  const base = blas.baseOf(memory);
  const { sgemm, sgemv } = blas;
  const F = () => new Float32Array(memory.buffer);
  const raw = (N: number, K: number) => (N * K + 15) & ~15; // floats of the raw copy, panels 64-byte aligned after it
  // y ← b (or y += b), then y += x·Wᵀ on BLAS (W raw [N, K] at w), then the activation in place
  const blasGemm = blasProduct(memory, wk, blas);
  return {
    ...W,
    packBf16Bits: undefined, // BF16 weights here are raw rows (packBf16 below), not panels
    name: `${blas.label} + ${W.name}`,
    tileFloats, // the C×C score tile of the BLAS intra-chunk GEMMs (or the WASM kernels' scratch, if larger)
    packedSize: (N, K) => raw(N, K) + W.packedSize(N, K),
    pack(w, N, K, out) {
      F().copyWithin(out / F4, w / F4, w / F4 + N * K);
      W.pack(w, N, K, out + raw(N, K) * F4);
    },
    // y[M,N] (=|+=) act(x[M,K]·Wᵀ + b); W raw [N, K] at wp
    gemm(x, M, K, ldx, wp, N, b, y, ldy, act, accumulate, scratch) {
      if (M < tune.gemmMinRows || (accumulate && act !== 0)) {
        W.gemm(x, M, K, ldx, wp + raw(N, K) * F4, N, b, y, ldy, act, accumulate, scratch);
        return;
      }
      blasGemm(x, M, K, ldx, wp, N, b, y, ldy, act, accumulate);
    },
    // BF16 weights raw [N, K] (no panels: half the float32 raw copy alone). Where the float32 path takes
    // BLAS, the whole weight is widened into `wide` and goes to the same sgemm call; where it takes the
    // WASM GEMM, blocks of rows are widened and packed into panels in `wide` — the same operands either way.
    packedBf16Bytes: (N, K) => ((N * K * 2 + 63) & ~63),
    packBf16: (w, N, K, out) => wk.f32_narrow_bf16__wasmsimd(N * K, w, out) === 0,
    bf16ScratchBytes: (N, K) => Math.max(N * K, Math.min(N, BF16_BLOCK_COLS) * K + W.packedSize(Math.min(N, BF16_BLOCK_COLS), K)) * F4,
    gemmBf16(x, M, K, ldx, wp, N, b, y, ldy, act, accumulate, scratch, wide) {
      if (M < tune.gemmMinRows || (accumulate && act !== 0)) {
        for (let n0 = 0; n0 < N; n0 += BF16_BLOCK_COLS) {
          const nb = Math.min(BF16_BLOCK_COLS, N - n0), panels = wide + nb * K * F4;
          wk.f32_widen_bf16__wasmsimd(nb * K, wp + n0 * K * 2, wide);
          W.pack(wide, nb, K, panels);
          W.gemm(x, M, K, ldx, panels, nb, b ? b + n0 * F4 : 0, y + n0 * F4, ldy, act, accumulate, scratch);
        }
        return;
      }
      wk.f32_widen_bf16__wasmsimd(N * K, wp, wide);
      blasGemm(x, M, K, ldx, wide, N, b, y, ldy, act, accumulate);
    },
    // the WASM engine's BF16 8-column panels (the recurrent step's, for its prefill): blocks of
    // PANEL_BLOCK_COLS columns unpacked into row-major float32 in `scratch` (exact), then the same product
    gemmBf16Rows(x, M, K, ldx, wp, N, b, y, ldy, act, accumulate, scratch) {
      if (accumulate && act !== 0) throw errors.engine('BLAS engine: an activation into an accumulated output of BF16 panels');
      for (let n0 = 0; n0 < N; n0 += PANEL_BLOCK_COLS) {
        const nb = Math.min(PANEL_BLOCK_COLS, N - n0);
        wk.f32_unpack_panels_bf16__wasmsimd(nb, K, wp + n0 * K * 2, scratch);
        blasGemm(x, M, K, ldx, scratch, nb, b ? b + n0 * F4 : 0, y + n0 * F4, ldy, act, accumulate);
      }
    },
    // S[dk,dv] = kζᵀ v and z[dk] = kζᵀ·1 (BLAS), kζ[j,:] = pow[n−1−j] k_j (WASM row scaling into the tile)
    // tile // [n, dk] kζ, then ones [n]
    summary(k, v, n, dk, dv, ldk, ldv, pow, S, z, tile) {
      if (n < Math.max(8, tune.intraMinRows)) { W.summary(k, v, n, dk, dv, ldk, ldv, pow, S, z, tile); return; }
      const kz = tile, ones = tile + n * dk * F4;
      wk.f32_scale_rows__wasmsimd(n, dk, k, ldk, pow + (n - 1) * F4, -1, kz, dk);
      F().fill(1, ones >>> 2, (ones >>> 2) + n);
      sgemm(ROW_MAJOR, TRANS, NO_TRANS, dk, dv, n, 1, base + kz, dk, base + v, ldv, 0, base + S, dv);
      sgemv(ROW_MAJOR, TRANS, n, dk, 1, base + kz, dk, base + ones, 1, 0, base + z, 1);
    },
    // o[i,:] += qξ_i S and r[i] += qξ_i·z (BLAS, beta 1), qξ_i = pow[i+1] q_i (WASM row scaling into the tile)
    // tile // [n, dk] qξ
    cross(q, n, dk, dv, ldq, pow, S, z, o, ldo, r, tile) {
      if (n < Math.max(8, tune.intraMinRows)) { W.cross(q, n, dk, dv, ldq, pow, S, z, o, ldo, r, tile); return; }
      wk.f32_scale_rows__wasmsimd(n, dk, q, ldq, pow + F4, 1, tile, dk);
      sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, dv, dk, 1, base + tile, dk, base + S, dv, 1, base + o, ldo);
      sgemv(ROW_MAJOR, NO_TRANS, n, dk, 1, base + tile, dk, base + z, 1, 1, base + r, 1);
    },
    // o[i,:] = Σ_{j≤i} A[i,j] v_j, r[i] = Σ_{j≤i} A[i,j], A[i,j] = (q_i·k_j) pow[i−j];
    // per row block [i0, i1): A = q[i0:i1] k[0:i1]ᵀ (BLAS), A ⊙= decay mask and r = A·1 (one WASM pass), o = A v (BLAS)
    // tile // [n, n] scratch: A block [R, i1] at tile, the mask table [2n] after it
    intra(q, k, v, n, dk, dv, ldq, ldk, ldv, pow, o, ldo, r, tile) {
      if (n < Math.max(8, tune.intraMinRows)) { W.intra(q, k, v, n, dk, dv, ldq, ldk, ldv, pow, o, ldo, r, tile); return; }
      const R = Math.min(tune.intraBlock, n >> 1), avBlock = tune.intraAvBlock ?? INTRA_AV_BLOCK;
      const A = tile, mask = tile + R * n * F4; // R·n + 2n ≤ n² for n ≥ 8
      const m = F();
      // mask[t] = pow[n−1−t] for t < n, 0 after: row i of a block uses mask[n−1−i .. n−1−i+i1)
      const mk = mask >>> 2, pw = pow >>> 2;
      for (let t = 0; t < n; t++) { m[mk + t] = m[pw + n - 1 - t]; m[mk + n + t] = 0; }
      for (let i0 = 0; i0 < n; i0 += R) {
        const i1 = Math.min(n, i0 + R), rows = i1 - i0;
        sgemm(ROW_MAJOR, NO_TRANS, TRANS, rows, i1, dk, 1, base + q + i0 * ldq * F4, ldq, base + k, ldk, 0, base + A, i1);
        wk.f32_mask_rowsum__wasmsimd(rows, i1, mask + (n - 1 - i0) * F4, -1, A, i1, r + i0 * F4); // row i: mask[n−1−i ..]
        for (let j0 = 0; j0 < i1; j0 += avBlock) {
          const kb = Math.min(avBlock, i1 - j0);
          sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, rows, dv, kb, 1, base + A + j0 * F4, i1, base + v + j0 * ldv * F4, ldv, j0 === 0 ? 0 : 1, base + o + i0 * ldo * F4, ldo);
        }
      }
    },
  };
}
