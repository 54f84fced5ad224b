// The LM's final norm + head (logits = norm(x) · Wᵀ; LayerNorm, or RMSNorm in the fla family) on the WASM kernels in
// the calling thread, for the float32 backends: one LayerNorm and one packed
// GEMM per block of rows instead of a scalar JavaScript loop.
//
// At precision 'bf16' the head is a bfloat16 product like the model's others: on oneDNN where the
// CPU has bfloat16 dot products (its bf16 matmul over W reordered once into this head's memory, in
// column blocks, big ones first: guidedColumnBlocks), else the normed rows rounded to bfloat16 (and a float32
// head rounded when packed) on the WASM GEMM. Either way helper threads (src/runtime/step-helper.ts) claim
// blocks of the head's columns — each with its own oneDNN on one thread, or the WASM GEMM — bit for bit one
// thread's result: a decoding step's head, and scoring's between windows, when the pool's workers are
// idle. (No OpenMP team: its threads spin after each call, against the step's helpers on the same cores.)
import { ARENA_BASE, createMemory } from '../wasm/loader.js';
import { wasmContract } from '../runtime/wasm-kernels.js';
import { loadKernelsSync, type Kernels, type VariantRequest } from '../wasm/loader.js';
import { Arena } from '../runtime/arena.js';
import type { RuntimeKernels } from '../runtime/kernels.js';
import { Bf16Matrix } from '../model/bf16.js';
import { packBf16Weight } from '../runtime/pack.js';
import { envValue } from '../env.js';
import { releasePages } from '../wasm/huge-pages.js';
import { availableParallelism } from 'node:os';
import type { Precision } from '../options.js';
import { SEED_NORM_EPS as LN_EPS } from '../model/arch.js';
import type { DnnlLibrary } from '../runtime/dnnl.js';
import { bindDnnlKernels, guidedColumnBlocks, type BlockedDnnlKernels } from '../runtime/dnnl-kernels.js';
import { BLOCKS_PER_THREAD, closeWithOwner, columnCalls, forgetOwner, MAX_STEP_THREADS, StepTeam } from '../runtime/step-helper.js';

const F4 = 4;

