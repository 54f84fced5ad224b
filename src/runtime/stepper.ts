// Token-by-token decoding on the WASM kernels, in the calling thread: one
// recurrent step for a batch of B tokens (one per sequence, all at the same
// absolute position) through every layer; and the prompt before it (prefill):
// the chunkwise form over many tokens of one sequence into its state, on the
// same packed weights and threads (docs/engines.md, "Prefill").
//
// The state stays where the step kernel updates it (float64, in place): the first step
// of a sequence moves its per-layer S and z into this stepper's shared memory and
// replaces the RecurrentState's arrays with views of that copy, so no step copies
// the state again (for the fla 1.3B that is 2 × 8.4 MB per layer and token). A block
// is reused once both of its views are garbage (FinalizationRegistry).
//
// Precision 'bf16' (docs/engines.md, "Precision bf16"): the matrix products take
// bfloat16 operands with float32 accumulation — oneDNN's matmul where dnnlForBf16 says
// so (the one-row product is then bound by memory, not by the WASM SIMD's 128-bit
// lanes), else the rounding fallback on the WASM GEMM.
//
// Threads: helper threads (step-helper.ts) work beside this one: every product is cut into column
// blocks and each layer's retention into one call per (sequence, head), and the threads claim those
// calls (StepTeam.run). On oneDNN each weight is packed as its column blocks, big ones first
// (guidedColumnBlocks: one of ~3/4 of N ÷ T per thread, then 2T small ones, so the thread still
// running at the end of a round runs a small block), and every thread runs the blocks it claims on
// its own oneDNN with one thread: no OpenMP team, whose threads spin after each call against the helpers on the same
// cores (interleaved on the 1.3B shape: 65 ms per token against 70–74 on a 2-thread OpenMP team,
// and 81–86 with OpenMP products beside helper retention). Every column's and head's arithmetic
// is the same code whichever thread runs it: bit for bit one thread's result.
import { availableParallelism } from 'node:os';
import { ARENA_BASE, createMemory } from '../wasm/loader.js';
import { decayPowers, invSqrtDecaySums, rotaryTables } from '../wasm/tables.js';
import type { ModelSpec } from '../backends/executor.js';
import type { LayerState } from '../backends/js.js';
import { Arena } from './arena.js';
import { bindWasmKernels } from './wasm-kernels.js';
import { packModel, type Packed } from './pack.js';
import { ACT_CODE, type LayerPtrs } from './messages.js';
import type { RuntimeKernels } from './kernels.js';
import { envValue } from '../env.js';
import type { KernelsRequest, Precision } from '../options.js';
import { bf16Rounding, bindDnnlKernels, dnnlForBf16, guidedColumnBlocks, roundRowsBf16, type BlockedDnnlKernels } from './dnnl-kernels.js';
import { BLOCKS_PER_THREAD, closeWithOwner, columnCalls, forgetOwner, MAX_STEP_THREADS, OP, runCall, StepTeam, type Call } from './step-helper.js';
import { bindBlasKernels, GEMM_MIN_ROWS, INTRA_MIN_ROWS, loadBlas, PANEL_BLOCK_COLS, panelScratchBytes } from './blas-kernels.js';

const F4 = 4, F8 = 8;

/** How a stepper computes (see the file comment). */
export interface StepperOptions {
  /** WASM variant (default RETNET_WASM_VARIANT, else 'auto') */
  variant?: string;
  /** 'f32' (default) or 'bf16' */
  precision?: Precision;
  /** kernel request for 'bf16' (dnnlForBf16's rule; default 'auto') */
  kernels?: KernelsRequest;
  /** threads of a step, this one and its helpers, which split the retention heads and every product's
   *  columns (default: the machine's available parallelism, at most 8) */
  threads?: number;
}

/** A state block in the stepper's memory: S [H, dk, dv] (float64, or float32 for a state of dtype
 *  float32, then padding to 8 bytes) then z [H, dk] float64. */
interface Block { off: number; live: number; f32: boolean }

