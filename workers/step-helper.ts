// A helper thread of the recurrent step (src/runtime/step-helper.ts): the WASM kernels instantiated
// on the stepper's shared memory, running the calls the stepper posts — its share of a step's
// retention heads and of its one-row products — while the stepper's own thread runs the rest.
// Calls and results pass through the shared memory; the job protocol is in src/runtime/step-helper.ts.
import { workerData } from 'node:worker_threads';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { CTRL, runCalls } from '../src/runtime/step-helper.js';

const { memory, variant, ctrl: ctrlBuf, calls: callsBuf } = workerData as {
  memory: WebAssembly.Memory; variant: string; ctrl: SharedArrayBuffer; calls: SharedArrayBuffer;
};
const ctrl = new Int32Array(ctrlBuf), calls = new Float64Array(callsBuf);

let K;
try {
  K = bindWasmKernels(memory, variant);
  Atomics.store(ctrl, CTRL.ready, 1);
} catch {
  Atomics.store(ctrl, CTRL.ready, -1);
}
Atomics.notify(ctrl, CTRL.ready);

if (K) {
  let seen = 0;
  for (;;) {
    Atomics.wait(ctrl, CTRL.seq, seen);
    const seq = Atomics.load(ctrl, CTRL.seq);
    if (seq === seen) continue;
    if (seq < 0) break; // closed
    seen = seq;
    try { runCalls(K, calls, Atomics.load(ctrl, CTRL.count)); } catch { Atomics.store(ctrl, CTRL.failed, 1); }
    Atomics.store(ctrl, CTRL.done, seq);
    Atomics.notify(ctrl, CTRL.done);
  }
}
