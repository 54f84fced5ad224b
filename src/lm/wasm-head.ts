// The LM's final norm + head (logits = norm(x) · Wᵀ; LayerNorm, or RMSNorm in the fla family) on the WASM kernels in
// the calling thread, for the float32 backends: one LayerNorm and one packed
// GEMM per block of rows instead of a scalar JavaScript loop.
import { ARENA_BASE, createMemory } from '../wasm/loader.js';
import { bindWasmKernels } from '../runtime/wasm-kernels.js';
import { Arena } from '../runtime/arena.js';
import type { RuntimeKernels } from '../runtime/kernels.js';
import { Bf16Matrix } from '../model/bf16.js';
import { packBf16Weight } from '../runtime/pack.js';
import { envValue } from '../env.js';

const F4 = 4;

export class WasmHead {
  private readonly K: RuntimeKernels;
  private readonly A: Arena;
  private readonly W: number;   // packed head [V, d]: float32 panels, or BF16 (a BF16 head stays BF16: gemmBf16 widens per block)
  private readonly bf16: boolean;
  private readonly wide: number; // gemmBf16 scratch (0 for a float32 head)
  private readonly g: number; private readonly b: number; // final LayerNorm affine [d]
  private readonly x: number; private readonly h: number; private readonly z: number; private readonly gs: number;
  readonly maxRows: number;

  /** `rmsEps`: the final norm is RMSNorm with that eps (the fla family); undefined: LayerNorm (eps 1e-5). */
  constructor(head: Float32Array | Bf16Matrix, normW: Float32Array, normB: Float32Array, private readonly d: number, private readonly V: number, maxRows = 256,
    private readonly rmsEps?: number) {
    const memory = createMemory(64);
    this.K = bindWasmKernels(memory, envValue('RETNET_WASM_VARIANT') ?? 'auto');
    this.A = new Arena(memory, ARENA_BASE, 2 ** 31);
    const A = this.A, K = this.K;
    this.maxRows = maxRows;
    this.bf16 = head instanceof Bf16Matrix;
    this.W = A.persistent(this.bf16 ? K.packedBf16Bytes(V, d) : K.packedSize(V, d) * F4, 'LM head');
    this.wide = this.bf16 ? A.persistent(K.bf16ScratchBytes(V, d), 'LM head') : 0;
    this.g = A.persistent(d * F4, 'LM head'); A.f32(this.g, d).set(normW);
    this.b = A.persistent(d * F4, 'LM head'); A.f32(this.b, d).set(normB);
    this.x = A.persistent(maxRows * d * F4, 'LM head');
    this.h = A.persistent(maxRows * d * F4, 'LM head');
    this.z = A.persistent(maxRows * V * F4, 'LM head');
    this.gs = A.persistent(Math.max(64, K.gemmScratchBytes()), 'LM head');
    if (head instanceof Bf16Matrix) {
      packBf16Weight({ rows: [head], scale: [1], N: V, K: d, out: this.W, what: 'LM head' }, K, A);
    } else {
      const raw = A.transient(V * d * F4, 'LM head staging');
      A.f32(raw, V * d).set(head);
      K.pack(raw, V, d, this.W);
      A.reset();
    }
  }

  /** Logits [m, V] (float32 view, valid until the next call) of rows [m, d] at `off` of `rows`. */
  logits(rows: ArrayLike<number>, off: number, m: number): Float32Array {
    const { A, K, d, V } = this;
    if (m > this.maxRows) throw new Error(`WasmHead: ${m} rows > ${this.maxRows}`);
    const xv = A.f32(this.x, m * d);
    for (let i = 0; i < m * d; i++) xv[i] = rows[off + i];
    if (this.rmsEps !== undefined) K.rmsNorm(this.x, m, d, d, this.g, this.rmsEps, this.h, d);
    else K.layerNorm(this.x, m, d, d, this.g, this.b, this.h, d);
    if (this.bf16) K.gemmBf16(this.h, m, d, d, this.W, V, 0, this.z, V, 0, false, this.gs, this.wide);
    else K.gemm(this.h, m, d, d, this.W, V, 0, this.z, V, 0, false, this.gs);
    return A.f32(this.z, m * V);
  }
}
