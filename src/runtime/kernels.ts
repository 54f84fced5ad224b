// The kernel contract the chunk worker programs against. Pointers are byte
// offsets into the shared memory, sizes and strides are in elements, data is
// float32. `bindWasmKernels` adapts the AssemblyScript module to it;
// `jsKernels` is a plain-JS twin over the same memory (used to test the
// runtime's orchestration independently of the WASM build).
import { activation, erf } from '../reference/ops.js';

/** Floats of the WASM retention kernels' scratch for chunks of up to C tokens (intra, summary and
 *  cross; mirrors f32_retention_scratch_size in assembly/retention.ts, a test holds them equal). */
export function wasmRetentionScratchFloats(C: number, dk: number, dv: number): number {
  const C4 = (C + 3) & ~3, dv8 = (dv + 7) & ~7, dk4 = (dk + 3) & ~3;
  return Math.max(Math.min(64, C4) * C4 + ((C * dk + 3) & ~3) + C * dv8, dk * dv8 + 4 * dk4);
}

/** Floats of a task's tile scratch for chunks of up to C tokens on the CBLAS engine (its
 *  RuntimeKernels.tileFloats): its score tile (C²) or its scaled copy of k or q plus a ones vector
 *  (C·(dk + 1)) for summary and cross, or the WASM kernels' packed A, k and v for the chunks it
 *  leaves to them (wasmRetentionScratchFloats), whichever is largest. */
export const tileFloats = (C: number, dk: number, dv: number): number =>
  Math.max(C * C, C * (dk + 1), wasmRetentionScratchFloats(C, dk, dv));