export class WasmStepper {
  private readonly K: RuntimeKernels;
  private readonly A: Arena;
  private readonly p: Packed;
  private readonly acts: { msr: number; mlp: number };
  /** precision 'bf16' on oneDNN: weights in column blocks (guidedColumnBlocks with helpers) */
  private readonly blocked: BlockedDnnlKernels | null = null;
  /** what computes the step, e.g. 'wasm-relaxed-simd, 2 threads' or 'onednn 2.6.3 (…), bf16 operands, 2 threads' */
  readonly engine: string;
  readonly precision: Precision;
  // resident states: the block behind each view, free blocks, and their recycling
  private readonly blockOf = new WeakMap<object, Block>();
  private readonly free: { f64: Block[]; f32: Block[] } = { f64: [], f32: [] };
  private readonly reaper = new FinalizationRegistry<Block>((b) => { if (--b.live === 0) this.free[b.f32 ? 'f32' : 'f64'].push(b); });
  private readonly team: StepTeam | null;
  /** the WASM engine, which the helpers run */
  private readonly base: RuntimeKernels;
  /** at f32 where a CBLAS library loads: the prefill's products on BF16 weights (M ≥ GEMM_MIN_ROWS) */
  private readonly panel: { label: string } | null = null;
  /** the widest K of the model's products (the panel GEMM's scratch) */
  private readonly maxK: number;
  /** what runs the prefill's products (the step's engine, or BLAS on BF16 panels at f32) and its retention */
  readonly prefillEngine: string;
  /** the bf16 fallback's rounding of a product's input rows (done once, before the threads split the columns) */
  private readonly roundX: ((x: number, rows: number, cols: number, ld: number) => void) | null;

  /** Ends the helper threads. The stepper is unusable after. */
  close(): void { if (this.team) { forgetOwner(this); this.team.close(); } }

  /** seconds the constructor took: packing the weights (and starting the helpers) */
  readonly packSeconds: number;

  constructor(spec: ModelSpec, opts: StepperOptions = {}) {
    const tStart = performance.now();
    const memory = createMemory(256);
    const variant = opts.variant ?? envValue('RETNET_WASM_VARIANT') ?? 'auto';
    const wasm = bindWasmKernels(memory, variant);
    this.precision = opts.precision ?? 'f32';
    const threads = Math.max(1, Math.min(opts.threads ?? availableParallelism(), MAX_STEP_THREADS));
    const kreq = opts.kernels ?? 'auto';
    const lib = this.precision === 'bf16' ? dnnlForBf16(kreq).lib : null;
    // where a CBLAS library loads (kernels not 'wasm'): the prefill's chunkwise retention on the CBLAS
    // engine's kernels (as the pool's), and at f32 its products on BF16 panels (unpacked to float32 rows
    // per block); a step's one-row products and retention stay on the WASM kernels
    let blasPath: string | null = null;
    if (kreq !== 'wasm' && kreq !== 'js') {
      try { blasPath = loadBlas().path; } catch (e) { if (kreq === 'blas') throw e; }
    }
    const blas = blasPath ? bindBlasKernels(memory, variant, blasPath) : null;
    if (blas && this.precision === 'f32') this.panel = { label: loadBlas(blasPath!).label };
    // helpers for the products' columns and the retention heads; none on one core. Beside oneDNN each
    // helper binds its own oneDNN (one thread) and runs its block of every product's columns: measured
    // 52 GB/s on two such threads against 45 for one oneDNN call on two OpenMP threads (M = 1, BF16).
    this.team = threads > 1 ? StepTeam.start(memory, variant, threads - 1, undefined, lib ? { path: lib.path } : undefined,
      blasPath ? { path: blasPath } : undefined) : null;
    if (this.team) closeWithOwner(this, this.team);
    const base: RuntimeKernels = blas
      ? { ...wasm, intra: blas.intra, summary: blas.summary, cross: blas.cross, tileFloats: blas.tileFloats, ...(this.panel ? { gemmBf16Rows: blas.gemmBf16Rows } : {}) }
      : wasm;
    if (lib) {
      const T = this.team?.size ?? 1;
      this.blocked = bindDnnlKernels(memory, base, lib.path, 1, T, (N) => guidedColumnBlocks(N, T)); // one block when T = 1
      this.K = this.blocked;
    } else {
      this.K = this.precision === 'bf16' ? bf16Rounding(base, memory) : base;
    }
    this.A = new Arena(memory, ARENA_BASE, 2 ** 32 - 65536);
    // on oneDNN with helpers, each weight's column blocks are reordered by the threads at once (a reorder is a
    // copy: the same bytes whichever thread writes them). The 1.3B shape's first bf16 step (its packing):
    // 17.1 / 17.7 s against 18.7 / 19.3 s one block after another (in turn, 2 threads, 2026-12-07 04:10 UTC,
    // a scratch timing); most of the rest is staging the BF16 weights in JavaScript
    const team = this.team, blocked = this.blocked;
    this.p = packModel(spec, team && blocked ? { ...this.K, packWhole: (w, wt, N, K, out) => team.run(blocked.block, blocked.packCalls(w, wt, N, K, out)) } : this.K, this.A);
    this.base = base;
    this.roundX = this.K !== base && !lib ? (x, rows, cols, ld) => roundRowsBf16(memory, x, rows, cols, ld) : null;
    const n = this.team?.size ?? 1;
    this.engine = `${this.K.name}, ${n} thread${n === 1 ? '' : 's'}`;
    this.acts = { msr: ACT_CODE[spec.config.msrGateFn], mlp: ACT_CODE[spec.config.mlpGateFn] };
    const { d, H, dv } = this.p.dims;
    this.maxK = Math.max(d, H * dv, ...this.p.layers.flatMap((Ly) => Ly.mlp.map((m) => m.inDim)));
    // the BLAS panels only where the model has BF16 weights (before: named for an all-float32 model too)
    this.prefillEngine = `products: ${this.panel && this.p.bf16Scratch ? `${this.panel.label} on BF16 weights (float32 ones: ${this.K.name})` : this.K.name}; ` +
      `retention: ${blas ? `${loadBlas(blasPath!).label} from ${INTRA_MIN_ROWS} tokens a chunk` : wasm.name}`;
    this.packSeconds = (performance.now() - tStart) / 1000;
  }