/** ln(eᵃ + eᵇ) in float64, without overflow; −∞ is the empty sum, NaN stays NaN. */
export function logAddExp(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return NaN;
  const hi = a > b ? a : b, lo = a > b ? b : a;
  if (lo === -Infinity || hi === Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

export class WasmHead {
  private readonly K: RuntimeKernels;
  private readonly k: Kernels;
  private readonly A: Arena;
  private readonly W: number;   // packed head [V, d]: float32 panels, or BF16 (a BF16 head stays BF16: gemmBf16 widens per block)
  private readonly bf16: boolean;
  private readonly wide: number; // gemmBf16 scratch (0 for a float32 head)
  private readonly g: number; private readonly b: number; // final LayerNorm affine [d]
  private readonly x: number; private readonly h: number; private readonly z: number; private readonly gs: number;
  private readonly lse: number;
  readonly maxRows: number;
  /** precision 'bf16' on oneDNN: its kernels, W in column blocks (else the WASM GEMM) */
  private readonly dnnl: { kernels: BlockedDnnlKernels; lib: DnnlLibrary } | null = null;
  private readonly roundBf16: ((x: number, rows: number, cols: number, ld: number) => void) | null = null;
  /** what computes the head, e.g. 'wasm-relaxed-simd' or 'onednn 2.6.3 (avx512_core_bf16, omp), 2 threads' */
  readonly engine: string;
  // helper threads (started on first use) claim blocks of the head's columns; per-thread scratch (WASM GEMM)
  private readonly threads: number;
  private readonly variant: string;
  private team: StepTeam | null | undefined;
  private readonly gss: number[] = [];
  private readonly wides: number[] = [];
  /** a streamed head (see the constructor's `stream`): the file-backed head, the vocabulary rows per slice,
   *  and the staging of one slice's BF16 bits */
  private readonly source: Bf16Matrix | null = null;
  readonly slice: number;
  private readonly raw: number = 0;

  /** `rmsEps`: the final norm is RMSNorm with that eps (the fla family); undefined: LayerNorm (eps 1e-5). */
  constructor(head: Float32Array | Bf16Matrix, normW: Float32Array, normB: Float32Array, private readonly d: number, private readonly V: number, maxRows = 256,
    private readonly rmsEps?: number, precision: Precision = 'f32',
    bf16Tools?: { dnnl: { lib: DnnlLibrary } | null; round: (m: WebAssembly.Memory, x: number, rows: number, cols: number, ld: number) => void },
    /** threads of the product (default: the machine's available parallelism, at most 8) */
    threads?: number,
    /** Stream the head instead of packing it whole (oneDNN and a file-backed BF16 head only): streamLogprobs
     *  reads the vocabulary from the file `slice` rows at a time, packs each slice and multiplies the rows it
     *  is given by it; logits() is then unavailable. The head's memory is then one slice's bits and its packed
     *  copy, not the whole packed head. */
    stream?: { slice: number }) {
    const memory = createMemory(64);
    this.variant = envValue('RETNET_WASM_VARIANT') ?? 'auto';
    this.k = loadKernelsSync({ memory, variant: this.variant as VariantRequest });
    this.K = wasmContract(this.k);
    this.A = new Arena(memory, ARENA_BASE, 2 ** 31);
    const A = this.A, K = this.K;
    this.maxRows = maxRows;
    this.bf16 = head instanceof Bf16Matrix;
    this.threads = Math.max(1, Math.min(threads ?? availableParallelism(), MAX_STEP_THREADS));
    if (precision === 'bf16') {
      if (!bf16Tools) throw new Error('WasmHead: precision bf16 needs bf16Tools');
      if (bf16Tools.dnnl) {
        const { lib } = bf16Tools.dnnl;
        const T = this.threads;
        this.dnnl = { kernels: bindDnnlKernels(memory, K, lib.path, 1, T, (N) => guidedColumnBlocks(N, T)), lib };
      } else {
        const round = bf16Tools.round;
        this.roundBf16 = (x, rows, cols, ld) => round(A.memory, x, rows, cols, ld);
      }
    }
    this.engine = this.dnnl ? `${this.dnnl.lib.label}, ${this.threads} thread${this.threads === 1 ? '' : 's'}` : K.name;
    this.slice = V;
    if (stream) {
      if (!this.dnnl || !(head instanceof Bf16Matrix) || !head.readsRows || head.resident) throw new Error('WasmHead: a streamed head needs oneDNN and a file-backed BF16 head with a row reader');
      if (!(Number.isInteger(stream.slice) && stream.slice >= 1)) throw new Error('WasmHead: stream.slice must be a positive integer');
      this.source = head; this.slice = Math.min(stream.slice, V);
    }
    const Vw = this.slice;
    const wBytes = this.dnnl ? this.dnnl.kernels.packedBf16Bytes(Vw, d) : this.bf16 ? K.packedBf16Bytes(V, d) : K.packedSize(V, d) * F4;
    this.W = A.persistent(Math.max(64, wBytes), 'LM head');
    this.wide = this.bf16 && !this.dnnl ? A.persistent(K.bf16ScratchBytes(V, d), 'LM head') : 0;
    this.g = A.persistent(d * F4, 'LM head'); A.f32(this.g, d).set(normW);
    this.b = A.persistent(d * F4, 'LM head'); A.f32(this.b, d).set(normB);
    this.x = A.persistent(maxRows * d * F4, 'LM head');
    this.h = A.persistent(maxRows * d * F4, 'LM head');
    this.gs = A.persistent(Math.max(64, K.gemmScratchBytes()), 'LM head');
    this.gss.push(this.gs); this.wides.push(this.wide);
    if (this.source) {
      this.raw = A.persistent(this.slice * d * 2, 'LM head slice staging');
    }
    for (let t = 1; t < this.threads && !this.dnnl; t++) {
      this.gss.push(A.persistent(Math.max(64, K.gemmScratchBytes()), 'LM head'));
      this.wides.push(this.bf16 ? A.persistent(K.bf16ScratchBytes(V, d), 'LM head') : 0);
    }
    if (this.source) {
      // streamed: nothing packed now; each flushStream reads and packs the slices in turn
    } else if (this.dnnl) {
      // oneDNN reorders W (BF16 bits, or float32 rounded to bfloat16) into its blocked layout one column
      // block at a time, each staged alone (a file-backed head: only its rows read): the staging is the
      // largest block, not the whole head (the 1.3B shape's: 47 MiB, not 125)
      const blk = this.dnnl.kernels, parts = blk.blocksOf(V, d), wb = this.bf16 ? 2 : F4;
      const stagingBytes = Math.max(...parts.map((p) => p.nn)) * d * wb;
      const raw = A.transient(stagingBytes, 'LM head staging');
      // (a BF16 head that cannot read rows alone is read once, not once per block)
      const whole = head instanceof Bf16Matrix && !head.readsRows ? head.bits() : null;
      for (const { n0, nn, off } of parts) {
        if (whole) new Uint16Array(A.memory.buffer, raw, nn * d).set(whole.subarray(n0 * d, (n0 + nn) * d));
        else if (head instanceof Bf16Matrix) head.rowBits(n0, nn, new Uint16Array(A.memory.buffer, raw, nn * d)); // read straight into the staging
        else A.f32(raw, nn * d).set(head.subarray(n0 * d, (n0 + nn) * d));
        blk.block.packWhole!(raw, this.bf16 ? 'bf16' : 'f32', nn, d, this.W + off);
      }
      // the staging's pages back to the system: the logits below reuse only their first part (40 of the
      // 1.3B shape's 47 MiB not resident any more)
      releasePages(A.memory, raw, stagingBytes);
      A.reset();
    } else if (head instanceof Bf16Matrix) {
      packBf16Weight({ rows: [head], scale: [1], N: V, K: d, out: this.W, what: 'LM head' }, K, A);
    } else {
      const raw = A.transient(V * d * F4, 'LM head staging');
      A.f32(raw, V * d).set(head);
      this.roundBf16?.(raw, V, d, d);
      K.pack(raw, V, d, this.W);
      A.reset();
    }
    // the logits and their log-sum-exps: after the packing, on the pages its staging used (never reset again)
    this.z = A.transient(maxRows * Vw * F4, 'LM head');
    this.lse = A.transient(maxRows * 8, 'LM head');
  }

  /** log Σ_v exp(logit) of each of the m rows the last logits() call returned (float64, valid until the
   *  next call): the WASM SIMD kernel f64_logsumexp (max, then the exponentials on f64 lanes). */
  logSumExp(m: number): Float64Array {
    this.k.f64_logsumexp__wasmsimd(m, this.V, this.z, this.V, this.lse);
    return this.A.f64(this.lse, m);
  }

  /** Ends the helper threads; the head is unusable after. */
  close(): void {
    if (this.team) { forgetOwner(this); this.team.close(); }
    this.team = null;
  }

  /** The final norm of m rows at byte offset x into this.h (rounded to bfloat16 on the rounding path). */
  private norm(x: number, m: number): void {
    const { K, d } = this;
    if (this.rmsEps !== undefined) K.rmsNorm(x, m, d, d, this.g, this.rmsEps, this.h, d);
    else K.layerNorm(x, m, d, d, this.g, this.b, LN_EPS, this.h, d); // (the seed family's LM head: 1e-5)
    this.roundBf16?.(this.h, m, d, d);
  }

  /** The helper threads, started on first use (null: this thread alone). */
  private helpers(): StepTeam | null {
    if (this.team === undefined) {
      this.team = this.threads > 1 ? StepTeam.start(this.A.memory, this.variant, this.threads - 1, undefined, this.dnnl ? { path: this.dnnl.lib.path } : undefined) : null;
      if (this.team) closeWithOwner(this, this.team);
    }
    return this.team;
  }

  /** A streamed head: ln p(next[i] | row i) for rows [n, d] of `rows`, into out[i]; `rows` is overwritten
   *  with the normed rows. The vocabulary is read from the file `slice` rows at a time and packed (the
   *  reorders spread over the threads); the rows are multiplied by each slice in blocks of maxRows rows
   *  (each copied in per slice: the caller keeps the rows, so calls that interleave share nothing of this
   *  head's memory across awaits), and the
   *  slice's log Σ exp (the same float64 kernel as logSumExp, over the slice's columns) is folded into the
   *  row's: lse = hi + log1p(exp(lo − hi)). The target's logit is taken from the slice that holds it. */
  streamLogprobs(rows: Float32Array, n: number, next: ArrayLike<number>, out: Float64Array): void {
    const src = this.source;
    if (!src || !this.dnnl) throw new Error('WasmHead: streamLogprobs on a head that is not streamed');
    const { A, d, V } = this;
    if (!(Number.isInteger(n) && n >= 0) || rows.length < n * d || next.length < n || out.length < n) throw new Error(`WasmHead: streamLogprobs of ${n} rows (${rows.length / d} rows given, ${next.length} targets, ${out.length} outputs)`);
    if (n === 0) return;
    const blk = this.dnnl.kernels, team = this.helpers();
    const lse = new Float64Array(n).fill(-Infinity), tgt = new Float64Array(n);
    // the final norm once, in place (normed again per slice it took 66 of the pass's ~1,200 ms, 2,048 rows of the 1.3B shape)
    for (let r0 = 0; r0 < n; r0 += this.maxRows) {
      const m = Math.min(this.maxRows, n - r0);
      A.f32(this.x, m * d).set(rows.subarray(r0 * d, (r0 + m) * d));
      this.norm(this.x, m);
      rows.set(A.f32(this.h, m * d), r0 * d);
    }
    for (let v0 = 0; v0 < V; v0 += this.slice) {
      const nn = Math.min(this.slice, V - v0);
      src.rowBits(v0, nn, new Uint16Array(A.memory.buffer, this.raw, nn * d));
      if (team) team.run(blk.block, blk.packCalls(this.raw, 'bf16', nn, d, this.W));
      else blk.packWhole!(this.raw, 'bf16', nn, d, this.W);
      for (let r0 = 0; r0 < n; r0 += this.maxRows) {
        const m = Math.min(this.maxRows, n - r0);
        A.f32(this.h, m * d).set(rows.subarray(r0 * d, (r0 + m) * d));
        if (team) team.run(blk.block, blk.calls(this.h, m, d, d, this.W, nn, 0, this.z, nn, 0, false));
        else blk.gemm(this.h, m, d, d, this.W, nn, 0, this.z, nn, 0, false, 0);
        this.k.f64_logsumexp__wasmsimd(m, nn, this.z, nn, this.lse);
        const part = A.f64(this.lse, m), z = A.f32(this.z, m * nn);
        for (let r = 0; r < m; r++) {
          const i = r0 + r;
          // a slice whose logits are all −∞ adds nothing (the kernel's max − max is NaN there, where over the
          // whole vocabulary those logits are simply terms of 0); a NaN logit stays NaN
          let p = part[r]!;
          if (Number.isNaN(p) && z.subarray(r * nn, (r + 1) * nn).every((v) => v === -Infinity)) p = -Infinity;
          lse[i] = logAddExp(lse[i]!, p);
          const t = next[i]! - v0;
          if (t >= 0 && t < nn) tgt[i] = z[r * nn + t]!;
        }
      }
    }
    for (let i = 0; i < n; i++) out[i] = tgt[i]! - lse[i]!;
  }

  /** Logits [m, V] (float32 view, valid until the next call) of rows [m, d] at `off` of `rows`. */
  logits(rows: ArrayLike<number>, off: number, m: number): Float32Array {
    const { A, K, d, V } = this;
    if (m > this.maxRows) throw new Error(`WasmHead: ${m} rows > ${this.maxRows}`);
    if (this.source) throw new Error('WasmHead: a streamed head has no logits(); use streamLogprobs');
    const xv = A.f32(this.x, m * d);
    if (rows instanceof Float32Array) xv.set(rows.subarray(off, off + m * d));
    else for (let i = 0; i < m * d; i++) xv[i] = rows[off + i];
    this.norm(this.x, m);
    const team = this.helpers(), T = team?.size ?? 1;
    if (this.dnnl) {
      // the column blocks (cut for this.threads; however many helpers started, the threads claim them)
      const blk = this.dnnl.kernels;
      if (team) team.run(blk.block, blk.calls(this.h, m, d, d, this.W, V, 0, this.z, V, 0, false));
      else blk.gemm(this.h, m, d, d, this.W, V, 0, this.z, V, 0, false, 0);
      return A.f32(this.z, m * V);
    }
    const nb = T * BLOCKS_PER_THREAD;
    if (team && V >= 32 * nb) {
      // blocks of the head's columns claimed by the threads (each column's sum is the same code: bit for bit one thread)
      // big blocks first (guidedColumnBlocks), as the step's products: one row through the 1.3B shape's BF16
      // head in turn in one process (a scratch A/B, 2026-12-06), 3.52 / 3.62 ms against 4.00 / 3.85 for
      // BLOCKS_PER_THREAD even blocks (medians of 20 rounds of 10 calls; faster in 17 and 16 of the 20)
      team.run(K, (t) => columnCalls(guidedColumnBlocks(V, T), this.bf16, this.h, m, d, d, this.W, V, 0, this.z, V, 0, false, this.gss[t]!, this.wides[t]!));
      return A.f32(this.z, m * V);
    }
    if (this.bf16) K.gemmBf16(this.h, m, d, d, this.W, V, 0, this.z, V, 0, false, this.gs, this.wide);
    else K.gemm(this.h, m, d, d, this.W, V, 0, this.z, V, 0, false, this.gs);
    return A.f32(this.z, m * V);
  }
}
