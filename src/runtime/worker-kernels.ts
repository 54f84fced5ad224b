// Kernel binding inside a worker (or the coordinator): the WASM module over
// the shared memory, the CBLAS engine (BLAS GEMMs + WASM for the rest), or
// the scalar JS twin (a debugging aid: RETNET_KERNELS=js).
import { threadId } from 'node:worker_threads';
import { jsKernels, type RuntimeKernels } from './kernels.js';

/** What runs a pool's kernels. 'js' is the scalar twin, for testing the orchestration. */
export type EngineName = 'wasm' | 'blas' | 'js';

/** The engine's kernels; then `ready[threadId % ready.length] = 1` (shared with the coordinator,
 *  which ends a pool only when no worker is still binding). */
export async function createWorkerKernels(memory: WebAssembly.Memory, which: EngineName, variant: string, blasPath?: string, ready?: Int32Array): Promise<RuntimeKernels> {
  const K = await bind(memory, which, variant, blasPath);
  if (ready) Atomics.store(ready, threadId % ready.length, 1);
  return K;
}

async function bind(memory: WebAssembly.Memory, which: EngineName, variant: string, blasPath?: string): Promise<RuntimeKernels> {
  if (which === 'js') return jsKernels(memory);
  if (which === 'blas') {
    const { bindBlasKernels } = await import('./blas-kernels.js');
    return bindBlasKernels(memory, variant, blasPath);
  }
  const { bindWasmKernels } = await import('./wasm-kernels.js');
  return bindWasmKernels(memory, variant);
}