  /** Bytes of a state's S in a block (float32 S padded to 8 bytes, so z stays aligned). */
  private sBytes(f32: boolean): number {
    const { H, dk, dv } = this.p.dims;
    return f32 ? Math.ceil((H * dk * dv * F4) / F8) * F8 : H * dk * dv * F8;
  }

  /** The block of `st` in this stepper's memory (S at its offset, z after sBytes), moving the state here first
   *  (and pointing st.S, st.z at the copy) unless it already lives here. Between steps only: it may
   *  take persistent arena memory. */
  private resident(st: LayerState): Block {
    const f32 = st.S instanceof Float32Array;
    const b = this.blockOf.get(st.S);
    const { H, dk, dv } = this.p.dims, SZ = H * dk * dv, ZZ = H * dk, sb = this.sBytes(f32);
    if (b && b.f32 === f32 && this.blockOf.get(st.z) === b && st.z.byteOffset === b.off + sb) return b;
    const blk = this.free[f32 ? 'f32' : 'f64'].pop() ?? { off: this.A.persistent(sb + ZZ * F8, 'a recurrent state'), live: 0, f32 };
    const S = f32 ? this.A.f32(blk.off, SZ) : this.A.f64(blk.off, SZ), z = this.A.f64(blk.off + sb, ZZ);
    S.set(st.S); z.set(st.z);
    st.S = S; st.z = z;
    blk.live = 2;
    this.blockOf.set(S, blk); this.blockOf.set(z, blk);
    this.reaper.register(S, blk, S); this.reaper.register(z, blk, z);
    return blk;
  }

