// Typed messages between the coordinator and the chunk workers. Every pointer
// is a byte offset into the shared WebAssembly.Memory; every size is in
// elements. A task never carries array data.

/** Per-layer packed weights and tables (persistent region). */
export interface LayerPtrs {
  preNormW: number; preNormB: number;
  /** packed [Wq; Wk·dk^-½; Wv; Wg] → N = 2·dqk + 2·H·dv */
  qkvgW: number; qkvgB: number;
  oW: number; oB: number;
  /** weights kept as BF16 (RuntimeKernels.packBf16; gemmBf16 widens them per call) rather than float32 panels */
  qkvgBf16: boolean; oBf16: boolean;
  /** Dims.gSplit: the gate projection Wg packed alone (N = H·dv) and its bias; qkvgW then holds q|k|v only
   *  (0 and false otherwise) */
  gW: number; gB: number; gBf16: boolean;
  normW: number; normB: number;
  mlpNormW: number; mlpNormB: number;
  /** MLP Linears: packed weight, bias (0 = none), widths */
  mlp: { W: number; b: number; inDim: number; outDim: number; bf16: boolean }[];
  /** the checkpoint's angle buffer [dk] (each frequency twice), for the rotary tables */
  angle: number[];
  /** γ_h as float64 */
  gamma: number[];
  /** per head: γ_h^i for i = 0..Cmax, float32 [H, Cmax + 1] (per forward) */
  pow: number;
}

export interface Dims {
  d: number; H: number; dk: number; dv: number;
  /** total query/key width H·dk (= d in the seed family) */
  dqk: number;
  /** projection row width of P: 2·dqk + 2·H·dv (q | k | v | g), or 2·dqk + H·dv (q | k | v) when gSplit */
  Wp: number;
  /** the gate g is not kept in P from phase A to phase C but computed in phase C from the slab's rows
   *  (pre-norm again, then Wg): the window holds H·dv fewer floats per row (precision 'bf16') */
  gSplit: boolean;
  maxHidden: number;
  /** the family's table, flattened for the worker (src/model/arch.ts) */
  normRms: boolean;      // block norms: RMSNorm (else LayerNorm)
  groupRms: boolean;     // per-head group norm: RMSNorm (else LayerNorm)
  eps: number;           // eps of both
  swiglu: boolean;       // MLP: down(act(gate) ⊙ up) with gate|up as one Linear (else sequential)
  angleF32: boolean;     // rotary angles t·θ rounded to float32 before cos/sin
}

/** Window buffers (transient region), T = rows in the window. */
export interface WindowPtrs {
  X: number;      // [T, d]       residual stream
  P: number;      // [T, Wp]      q | k | v | g  (widths dqk, dqk, H·dv, H·dv; no g when Dims.gSplit)
  O: number;      // [T, H·dv]    retention output → normed → gated
  R: number;      // [H, T]       retention row sums, per head contiguous
  SUM: number;    // [chunks, H, dk·dv + dk]  chunk summaries ΔS | Δz
  SIN: number;    // [chunks, H, dk·dv + dk]  incoming state S | z per chunk (the executor's is SUM itself: the scan overwrites each summary)
  T: number;
  powStride: number; // Cmax + 1
}

/** Scratch of one in-flight task (one slot per concurrent task). */
export interface ScratchPtrs {
  h: number;      // [RB, d]         LayerNorm output (RB: min(ROW_BLOCK, the longest slab))
  o: number;      // [slab rows, H·dv] the slab's retention output (0: mode 'retention', which writes the window's O)
  hidden: number; // [RB, maxHidden] MLP hidden
  hidden2: number; // a second one, for MLPs of three or more Linears (0 otherwise)
  cos: number;    // [rows, dk/2]
  sin: number;    // [rows, dk/2]
  inv: number;    // [C]             1/sqrt(c_n) per row
  tile: number;   // scratch of the intra-chunk, summary and cross kernels (RuntimeKernels.tileFloats: C×C on the CBLAS engine)
  gemm: number;   // GEMM packing scratch (gemmScratchBytes)
  wide: number;   // BF16 weights widened for one GEMM call (RuntimeKernels.bf16ScratchBytes of the largest weight; 0 when none is BF16)
}

export interface SlabTask {
  /** 'A': phase A of `layer`; 'C': phase C of `layer`; 'CA': phase C of `layer`, then phase A of `next` */
  kind: 'A' | 'C' | 'CA';
  mode: 'retnet' | 'msr' | 'retention';
  layer: LayerPtrs;
  /** the following layer, for 'CA' */
  next?: LayerPtrs;
  dims: Dims;
  acts: { msr: number; mlp: number };
  win: WindowPtrs;
  scratch: ScratchPtrs;
  /** bytes of the shared memory when the task was made: a worker whose view is shorter (the grow not yet
   *  seen by its thread) refreshes it first */
  memBytes?: number;
  /** slab: rows [row, row + len) of the window = tokens [start, start + len) of its sequence */
  row: number; start: number; len: number; C: number; chunk0: number;
  normalizeAttn: boolean; normalizeRetn: boolean;
  /** test hook: the worker exits mid-task */
  crash?: boolean;
}

export interface SlabResult { ok: true; ms: number }

/** Row-block size for LayerNorm + GEMM inside a slab (bounds scratch: [RB, d] + 2·[RB, hidden] per task).
 *  512 rather than 256: OpenBLAS repacks W on every call, and on the seed shapes its single-thread
 *  sgemm ran 5–7% faster at M = 512 than at 256 (2026-11-29); the WASM GEMM does not care. */
export const ROW_BLOCK = 512;

/** Activation codes shared with the WASM kernels. */
export const ACT_CODE = { none: 0, gelu: 1, silu: 2, relu: 3, selu: 4, sigmoid: 5 } as const;
