// Token-by-token decoding on the WASM kernels, in the calling thread: one
// recurrent step for a batch of B tokens (one per sequence, all at the same
// absolute position) through every layer. The per-sequence state stays in
// the caller's float64 arrays (the model's RecurrentState) and is copied in
// and out around the step kernel, which updates it in float64.
import { ARENA_BASE, createMemory } from '../wasm/loader.js';
import { invSqrtDecaySums, rotaryTables } from '../wasm/tables.js';
import type { ModelSpec } from '../backends/executor.js';
import type { LayerState } from '../backends/js.js';
import { Arena } from './arena.js';
import { bindWasmKernels } from './wasm-kernels.js';
import { packModel, type Packed } from './pack.js';
import { ACT_CODE } from './messages.js';
import type { RuntimeKernels } from './kernels.js';
import { envValue } from '../env.js';

const F4 = 4, F8 = 8;

export class WasmStepper {
  private readonly K: RuntimeKernels;
  private readonly A: Arena;
  private readonly p: Packed;
  private readonly acts: { msr: number; mlp: number };
  readonly engine: string;

  constructor(spec: ModelSpec, variant = envValue('RETNET_WASM_VARIANT') ?? 'auto') {
    const memory = createMemory(256);
    this.K = bindWasmKernels(memory, variant);
    this.engine = this.K.name;
    this.A = new Arena(memory, ARENA_BASE, 2 ** 32 - 65536);
    this.p = packModel(spec, this.K, this.A);
    this.acts = { msr: ACT_CODE[spec.config.msrGateFn], mlp: ACT_CODE[spec.config.mlpGateFn] };
  }