  /** Per-thread scratch of a round (this thread, then each helper) and the product runner: float32 panels,
   *  or BF16 widened per call (RuntimeKernels.gemmBf16). With helpers, every product is cut in column blocks,
   *  which the threads claim (StepTeam.run): on the WASM engine guidedColumnBlocks' cut (columnCalls;
   *  products of fewer than 32·nb columns run whole); on oneDNN the packed column blocks
   *  (BlockedDnnlKernels.calls), cut the same way. Transient: allocate after A.reset(). */
  private products(rows = false): { T: number; gss: number[]; wides: number[]; gemm: Gemm } {
    const { K, A, p } = this;
    const team = this.team, T = team?.size ?? 1;
    const gss: number[] = [], wides: number[] = [], nats: number[] = [];
    const panel = rows && p.bf16Scratch ? this.panel : null;
    for (let t = 0; t < T; t++) {
      gss.push(A.transient(Math.max(64, K.gemmScratchBytes()), 'step'));
      wides.push(p.bf16Scratch ? A.transient(p.bf16Scratch, 'step') : 0);
      if (panel) nats.push(A.transient(panelScratchBytes(this.maxK), 'prefill'));
    }
    const blocked = this.blocked, nb = T * BLOCKS_PER_THREAD;
    const gemm: Gemm = (bf16, x, M, Kd, ldx, W, N, b, y, ldy, act, acc) => {
      if (panel && bf16 && M >= GEMM_MIN_ROWS) {
        // BLAS on the BF16 panels in blocks of PANEL_BLOCK_COLS columns from column 0, whatever the threads
        // (one thread runs the same blocks in turn): OpenBLAS's sums depend on a call's N, so a cut that
        // followed the thread count would change bits with it
        if (!team) { K.gemmBf16Rows!(x, M, Kd, ldx, W, N, b, y, ldy, act, acc, nats[0]!); return; }
        const cut: [number, number][] = [];
        for (let n0 = 0; n0 < N; n0 += PANEL_BLOCK_COLS) cut.push([n0, Math.min(PANEL_BLOCK_COLS, N - n0)]);
        team.run(this.base, (t) => columnCalls(cut, true, x, M, Kd, ldx, W, N, b, y, ldy, act, acc, 0, 0)
          .map((c): Call => [OP.gemmBf16Rows, ...c.slice(1, 12), nats[t]!]));
        return;
      }
      if (team && blocked) { team.run(blocked.block, blocked.calls(x, M, Kd, ldx, W, N, b, y, ldy, act, acc)); return; }
      if (team && N >= 32 * nb) {
        this.roundX?.(x, M, Kd, ldx);
        // big blocks first, as on oneDNN (guidedColumnBlocks): stepped in turn in one process on the 1.3B
        // shape (f32, float32 state; a scratch A/B, 2026-12-06), 87.4 / 75.2 ms a token against 93.1 / 85.3
        // for BLOCKS_PER_THREAD equal blocks (medians of 10 rounds of 6 tokens, faster in 19 of 20 rounds)
        team.run(this.base, (t) => columnCalls(guidedColumnBlocks(N, T), bf16, x, M, Kd, ldx, W, N, b, y, ldy, act, acc, gss[t]!, wides[t]!));
        return;
      }
      if (bf16) K.gemmBf16(x, M, Kd, ldx, W, N, b, y, ldy, act, acc, gss[0]!, wides[0]!);
      else K.gemm(x, M, Kd, ldx, W, N, b, y, ldy, act, acc, gss[0]!);
    };
    return { T, gss, wides, gemm };
  }

  /** Runs a round of calls on the team (each once, whichever thread claims it), or here in turn. */
  private round(calls: (t: number) => Call[]): void {
    if (this.team) this.team.run(this.K, calls);
    else for (const c of calls(0)) runCall(this.K, c);
  }

  /** The block norm of the model's family over rows of n features (packed, ld = n). */
  private norm(x: number, rows: number, n: number, w: number, b: number, y: number, rms: boolean): void {
    if (rms) this.K.rmsNorm(x, rows, n, n, w, this.p.dims.eps, y, n);
    else this.K.layerNorm(x, rows, n, n, w, b, this.p.dims.eps, y, n);
  }