export interface RuntimeKernels {
  readonly name: string;
  /** y[r,:] = LN(x[r,:]) over n features, affine, eps 1e-5. */
  layerNorm(x: number, rows: number, n: number, ldx: number, gamma: number, beta: number, eps: number, y: number, ldy: number): void;
  /** y[r,:] = x[r,:] · rsqrt(mean(x[r,:]²) + eps) · gamma over n features (no mean, no bias). */
  rmsNorm(x: number, rows: number, n: number, ldx: number, gamma: number, eps: number, y: number, ldy: number): void;
  /** Floats the packed form of a [N, K] weight occupies. */
  packedSize(N: number, K: number): number;
  /** Pack W [N, K] (float32 at w) into `out` for gemm. */
  pack(w: number, N: number, K: number, out: number): void;
  /** Bytes of per-call scratch the GEMM wants (one buffer per concurrent caller). */
  gemmScratchBytes(): number;
  /** Floats of one task's `tile` scratch (intra, summary, cross) for chunks of up to C tokens. */
  tileFloats(C: number, dk: number, dv: number): number;
  /** Bytes the BF16 form of a [N, K] weight occupies (packBf16). Rows [n0, n0 + nb) of W, n0 a multiple
   *  of 8, pack to the bytes from 2·n0·K on, so a weight can be packed in row blocks. */
  packedBf16Bytes(N: number, K: number): number;
  /** Pack W [N, K] (float32 at w, every value a BF16 value) into BF16 at `out` for gemmBf16; `tmp`:
   *  packedSize(N, K) floats of scratch. Returns false if some value was not a BF16 value (not exact). */
  packBf16(w: number, N: number, K: number, out: number, tmp: number): boolean;
  /** Where present: packBf16 straight from BF16 bits — W [N, K] as BF16 rows at `bits` (row stride K) into
   *  `out`, the bytes packBf16 writes for the widened rows, without widening them. */
  packBf16Bits?(bits: number, N: number, K: number, out: number): void;
  /** Where present: x[i] *= s for n float32 values at x (packing's row scales). */
  scaleF32?(x: number, n: number, s: number): void;
  /** Bytes of per-call scratch (`wide`) gemmBf16 needs for a [N, K] weight. */
  bf16ScratchBytes(N: number, K: number): number;
  /** As gemm, on a weight packed by packBf16: widened (exactly) into `wide` and multiplied by the
   *  engine's float32 GEMM, so the result is bit-identical to gemm on the float32 weight. */
  gemmBf16(x: number, M: number, K: number, ldx: number, wBf16: number, N: number, b: number, y: number, ldy: number, act: number, accumulate: boolean, scratch: number, wide: number): void;
  /** dst [n] float32 = src [n] BF16 (exact). */
  widenBf16(src: number, n: number, dst: number): void;
  /** Engines whose packed layout cannot be written in row blocks (oneDNN's blocked weights): pack the
   *  whole W [N, K], float32 ('f32') or BF16 bits ('bf16') at `w`, into `out`, which is packedSize(N, K)
   *  floats for a float32 weight and packedBf16Bytes(N, K) bytes for a BF16 one. packModel uses it
   *  instead of pack/packBf16 where present. */
  packWhole?(w: number, dtype: 'f32' | 'bf16', N: number, K: number, out: number): void;
  /** Operand precision of gemm/gemmBf16: 'f32' (absent: the same), or 'bf16' — x rounded to bfloat16
   *  (round to nearest even) and W taken as bfloat16, products accumulated in float32. */
  readonly precision?: 'f32' | 'bf16';
  /** y[M,N] (=|+=) act(x[M,K]·Wᵀ + b); b = 0 for none; scratch from gemmScratchBytes(). */
  gemm(x: number, M: number, K: number, ldx: number, wPacked: number, N: number, b: number, y: number, ldy: number, act: number, accumulate: boolean, scratch: number): void;
  /** In place rotary on x[rows, heads·dk] (row stride ld) with tables cos, sin [rows, dk/2]. */
  rotary(x: number, rows: number, heads: number, dk: number, ld: number, cos: number, sin: number): void;
  /** o[i,:] = Σ_{j≤i} (q_i·k_j) pow[i−j] v_j ; r[i] = Σ_{j≤i} (q_i·k_j) pow[i−j]. */
  intra(q: number, k: number, v: number, n: number, dk: number, dv: number, ldq: number, ldk: number, ldv: number, pow: number, o: number, ldo: number, r: number, tile: number): void; // tile: as for summary
  /** S[dk,dv] = Σ_j pow[n−1−j] k_jᵀ v_j ; z[dk] = Σ_j pow[n−1−j] k_j. `tile`: tileFloats(n, dk, dv) floats of scratch. */
  summary(k: number, v: number, n: number, dk: number, dv: number, ldk: number, ldv: number, pow: number, S: number, z: number, tile: number): void;
  /** o[i,:] += pow[i+1] q_i S ; r[i] += pow[i+1] q_i·z. `tile`: as for summary. */
  cross(q: number, n: number, dk: number, dv: number, ldq: number, pow: number, S: number, z: number, o: number, ldo: number, r: number, tile: number): void;
  /** Row i of o and r[i] times inv[i] (inv = 0: skip), then o row / max(1,|r[i]|) if retn. */
  normalize(o: number, n: number, dv: number, ldo: number, r: number, inv: number, retn: boolean): void;
  /** One recurrent token: S [dk,dv], z [dk] float64 updated (S ← γS + kᵀv, z ← γz + k);
   *  o [dv] = qS, r[0] = q·z, then scaled as in normalize (inv = pointer to 1/sqrt(c), or 0). */
  step(dk: number, dv: number, q: number, k: number, v: number, gamma: number, S: number, z: number, o: number, r: number, inv: number, retn: boolean,
    /** optional [dv] float64 scratch: one pass over S where the engine has it (the same result bit for bit) */
    scratch?: number): void;
  /** The step on a float32 S (a state of dtype float32): S ← float32(γS + kᵀv) in float64 arithmetic,
   *  z (float64) ← γz + k, o = q·S of the rounded S, r = q·z, normalized as step; `scratch` [dv] float64
   *  is required. Engines without it leave float32 states to the WASM kernels' (the stepper's base). */
  stepS32?(dk: number, dv: number, q: number, k: number, v: number, gamma: number, S: number, z: number, o: number, r: number, inv: number, retn: boolean, scratch: number): void;
  /** The cross-chunk scan's step over n values: incoming[e] = float32(state[e]), then
   *  state[e] = g·state[e] + delta[e] (state float64 at a byte offset, delta and incoming float32;
   *  `incoming` may equal `delta`: each delta is read before its incoming value is written). */
  scanStep(n: number, g: number, state: number, delta: number, incoming: number): void;
  /** The CBLAS engine only (for the step's prefill, WasmStepper): gemmBf16 on the WASM engine's BF16
   *  panels with many rows, on BLAS; `scratch`: panelScratchBytes(K) (blas-kernels.ts). */
  gemmBf16Rows?(x: number, M: number, K: number, ldx: number, wBf16: number, N: number, b: number, y: number, ldy: number, act: number, accumulate: boolean, scratch: number): void;
  /** o[i, j] = act(g[i, j]) · o[i, j] for rows × cols, strides ldg, ldo. */
  gate(g: number, ldg: number, o: number, ldo: number, rows: number, cols: number, act: number): void;
}

