// Phase B: the coordinator's cross-chunk scan. For each chunk in sequence
// order it records the incoming state (S, z) for the chunk's cross term, then
// carries it: S ← γ^n S + ΔS, z ← γ^n z + Δz (docs/architecture.md §1, chunkwise form).
// Cost per chunk: H·(dk·dv + dk) multiply-adds, tiny next to phases A and C.
//
// Summaries and incoming states live in the shared memory as float32,
// per chunk and head: [S (dk·dv) | z (dk)]. The carried state is float64 by
// default; stateDtype 'float32' rounds it after every update (drift studies).

/**
 * Scan the chunks [c0, c0 + count) of one sequence run.
 * @param summaries  f32 view [chunks, H, stride] of ΔS|Δz (indexed from the window's chunk 0)
 * @param incoming   f32 view [chunks, H, stride] to fill with each chunk's incoming S|z (may be `summaries`:
 *                   each summary is read before the incoming state over it is written)
 * @param state      [H, stride], updated in place
 * @param lens       token count of each chunk
 * @param gammaPow   per head h: γ_h^n for a chunk of n tokens (a function, float64)
 */
export function scanChunks(
  summaries: Float32Array, incoming: Float32Array, state: Float64Array | Float32Array,
  c0: number, lens: readonly number[], H: number, stride: number, gammaPow: (h: number, n: number) => number,
): void {
  for (let i = 0; i < lens.length; i++) {
    const base = (c0 + i) * H * stride;
    const n = lens[i];
    for (let h = 0; h < H; h++) {
      const g = gammaPow(h, n);
      const so = h * stride, co = base + h * stride;
      for (let e = 0; e < stride; e++) {
        const dl = summaries[co + e]; // read first: `incoming` may be `summaries` itself
        incoming[co + e] = state[so + e];
        state[so + e] = g * state[so + e] + dl;
      }
    }
  }
}