  /** Pre-norm, the fused q|k|v|g projection into P [rows, Wp], and rotary on q and k at positions
   *  pos0 (every row, `samePos`: B sequences at one position) or pos0 … pos0 + rows − 1. */
  private head(Ly: LayerPtrs, rows: number, pos0: number, samePos: boolean, gemm: Gemm, X: number, h: number, P: number, cos: number, sin: number): void {
    const { K, A } = this;
    const { d, H, dk, dqk, Wp, normRms, angleF32 } = this.p.dims;
    const half = dk / 2;
    this.norm(X, rows, d, Ly.preNormW, Ly.preNormB, h, normRms);
    gemm(Ly.qkvgBf16, h, rows, d, d, Ly.qkvgW, Wp, Ly.qkvgB, P, Wp, 0, false);
    const c = A.f32(cos, rows * half), s = A.f32(sin, rows * half);
    if (samePos) {
      rotaryTables(Ly.angle, dk, pos0, 1, c, s, angleF32);
      for (let b = 1; b < rows; b++) { c.copyWithin(b * half, 0, half); s.copyWithin(b * half, 0, half); }
    } else rotaryTables(Ly.angle, dk, pos0, rows, c, s, angleF32);
    K.rotary(P, rows, H, dk, Wp, cos, sin);
    K.rotary(P + dqk * F4, rows, H, dk, Wp, cos, sin);
  }

  /** After the retention wrote O [rows, H·dv]: group norm, gate, output projection (+ residual), MLP
   *  (+ residual), all into X [rows, d]; mode 'msr': the projection replaces X. */
  private tail(Ly: LayerPtrs, rows: number, gemm: Gemm, X: number, h: number, P: number, O: number, hid: number, hid2: number, mode: 'retnet' | 'msr'): void {
    const { K } = this;
    const { d, H, dv, dqk, Wp, normRms, groupRms, swiglu } = this.p.dims;
    this.norm(O, rows * H, dv, Ly.normW, Ly.normB, O, groupRms);
    K.gate(P + (2 * dqk + H * dv) * F4, Wp, O, H * dv, rows, H * dv, this.acts.msr);
    if (mode === 'msr') { gemm(Ly.oBf16, O, rows, H * dv, H * dv, Ly.oW, d, Ly.oB, X, d, 0, false); return; }
    gemm(Ly.oBf16, O, rows, H * dv, H * dv, Ly.oW, d, Ly.oB, X, d, 0, true);
    this.norm(X, rows, d, Ly.mlpNormW, Ly.mlpNormB, h, normRms);
    if (swiglu) {
      const [gu, down] = Ly.mlp;
      const I = gu.outDim / 2;
      gemm(gu.bf16, h, rows, d, d, gu.W, gu.outDim, gu.b, hid, gu.outDim, 0, false);
      K.gate(hid, gu.outDim, hid + I * F4, gu.outDim, rows, I, this.acts.mlp);
      gemm(down.bf16, hid + I * F4, rows, I, gu.outDim, down.W, down.outDim, down.b, X, d, 0, true);
      return;
    }
    let src = h, ld = d;
    Ly.mlp.forEach((m, i) => {
      if (i === Ly.mlp.length - 1) gemm(m.bf16, src, rows, m.inDim, ld, m.W, m.outDim, m.b, X, d, 0, true);
      else { const dst = src === hid ? hid2 : hid; gemm(m.bf16, src, rows, m.inDim, ld, m.W, m.outDim, m.b, dst, m.outDim, this.acts.mlp, false); src = dst; ld = m.outDim; }
    });
  }

  /** The blocks of `states` (one per layer, or per layer and sequence), checked and made resident. */
  private residentAll(states: LayerState[][], nLayers: number, B: number): Block[][] {
    const { H, dk, dv } = this.p.dims, SZ = H * dk * dv, ZZ = H * dk;
    const at: Block[][] = [];
    for (let l = 0; l < nLayers; l++) {
      at.push([]);
      for (let b = 0; b < B; b++) {
        const st = states[l][b];
        if (st.S.length !== SZ || st.z.length !== ZZ) throw new RangeError(`WasmStepper: state of layer ${l}, sequence ${b} has ${st.S.length} + ${st.z.length} values, not ${SZ} + ${ZZ}`);
        at[l].push(this.resident(st));
      }
    }
    return at;
  }

