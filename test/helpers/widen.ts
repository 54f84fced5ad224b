// The same fla model with every BF16 tensor widened to float32 up front (the "f32 path" of the tests that
// check BF16 weights against widened ones bit for bit).
import { RetNetLM, RetNet } from '../../src/index.js';
import { Bf16Matrix } from '../../src/model/bf16.js';
import type { LayerWeights } from '../../src/model/weights.js';

const f32 = <T>(w: T | Bf16Matrix): T | Float32Array => (w instanceof Bf16Matrix ? w.toFloat32() : w);

/** The same model with every BF16 tensor widened to float32 (the f32 path). */
export function widened(lm: RetNetLM): RetNetLM {
  const layers: LayerWeights[] = lm.model.layers.map((lw) => ({
    msr: { ...lw.msr, q: { ...lw.msr.q, W: f32(lw.msr.q.W) }, k: { ...lw.msr.k, W: f32(lw.msr.k.W) }, v: { ...lw.msr.v, W: f32(lw.msr.v.W) },
      g: { ...lw.msr.g, W: f32(lw.msr.g.W) }, o: { ...lw.msr.o, W: f32(lw.msr.o.W) } },
    mlp: { ...lw.mlp, linears: lw.mlp.linears.map((l) => ({ ...l, W: f32(l.W) })) },
  }));
  return new RetNetLM(new RetNet(lm.model.config, layers), {
    embed: f32(lm.embed), head: f32(lm.head), normWeight: lm.normWeight, normBias: lm.normBias, vocab: lm.vocab,
    normKind: lm.normKind, normEps: lm.normEps, tokenizer: lm.tokenizer,
  });
}

