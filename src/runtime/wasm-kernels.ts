// Adapter from the AssemblyScript module's exports to RuntimeKernels.
// (Filled in when the WASM kernels land.)
import type { RuntimeKernels } from './kernels.js';

export function bindWasmKernels(memory: WebAssembly.Memory, variant: string): RuntimeKernels {
  void memory; void variant;
  throw new Error('WASM kernels are not built yet');
}
