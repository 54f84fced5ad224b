#!/usr/bin/env node
// retnet CLI. With no arguments: the main job — the seed README's example in
// parallel and chunked form, printing their agreement and timing.
import { RetNet, Tensor, maxAbsDiff, relMaxError } from '../index.js';

async function mainJob(): Promise<void> {
  // Scaled down from the seed's (6 layers, d=512, L=1024) while only the
  // float64 reference backend exists.
  const cfg = { numLayer: 2, numHeads: 8, dimModel: 128, valueFactor: 2, msrGateFn: 'gelu', mlpGateFn: 'gelu', mlpMult: 4, mlpBias: true, dropout: 0.1, seed: 0 } as const;
  const [B, L] = [2, 256];
  const model = RetNet.init(cfg);
  const x = Tensor.randint(0, 100, [B, L, cfg.dimModel], { seed: 1 });
  console.log(`RetNet ${cfg.numLayer} layers, ${cfg.numHeads} heads, d=${cfg.dimModel}, value factor ${cfg.valueFactor}; input randint(0,100) [${B}, ${L}, ${cfg.dimModel}]; backend js (float64)`);
  const time = async (label: string, numChunks: number | null) => {
    const t0 = performance.now();
    const y = await model.forward(x, { attnMask: 'causal', numChunks });
    const s = (performance.now() - t0) / 1000;
    console.log(`  ${label.padEnd(22)} ${s.toFixed(3)} s  ${Math.round((B * L) / s)} tokens/s`);
    return y;
  };
  const p = await time('parallel', null);
  const c = await time('chunkwise (8 chunks)', 8);
  console.log(`agreement: max|Δ| = ${maxAbsDiff(c, p).toExponential(2)}, max|Δ|/max|parallel| = ${relMaxError(c, p).toExponential(2)}`);
  await model.close();
}

mainJob().catch((e) => {
  console.error(`retnet: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
