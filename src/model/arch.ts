// Architecture families: what differs between RetNet checkpoints of different
// origins, as one table read by every backend. The block is the same for all
// (pre-norm → multi-scale retention → residual; pre-norm → MLP → residual);
// each entry below says how one piece of it is computed.
//
//   family  norm      groupNorm  rotary pairs        scaled  MLP                      normalisations
//   seed    LayerNorm LayerNorm  interleaved (2i,2i+1) k     Linear-act-…-Linear       options (normalizeAttn/Retn)
//   fla     RMSNorm   RMSNorm    rotate-half (i,i+dk/2) q    down(silu(gate)·up)      none
//
// Rotate-half checkpoints are brought to the interleaved pairing at load time by
// permuting the rows of q_proj and k_proj within each head (row i ↦ 2i, row
// i + dk/2 ↦ 2i + 1): q·k is unchanged by a common permutation, so every kernel
// keeps one rotary. Which of q and k carries dk^-½ is likewise invisible to
// q·k (both forms are bilinear); the float64 reference still applies it where
// the family does, so that it agrees with the family's own code to rounding.

export type ArchName = 'seed' | 'fla';
export const ARCH_NAMES: readonly ArchName[] = ['seed', 'fla'];

export interface ArchTable {
  name: ArchName;
  /** the block pre-norms and the LM's final norm */
  norm: 'layernorm' | 'rmsnorm';
  /** per-head norm of the retention output (one weight of size dv shared by the heads) */
  groupNorm: 'layernorm' | 'rmsnorm';
  /** pairing of rotary dimensions in the checkpoint (at run time always interleaved, see above) */
  rotary: 'interleaved' | 'half';
  /** t·θ rounded to float32 before cos/sin (fla computes the angles in float32) or kept in float64 */
  angleProduct: 'float64' | 'float32';
  /** which projection carries dk^-½ */
  scaled: 'q' | 'k';
  /** 'sequential': Linear → act → … → Linear; 'swiglu': down(act(gate(x)) ⊙ up(x)), gate|up stored as one [2I, d] Linear */
  mlp: 'sequential' | 'swiglu';
  /** whether normalizeAttn / normalizeRetn may be turned on (the seed's options); fla has neither */
  retentionNorms: boolean;
  /** biases on the Linears (fla: none) */
  bias: boolean;
}

export const ARCH: Record<ArchName, ArchTable> = {
  seed: { name: 'seed', norm: 'layernorm', groupNorm: 'layernorm', rotary: 'interleaved', angleProduct: 'float64', scaled: 'k', mlp: 'sequential', retentionNorms: true, bias: true },
  fla: { name: 'fla', norm: 'rmsnorm', groupNorm: 'rmsnorm', rotary: 'half', angleProduct: 'float32', scaled: 'q', mlp: 'swiglu', retentionNorms: false, bias: false },
};

/** LayerNorm's eps in the seed family (PyTorch's default). */
export const SEED_NORM_EPS = 1e-5;

/** Row permutation within one head of width dk that turns rotate-half pairs (i, i + dk/2) into
 *  interleaved pairs (2i, 2i + 1): new row 2i = old row i, new row 2i + 1 = old row i + dk/2. */
export function halfToInterleaved(dk: number): Int32Array {
  const half = dk / 2;
  const src = new Int32Array(dk);
  for (let i = 0; i < half; i++) { src[2 * i] = i; src[2 * i + 1] = i + half; }
  return src;
}

/** Rows of W [heads·dk, inDim] permuted within each head by `src` (new row j = old row src[j]). */
export function permuteHeadRows<T extends Float32Array | Float64Array | Uint16Array>(W: T, heads: number, dk: number, inDim: number, src: Int32Array): T {
  const out = new (W.constructor as { new(n: number): T })(W.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < dk; j++) {
      const from = (h * dk + src[j]) * inDim, to = (h * dk + j) * inDim;
      out.set(W.subarray(from, from + inDim), to);
    }
  }
  return out;
}

/** fla's rotary inverse frequencies for key width dk, base 10000, as float32 values (fla computes
 *  them in float32: 1 / base^(2i/dk)), each twice — the angle buffer the kernels take. */
export function flaAngle(dk: number, base = 10000): Float64Array {
  const half = dk / 2;
  const a = new Float64Array(dk);
  for (let i = 0; i < half; i++) {
    const expo = Math.fround(Math.fround(2 * i) / Math.fround(dk));
    const th = Math.fround(1 / Math.fround(Math.pow(base, expo)));
    a[2 * i] = th; a[2 * i + 1] = th;
  }
  return a;
}

/** fla's decay: γ_h = 1 − 2^(−5−h), stored as ln γ in float64 (float32 would move γ^t by ~t·6e-8). */
export function flaDecay(heads: number): Float64Array {
  const d = new Float64Array(heads);
  for (let h = 0; h < heads; h++) d[h] = Math.log1p(-Math.pow(2, -5 - h));
  return d;
}