  /**
   * x [B, d] → y [B, d]; `states[l][b]` is layer l's state of sequence b
   * (S [H, dk, dv], z [H, dk], float64), advanced in place; `pos` the tokens' position.
   */
  step(x: ArrayLike<number>, B: number, pos: number, states: LayerState[][], flags: { normalizeAttn: boolean; normalizeRetn: boolean }, mode: 'retnet' | 'msr' = 'retnet'): Float32Array {
    const { K, A, p } = this;
    const { d, H, dk, dv, dqk, Wp, maxHidden, normRms, groupRms, eps, swiglu, angleF32 } = p.dims;
    const norm = (x: number, rows: number, n: number, w: number, b: number, y: number, rms: boolean) =>
      (rms ? K.rmsNorm(x, rows, n, n, w, eps, y, n) : K.layerNorm(x, rows, n, n, w, b, y, n));
    const half = dk / 2, SZ = H * dk * dv, ZZ = H * dk;
    A.reset();
    try {
      const X = A.transient(B * d * F4, 'step'), h = A.transient(B * d * F4, 'step');
      const P = A.transient(B * Wp * F4, 'step'), O = A.transient(B * H * dv * F4, 'step');
      const R = A.transient(B * H * F4, 'step'), hid = A.transient(B * maxHidden * F4, 'step');
      const hid2 = A.transient(B * maxHidden * F4, 'step');
      const cos = A.transient(B * half * F4, 'step'), sin = A.transient(B * half * F4, 'step');
      const inv = A.transient(H * F4, 'step');
      const S = A.transient(B * SZ * F8, 'step'), Z = A.transient(B * ZZ * F8, 'step');
      const gs = A.transient(Math.max(64, K.gemmScratchBytes()), 'step');
      const wide = p.bf16Scratch ? A.transient(p.bf16Scratch, 'step') : 0;
      // float32 panels, or BF16 widened per call (RuntimeKernels.gemmBf16)
      const gemm = (bf16: boolean, x: number, M: number, Kd: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean) =>
        (bf16 ? K.gemmBf16(x, M, Kd, ldx, W, N, b, y, ldy, act, acc, gs, wide) : K.gemm(x, M, Kd, ldx, W, N, b, y, ldy, act, acc, gs));
      A.f32(X, B * d).set(x as ArrayLike<number>);
      const layers = mode === 'msr' ? p.layers.slice(0, 1) : p.layers;
      layers.forEach((Ly, l) => {
        // pre-norm, fused q|k|v|g projection, rotary at `pos`
        norm(X, B, d, Ly.preNormW, Ly.preNormB, h, normRms);
        gemm(Ly.qkvgBf16, h, B, d, d, Ly.qkvgW, Wp, Ly.qkvgB, P, Wp, 0, false);
        const c = A.f32(cos, B * half), s = A.f32(sin, B * half);
        rotaryTables(Ly.angle, dk, pos, 1, c, s, angleF32);
        for (let b = 1; b < B; b++) { c.copyWithin(b * half, 0, half); s.copyWithin(b * half, 0, half); }
        K.rotary(P, B, H, dk, Wp, cos, sin);
        K.rotary(P + dqk * F4, B, H, dk, Wp, cos, sin);
        // the recurrent retention step per sequence and head, state in float64
        const S64 = A.f64(S, B * SZ), Z64 = A.f64(Z, B * ZZ);
        for (let b = 0; b < B; b++) { S64.set(states[l][b].S, b * SZ); Z64.set(states[l][b].z, b * ZZ); }
        if (flags.normalizeAttn) {
          const iv = A.f32(inv, H);
          for (let hh = 0; hh < H; hh++) invSqrtDecaySums(Ly.gamma[hh], pos, 1, iv.subarray(hh, hh + 1));
        }
        for (let b = 0; b < B; b++) for (let hh = 0; hh < H; hh++) {
          const q = P + (b * Wp + hh * dk) * F4;
          K.step(dk, dv, q, q + dqk * F4, P + (b * Wp + 2 * dqk + hh * dv) * F4, Ly.gamma[hh],
            S + (b * SZ + hh * dk * dv) * F8, Z + (b * ZZ + hh * dk) * F8,
            O + (b * H * dv + hh * dv) * F4, R + (b * H + hh) * F4, flags.normalizeAttn ? inv + hh * F4 : 0, flags.normalizeRetn);
        }
        const S64b = A.f64(S, B * SZ), Z64b = A.f64(Z, B * ZZ);
        for (let b = 0; b < B; b++) { states[l][b].S.set(S64b.subarray(b * SZ, (b + 1) * SZ)); states[l][b].z.set(Z64b.subarray(b * ZZ, (b + 1) * ZZ)); }
        // group norm, gate, output projection (+ residual), MLP (+ residual)
        norm(O, B * H, dv, Ly.normW, Ly.normB, O, groupRms);
        K.gate(P + (2 * dqk + H * dv) * F4, Wp, O, H * dv, B, H * dv, this.acts.msr);
        if (mode === 'msr') { gemm(Ly.oBf16, O, B, H * dv, H * dv, Ly.oW, d, Ly.oB, X, d, 0, false); return; }
        gemm(Ly.oBf16, O, B, H * dv, H * dv, Ly.oW, d, Ly.oB, X, d, 0, true);
        norm(X, B, d, Ly.mlpNormW, Ly.mlpNormB, h, normRms);
        if (swiglu) {
          const [gu, down] = Ly.mlp;
          const I = gu.outDim / 2;
          gemm(gu.bf16, h, B, d, d, gu.W, gu.outDim, gu.b, hid, gu.outDim, 0, false);
          K.gate(hid, gu.outDim, hid + I * F4, gu.outDim, B, I, this.acts.mlp);
          gemm(down.bf16, hid + I * F4, B, I, gu.outDim, down.W, down.outDim, down.b, X, d, 0, true);
          return;
        }
        let src = h, ld = d;
        Ly.mlp.forEach((m, i) => {
          if (i === Ly.mlp.length - 1) gemm(m.bf16, src, B, m.inDim, ld, m.W, m.outDim, m.b, X, d, 0, true);
          else { const dst = src === hid ? hid2 : hid; gemm(m.bf16, src, B, m.inDim, ld, m.W, m.outDim, m.b, dst, m.outDim, this.acts.mlp, false); src = dst; ld = m.outDim; }
        });
      });
      return Float32Array.from(A.f32(X, B * d));
    } finally {
      A.reset();
    }
  }
}