  /** Hands the blocks of states that live in this stepper's memory back for the next states (no new pages
   *  to fault in): their arrays must not be used afterwards (a later state reuses the memory). States
   *  elsewhere are left alone. */
  release(states: LayerState[]): void {
    for (const st of states) {
      const b = this.blockOf.get(st.S);
      if (!b || this.blockOf.get(st.z) !== b || b.live !== 2) continue;
      this.reaper.unregister(st.S); this.reaper.unregister(st.z);
      this.blockOf.delete(st.S); this.blockOf.delete(st.z);
      b.live = 0;
      this.free[b.f32 ? 'f32' : 'f64'].push(b);
    }
  }

  /** A zero layer state made in this stepper's memory (S and z views of a block, as resident() leaves a
   *  moved state): no copy at its first step. Between steps only (it may take persistent arena memory). */
  zeroState(f32: boolean): LayerState {
    const { H, dk, dv } = this.p.dims, SZ = H * dk * dv, ZZ = H * dk, sb = this.sBytes(f32);
    const blk = this.free[f32 ? 'f32' : 'f64'].pop() ?? { off: this.A.persistent(sb + ZZ * F8, 'a recurrent state'), live: 0, f32 };
    this.A.f64(blk.off, (sb + ZZ * F8) / F8).fill(0);
    const S = f32 ? this.A.f32(blk.off, SZ) : this.A.f64(blk.off, SZ), z = this.A.f64(blk.off + sb, ZZ);
    blk.live = 2;
    this.blockOf.set(S, blk); this.blockOf.set(z, blk);
    this.reaper.register(S, blk, S); this.reaper.register(z, blk, z);
    return { S, z };
  }

  /**
   * x [B, d] → y [B, d]; `states[l][b]` is layer l's state of sequence b
   * (S [H, dk, dv], z [H, dk], float64), advanced in place — in this stepper's memory: a state
   * met for the first time is moved there and its S and z replaced by views of the copy (see the
   * file comment; copy them, e.g. with slice(), to keep a snapshot); `pos` the tokens' position.
   */
  step(x: ArrayLike<number>, B: number, pos: number, states: LayerState[][], flags: { normalizeAttn: boolean; normalizeRetn: boolean }, mode: 'retnet' | 'msr' = 'retnet'): Float32Array {
    const { K, A, p } = this;
    const { d, H, dk, dv, dqk, Wp, maxHidden } = p.dims;
    const half = dk / 2;
    A.reset();
    const nLayers = mode === 'msr' ? 1 : p.layers.length;
    const at = this.residentAll(states, nLayers, B);
    try {
      const X = A.transient(B * d * F4, 'step'), h = A.transient(B * d * F4, 'step');
      const P = A.transient(B * Wp * F4, 'step'), O = A.transient(B * H * dv * F4, 'step');
      const R = A.transient(B * H * F4, 'step'), hid = A.transient(B * maxHidden * F4, 'step');
      const hid2 = A.transient(B * maxHidden * F4, 'step');
      const cos = A.transient(B * half * F4, 'step'), sin = A.transient(B * half * F4, 'step');
      const inv = A.transient(H * F4, 'step');
      // per thread (this one, then each helper): the one-pass step's output sums, GEMM scratch, widened panels
      const { T, gemm } = this.products();
      const accs: number[] = [];
      for (let t = 0; t < T; t++) accs.push(A.transient(dv * F8, 'step'));
      A.f32(X, B * d).set(x as ArrayLike<number>);
      const layers = mode === 'msr' ? p.layers.slice(0, 1) : p.layers;
      layers.forEach((Ly, l) => {
        this.head(Ly, B, pos, true, gemm, X, h, P, cos, sin);
        // the recurrent retention step per sequence and head, state in float64, in place
        if (flags.normalizeAttn) {
          const iv = A.f32(inv, H);
          for (let hh = 0; hh < H; hh++) invSqrtDecaySums(Ly.gamma[hh], pos, 1, iv.subarray(hh, hh + 1));
        }
        // one call per (sequence, head), claimed by the threads; acc: the running thread's output sums
        this.round((t: number): Call[] => {
          const list: Call[] = [];
          for (let b = 0; b < B; b++) {
            const blk = at[l]![b]!;
            for (let hh = 0; hh < H; hh++) {
              const q = P + (b * Wp + hh * dk) * F4;
              list.push([blk.f32 ? OP.stepS32 : OP.step, dk, dv, q, q + dqk * F4, P + (b * Wp + 2 * dqk + hh * dv) * F4, Ly.gamma[hh]!,
                blk.off + hh * dk * dv * (blk.f32 ? F4 : F8), blk.off + this.sBytes(blk.f32) + hh * dk * F8,
                O + (b * H * dv + hh * dv) * F4, R + (b * H + hh) * F4, flags.normalizeAttn ? inv + hh * F4 : 0, flags.normalizeRetn ? 1 : 0, accs[t]!]);
            }
          }
          return list;
        });
        this.tail(Ly, B, gemm, X, h, P, O, hid, hid2, mode);
      });
      return Float32Array.from(A.f32(X, B * d));
    } finally {
      A.reset();
    }
  }

