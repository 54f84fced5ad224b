// The per-phase profile (src/runtime/profile.ts): off, the kernel object is
// returned as is; on, every contract call is charged to its phase in the
// worker's slot, and a real forward's split adds up to workers × wall time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jsKernels } from '../src/runtime/kernels.js';
import { maybeProfiled, collectProfile, resetProfile, splitPhases, PHASES } from '../src/runtime/profile.js';
import { RetNet } from '../src/index.js';
import { discardSink, generatedSource } from '../src/cli/gen.js';

test('maybeProfiled without a counter buffer returns the same kernel object (no wrapper when off)', () => {
  const K = jsKernels(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }));
  assert.is(maybeProfiled(K, undefined), K);
});

test('RETNET_PROFILE=1: a chunkwise forward on 2 workers is split into phases that sum to workers × wall', async () => {
  const before = process.env.RETNET_PROFILE;
  process.env.RETNET_PROFILE = '1';
  const model = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 32, valueFactor: 2, mlpMult: 2, seed: 3 });
  try {
    const run = () => model.forwardStream(generatedSource(1, 512, 32), discardSink(), { backend: 'wasm', workers: 2, numChunks: 4 });
    await run();
    resetProfile();
    const t0 = performance.now();
    await run();
    const wall = performance.now() - t0;
    const rep = collectProfile();
    assert.ok(rep.workers.length >= 1 && rep.workers.length <= 2, `slots that ran: ${rep.workers.length}`);
    const split = splitPhases(rep, wall, 2);
    for (const p of ['gemm', 'gemm+act', 'intra', 'state', 'activations', 'norms', 'rotary'] as const) assert.ok(split[p] > 0, `phase ${p} has no time`);
    assert.is(split.recurrent, 0);
    const kernelMs = PHASES.reduce((s, p) => s + split[p], 0);
    // kernel time cannot exceed what 2 workers had (timer granularity aside: 1 ms slack)
    assert.ok(kernelMs <= 2 * wall + 1, `kernel ${kernelMs} ms > 2 × wall ${wall} ms`);
    assert.ok(Math.abs(kernelMs + split['dispatch/idle'] - 2 * wall) < 1e-6 * wall + 1e-9 || kernelMs > 2 * wall, 'phases + dispatch/idle = workers × wall');
  } finally {
    await model.close();
    if (before === undefined) delete process.env.RETNET_PROFILE; else process.env.RETNET_PROFILE = before;
  }
});

test.run();
