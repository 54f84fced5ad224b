// A helper thread of the recurrent step (src/runtime/step-helper.ts): the WASM kernels instantiated
// on the stepper's shared memory, running the calls the stepper posts — its share of a step's
// retention heads and of its one-row products — while the stepper's own thread runs the rest.
// Calls and results pass through the shared memory; the job protocol is in src/runtime/step-helper.ts.
import { workerData } from 'node:worker_threads';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { claimCalls, CTRL, helperCalls, SPIN_MS } from '../src/runtime/step-helper.js';
import { bindDnnlKernels } from '../src/runtime/dnnl-kernels.js';
import { bindBlasKernels } from '../src/runtime/blas-kernels.js';
import type { RuntimeKernels } from '../src/runtime/kernels.js';

const { memory, variant, ctrl: ctrlBuf, sync: syncBuf, calls: callsBuf, dnnl, blas } = workerData as {
  memory: WebAssembly.Memory; variant: string; ctrl: SharedArrayBuffer; sync: SharedArrayBuffer; calls: SharedArrayBuffer;
  /** the 'dnnl' engine's library (precision bf16 on oneDNN): the products' column blocks run there, one oneDNN thread */
  dnnl: { path?: string } | null;
  /** a CBLAS library for the prefill: its chunkwise retention kernels and its products on BF16 panels (OP.gemmBf16Rows) */
  blas?: { path: string } | null;
};
const ctrl = new Int32Array(ctrlBuf), sync = new Int32Array(syncBuf), call = helperCalls(new Float64Array(callsBuf));

let K: RuntimeKernels | undefined;
try {
  K = bindWasmKernels(memory, variant);
  if (blas) {
    const b = bindBlasKernels(memory, variant, blas.path);
    K = { ...K, intra: b.intra, summary: b.summary, cross: b.cross, tileFloats: b.tileFloats, gemmBf16Rows: b.gemmBf16Rows };
  }
  if (dnnl) K = bindDnnlKernels(memory, K, dnnl.path, 1);
  Atomics.store(ctrl, CTRL.ready, 1);
} catch {
  Atomics.store(ctrl, CTRL.ready, -1);
}
Atomics.notify(ctrl, CTRL.ready);

if (K) {
  const k = K;
  let seen = 0;
  for (;;) {
    // woken for a round: claim its calls until none is left (a wake-up that finds none costs nothing)
    const t0 = performance.now();
    while (Atomics.load(ctrl, CTRL.seq) === seen && performance.now() - t0 < SPIN_MS);
    Atomics.wait(ctrl, CTRL.seq, seen);
    const seq = Atomics.load(ctrl, CTRL.seq);
    if (seq < 0) break; // closed
    if (seq === seen) continue;
    seen = seq;
    claimCalls(k, sync, call);
  }
}
