// Kernel binding inside a worker (or the coordinator): the WASM module over
// the shared memory, or the scalar JS twin.
import { jsKernels, type RuntimeKernels } from './kernels.js';

export async function createWorkerKernels(memory: WebAssembly.Memory, which: 'wasm' | 'js', variant: string): Promise<RuntimeKernels> {
  if (which === 'js') return jsKernels(memory);
  const { bindWasmKernels } = await import('./wasm-kernels.js');
  return bindWasmKernels(memory, variant);
}
