// The model's necessary FLOPs per token (multiply-add = 2), shared by the benchmarks that
// state a bound (bench/wasm-limit.ts, bench/peers/peers.ts): every Linear, the causal half of
// each intra-chunk tile (row i of a chunk has i + 1 terms: mean (C + 1)/2), the chunk summary
// kᵀv and the cross term q·S. Work a kernel does beyond that (tiles above the diagonal,
// padding) is not counted, so a bound from these figures is never flattered.
export interface FlopsModel { numLayer: number; numHeads: number; dimModel: number; valueFactor: number; mlpMult: number }

export function flopsPerToken(m: FlopsModel, C: number): { linear: number; intra: number; state: number; total: number } {
  const d = m.dimModel, H = m.numHeads, dk = d / H, dv = dk * m.valueFactor, hidden = m.mlpMult * d, Wp = 2 * d + 2 * H * dv;
  const linear = 2 * (d * Wp + H * dv * d + d * hidden + hidden * d);
  const intra = 2 * H * ((C + 1) / 2) * (dk + dv);
  const state = 2 * 2 * H * dk * dv;
  return { linear: linear * m.numLayer, intra: intra * m.numLayer, state: state * m.numLayer, total: (linear + intra + state) * m.numLayer };
}

/** The same for a fla-family model (bench/fla-1p3b.ts): `linearParams` the weights of its Linears, each
 *  run once per token (2 FLOPs a weight; the LM head included, since scoring takes every token's
 *  logits; the embedding, a lookup, excluded), plus per layer and head the causal half of each
 *  intra-chunk tile (q·k over dk, then the weights times v over dv), the chunk summary and the cross term. */
export function flaFlopsPerToken(linearParams: number, layers: number, H: number, dk: number, dv: number, C: number): { linear: number; intra: number; state: number; total: number } {
  const linear = 2 * linearParams;
  const intra = 2 * H * ((C + 1) / 2) * (dk + dv) * layers;
  const state = 2 * 2 * H * dk * dv * layers;
  return { linear, intra, state, total: linear + intra + state };
}
