// The per-phase profile (src/runtime/profile.ts): off, the kernel object is
// returned as is; on, every contract call is charged to its phase in the
// worker's slot, and a real forward's split adds up to workers × wall time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jsKernels } from '../src/runtime/kernels.js';
import { maybeProfiled, collectProfile, resetProfile, splitPhases, phaseRates, profileBuffer, PHASES } from '../src/runtime/profile.js';
import type { RuntimeKernels } from '../src/runtime/kernels.js';
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

test('the profile counts each product\'s 2·M·N·K FLOPs and the intra-chunk causal FLOPs, and states their rates', () => {
  const before = process.env.RETNET_PROFILE;
  process.env.RETNET_PROFILE = '1';
  try {
    const spin = (ms: number) => { const t = performance.now(); while (performance.now() - t < ms) { /* a kernel that takes ms */ } };
    const fake = { ...jsKernels(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true })),
      gemm: () => spin(2), gemmBf16: () => spin(2), intra: () => spin(2) } as unknown as RuntimeKernels;
    const W = maybeProfiled(fake, profileBuffer());
    resetProfile();
    W.gemm(0, 3, 5, 5, 0, 7, 0, 0, 7, 0, false, 0);          // M 3, K 5, N 7: 210
    W.gemmBf16(0, 2, 4, 4, 0, 6, 0, 0, 6, 0, true, 0, 0);    // accumulate: still plain gemm, 96
    W.gemm(0, 4, 8, 8, 0, 16, 0, 0, 16, 1, false, 0);        // with an activation: gemm+act, 1,024
    W.intra(0, 0, 0, 4, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0);        // n 4, dk 2, dv 3: 4·5/2 terms × (2 + 3) × 2 = 100
    const rep = collectProfile();
    const sum = (p: 'gemm' | 'gemm+act' | 'intra') => rep.workers.reduce((s, w) => s + w.flops[p], 0);
    assert.is(sum('gemm'), 210 + 96);
    assert.is(sum('gemm+act'), 1024);
    assert.is(sum('intra'), 100);
    const r = phaseRates(rep), ms = (p: 'gemm' | 'gemm+act' | 'intra') => rep.workers.reduce((s, w) => s + w.times[p], 0);
    assert.ok(Math.abs(r.gemm - 306 / ms('gemm') / 1e6) <= 1e-12 * r.gemm, `gemm rate ${r.gemm}`);
    assert.ok(ms('gemm') >= 4 && ms('gemm+act') >= 2 && ms('intra') >= 2, 'each call was timed');
    assert.ok(r['gemm+act'] > 0 && r.intra > 0);
  } finally {
    if (before === undefined) delete process.env.RETNET_PROFILE; else process.env.RETNET_PROFILE = before;
  }
});

test.run();