  /**
   * The chunkwise form over `n` tokens of one sequence, into its state: x [n, d] (rows at positions
   * pos … pos + n − 1) → y [n, d], and `states[l]` (layer l's state of the sequence, as for step) advanced
   * by the n tokens in place. The tokens go in chunks of `chunk` (the last may be shorter), every layer
   * per chunk: the products take a chunk's rows at once (M = chunk, on the same packed weights and
   * threads as the step), and each head's retention is the pool's chunkwise arithmetic — intra-chunk
   * retention and chunk summary (RuntimeKernels.intra, summary), the state carried by the scan's update
   * (scanStep: the float32 incoming state recorded, then S ← γⁿ S + ΔS in float64; a float32 state rounded
   * after it, as the pool's), then the cross term from the incoming state (cross) — so at pos 0 each chunk's
   * numbers are those of the pool's WASM engine with the same chunk size. The heads are split between the
   * threads as the step's. A prompt of n tokens reads the weights ⌈n / chunk⌉ times, not n times.
   */
  prefill(x: ArrayLike<number>, n: number, pos: number, states: LayerState[], flags: { normalizeAttn: boolean; normalizeRetn: boolean }, chunk: number): Float32Array {
    const { K, A, p } = this;
    const { d, H, dk, dv, dqk, Wp, maxHidden } = p.dims;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`WasmStepper.prefill: n must be a positive integer (got ${n})`);
    if (x.length !== n * d) throw new RangeError(`WasmStepper.prefill: x has ${x.length} values, not n·d = ${n * d}`);
    if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`WasmStepper.prefill: chunk must be a positive integer (got ${chunk})`);
    const half = dk / 2, C = Math.min(chunk, n), nl = p.layers.length, SD = dk * dv, stride = SD + dk;
    A.reset();
    const at = this.residentAll(states.map((s) => [s]), nl, 1).map((b) => b[0]!);
    try {
      const X = A.transient(C * d * F4, 'prefill'), h = A.transient(C * d * F4, 'prefill');
      const P = A.transient(C * Wp * F4, 'prefill'), O = A.transient(C * H * dv * F4, 'prefill');
      const R = A.transient(H * C * F4, 'prefill'), inv = A.transient(H * C * F4, 'prefill');
      const hid = A.transient(C * maxHidden * F4, 'prefill'), hid2 = A.transient(C * maxHidden * F4, 'prefill');
      const cos = A.transient(C * half * F4, 'prefill'), sin = A.transient(C * half * F4, 'prefill');
      // per head: the chunk's summary ΔS|Δz and the incoming state S|z (float32, as the pool's scan)
      const D = A.transient(H * stride * F4, 'prefill'), IN = A.transient(H * stride * F4, 'prefill');
      // decay powers γ_h^i, i = 0..C, per layer and head
      const PS = C + 1, POW = A.transient(nl * H * PS * F4, 'prefill');
      const pw = A.f32(POW, nl * H * PS);
      p.layers.forEach((Ly, l) => { for (let hh = 0; hh < H; hh++) decayPowers(Ly.gamma[hh]!, C, pw.subarray((l * H + hh) * PS, (l * H + hh + 1) * PS)); });
      const { T, gemm } = this.products(true);
      const tiles: number[] = [];
      for (let t = 0; t < T; t++) tiles.push(A.transient(Math.max(16, K.tileFloats(C, dk, dv)) * F4, 'prefill'));
      const y = new Float32Array(n * d);
      const xs = ArrayBuffer.isView(x) ? null : Float32Array.from(x);
      for (let c0 = 0; c0 < n; c0 += C) {
        const m = Math.min(C, n - c0), p0 = pos + c0;
        const xv = A.f32(X, m * d);
        if (xs) xv.set(xs.subarray(c0 * d, (c0 + m) * d));
        else xv.set((x as unknown as Float32Array).subarray(c0 * d, (c0 + m) * d));
        p.layers.forEach((Ly, l) => {
          this.head(Ly, m, p0, false, gemm, X, h, P, cos, sin);
          const powOf = (hh: number) => POW + (l * H + hh) * PS * F4;
          const q = (hh: number) => P + hh * dk * F4, k = (hh: number) => P + (dqk + hh * dk) * F4, v = (hh: number) => P + (2 * dqk + hh * dv) * F4;
          // intra-chunk retention into O, R and the chunk's summary, per head
          this.round((t) => {
            const list: Call[] = [];
            for (let hh = 0; hh < H; hh++) {
              list.push([OP.intra, q(hh), k(hh), v(hh), m, dk, dv, Wp, Wp, Wp, powOf(hh), O + hh * dv * F4, H * dv, R + hh * C * F4, tiles[t]!]);
              list.push([OP.summary, k(hh), v(hh), m, dk, dv, Wp, Wp, powOf(hh), D + hh * stride * F4, D + (hh * stride + SD) * F4, tiles[t]!]);
            }
            return list;
          });
          // the state: incoming ← state, state ← γⁿ·state + Δ (float64; a float32 S rounded, here)
          const blk = at[l]!, sb = this.sBytes(blk.f32);
          const g = Ly.gamma.map((gh) => Math.pow(gh, m));
          this.round(() => {
            const list: Call[] = [];
            for (let hh = 0; hh < H; hh++) {
              if (!blk.f32) list.push([OP.scan, SD, g[hh]!, blk.off + hh * SD * F8, D + hh * stride * F4, IN + hh * stride * F4]);
              list.push([OP.scan, dk, g[hh]!, blk.off + sb + hh * dk * F8, D + (hh * stride + SD) * F4, IN + (hh * stride + SD) * F4]);
            }
            return list;
          });
          if (blk.f32) {
            const S = A.f32(blk.off, H * SD), dl = A.f32(D, H * stride), inc = A.f32(IN, H * stride);
            for (let hh = 0; hh < H; hh++) {
              const gh = g[hh]!, so = hh * SD, co = hh * stride;
              for (let e = 0; e < SD; e++) { inc[co + e] = S[so + e]!; S[so + e] = gh * S[so + e]! + dl[co + e]!; }
            }
          }
          // the cross term from the incoming state (none at position 0), then the row normalisations
          if (p0 > 0) {
            this.round((t) => Array.from({ length: H }, (_, hh): Call => [OP.cross, q(hh), m, dk, dv, Wp, powOf(hh), IN + hh * stride * F4, IN + (hh * stride + SD) * F4,
              O + hh * dv * F4, H * dv, R + hh * C * F4, tiles[t]!]));
          }
          if (flags.normalizeAttn || flags.normalizeRetn) {
            if (flags.normalizeAttn) for (let hh = 0; hh < H; hh++) invSqrtDecaySums(Ly.gamma[hh]!, p0, m, A.f32(inv + hh * C * F4, m));
            this.round(() => Array.from({ length: H }, (_, hh): Call => [OP.normalize, O + hh * dv * F4, m, dv, H * dv, R + hh * C * F4,
              flags.normalizeAttn ? inv + hh * C * F4 : 0, flags.normalizeRetn ? 1 : 0]));
          }
          this.tail(Ly, m, gemm, X, h, P, O, hid, hid2, 'retnet');
        });
        y.set(A.f32(X, m * d), c0 * d);
      }
      return y;
    } finally {
      A.reset();
    }
  }
}

type Gemm = (bf16: boolean, x: number, M: number, Kd: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean) => void;