/** The activation codes' functions (ACT_CODE order), float64. */
export const ACT_FNS: readonly ((x: number) => number)[] = [(x: number) => x, activation('gelu'), activation('silu'), activation('relu'), activation('selu'), activation('sigmoid')];
void erf;

/** Scalar JS twin of the kernel contract over a shared memory. */
export function jsKernels(memory: WebAssembly.Memory): RuntimeKernels {
  const F = () => new Float32Array(memory.buffer);
  const ix = (p: number) => p >>> 2;
  return {
    name: 'js-scalar',
    layerNorm(x, rows, n, ldx, gamma, beta, eps, y, ldy) {
      const m = F();
      for (let r = 0; r < rows; r++) {
        const xo = ix(x) + r * ldx, yo = ix(y) + r * ldy;
        let mean = 0; for (let i = 0; i < n; i++) mean += m[xo + i]; mean /= n;
        let v = 0; for (let i = 0; i < n; i++) { const t = m[xo + i] - mean; v += t * t; } v /= n;
        const inv = 1 / Math.sqrt(v + eps);
        for (let i = 0; i < n; i++) m[yo + i] = (m[xo + i] - mean) * inv * m[ix(gamma) + i] + m[ix(beta) + i];
      }
    },
    rmsNorm(x, rows, n, ldx, gamma, eps, y, ldy) {
      const m = F();
      for (let r = 0; r < rows; r++) {
        const xo = ix(x) + r * ldx, yo = ix(y) + r * ldy;
        let ss = 0; for (let i = 0; i < n; i++) ss += m[xo + i] * m[xo + i];
        const inv = 1 / Math.sqrt(ss / n + eps);
        for (let i = 0; i < n; i++) m[yo + i] = m[xo + i] * inv * m[ix(gamma) + i];
      }
    },
    packedSize: (N, K) => N * K,
    gemmScratchBytes: () => 0,
    tileFloats: () => 0, // the twin needs no scratch
    pack(w, N, K, out) { const m = F(); m.copyWithin(ix(out), ix(w), ix(w) + N * K); },
    packedBf16Bytes: (N, K) => N * K * 2,
    packBf16(w, N, K, out) {
      const u32 = new Uint32Array(memory.buffer), u16 = new Uint16Array(memory.buffer);
      let lost = 0;
      for (let i = 0; i < N * K; i++) { const v = u32[ix(w) + i]; lost |= v & 0xffff; u16[(out >>> 1) + i] = v >>> 16; }
      return lost === 0;
    },
    bf16ScratchBytes: (N, K) => N * K * 4,
    widenBf16(src, n, dst) {
      const u32 = new Uint32Array(memory.buffer), u16 = new Uint16Array(memory.buffer);
      for (let i = 0; i < n; i++) u32[ix(dst) + i] = u16[(src >>> 1) + i] << 16;
    },
    gemmBf16(x, M, K, ldx, w, N, b, y, ldy, act, accumulate, scratch, wide) {
      this.widenBf16(w, N * K, wide);
      this.gemm(x, M, K, ldx, wide, N, b, y, ldy, act, accumulate, scratch);
    },
    gemm(x, M, K, ldx, w, N, b, y, ldy, act, accumulate) {
      const m = F(); const f = ACT_FNS[act];
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let s = b ? m[ix(b) + j] : 0;
        for (let t = 0; t < K; t++) s += m[ix(x) + i * ldx + t] * m[ix(w) + j * K + t];
        const val = f(s);
        m[ix(y) + i * ldy + j] = accumulate ? m[ix(y) + i * ldy + j] + val : val;
      }
    },
    rotary(x, rows, heads, dk, ld, cos, sin) {
      const m = F(); const half = dk / 2;
      for (let r = 0; r < rows; r++) for (let h = 0; h < heads; h++) for (let i = 0; i < half; i++) {
        const o = ix(x) + r * ld + h * dk + 2 * i;
        const c = m[ix(cos) + r * half + i], s = m[ix(sin) + r * half + i];
        const a = m[o], bb = m[o + 1];
        m[o] = a * c - bb * s; m[o + 1] = bb * c + a * s;
      }
    },
    intra(q, k, v, n, dk, dv, ldq, ldk, ldv, pow, o, ldo, r) {
      const m = F();
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < dv; c++) m[ix(o) + i * ldo + c] = 0;
        let rs = 0;
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let t = 0; t < dk; t++) s += m[ix(q) + i * ldq + t] * m[ix(k) + j * ldk + t];
          s *= m[ix(pow) + i - j];
          rs += s;
          for (let c = 0; c < dv; c++) m[ix(o) + i * ldo + c] += s * m[ix(v) + j * ldv + c];
        }
        m[ix(r) + i] = rs;
      }
    },
    summary(k, v, n, dk, dv, ldk, ldv, pow, S, z) {
      const m = F();
      for (let a = 0; a < dk * dv; a++) m[ix(S) + a] = 0;
      for (let a = 0; a < dk; a++) m[ix(z) + a] = 0;
      for (let j = 0; j < n; j++) {
        const ze = m[ix(pow) + n - 1 - j];
        for (let a = 0; a < dk; a++) {
          const kz = m[ix(k) + j * ldk + a] * ze;
          m[ix(z) + a] += kz;
          for (let c = 0; c < dv; c++) m[ix(S) + a * dv + c] += kz * m[ix(v) + j * ldv + c];
        }
      }
    },
    cross(q, n, dk, dv, ldq, pow, S, z, o, ldo, r) {
      const m = F();
      for (let i = 0; i < n; i++) {
        const xi = m[ix(pow) + i + 1];
        let rs = 0;
        for (let a = 0; a < dk; a++) {
          const qa = m[ix(q) + i * ldq + a] * xi;
          rs += qa * m[ix(z) + a];
          for (let c = 0; c < dv; c++) m[ix(o) + i * ldo + c] += qa * m[ix(S) + a * dv + c];
        }
        m[ix(r) + i] += rs;
      }
    },
    normalize(o, n, dv, ldo, r, inv, retn) {
      const m = F();
      for (let i = 0; i < n; i++) {
        let scale = 1, rs = m[ix(r) + i];
        if (inv) { const s = m[ix(inv) + i]; scale = s; rs *= s; m[ix(r) + i] = rs; }
        if (retn) scale /= Math.max(1, Math.abs(rs));
        for (let c = 0; c < dv; c++) m[ix(o) + i * ldo + c] *= scale;
      }
    },
    step(dk, dv, q, k, v, gamma, S, z, o, r, inv, retn) {
      const m = F(); const m64 = new Float64Array(memory.buffer);
      const s0 = S >>> 3, z0 = z >>> 3;
      for (let a = 0; a < dk; a++) {
        const ka = m[ix(k) + a];
        m64[z0 + a] = gamma * m64[z0 + a] + ka;
        for (let c = 0; c < dv; c++) m64[s0 + a * dv + c] = gamma * m64[s0 + a * dv + c] + ka * m[ix(v) + c];
      }
      let rs = 0;
      for (let c = 0; c < dv; c++) m[ix(o) + c] = 0;
      for (let a = 0; a < dk; a++) {
        const qa = m[ix(q) + a];
        rs += qa * m64[z0 + a];
        for (let c = 0; c < dv; c++) m[ix(o) + c] += qa * m64[s0 + a * dv + c];
      }
      m[ix(r)] = rs;
      this.normalize(o, 1, dv, dv, r, inv, retn);
    },
    scanStep(n, g, state, delta, incoming) {
      const m = F(); const m64 = new Float64Array(memory.buffer);
      for (let e = 0; e < n; e++) {
        const v = m64[(state >>> 3) + e], dl = m[ix(delta) + e]; // delta read first: incoming may be delta
        m[ix(incoming) + e] = v;
        m64[(state >>> 3) + e] = g * v + dl;
      }
    },
    gate(g, ldg, o, ldo, rows, cols, act) {
      const m = F(); const f = ACT_FNS[act];
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m[ix(o) + i * ldo + j] *= f(m[ix(g) + i * ldg + j]);
    },
  };
}
