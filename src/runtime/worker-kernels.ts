// Kernel binding inside a worker (or the coordinator): the WASM module over
// the shared memory, the CBLAS engine (BLAS GEMMs + WASM for the rest),
// oneDNN's bfloat16 matmul over either of those (precision 'bf16'), or the
// scalar JS twin (a debugging aid: RETNET_KERNELS=js).
import { threadId } from 'node:worker_threads';
import { jsKernels, type RuntimeKernels } from './kernels.js';

/** What runs a pool's kernels. 'js' is the scalar twin, for testing the orchestration; 'dnnl' runs the
 *  GEMMs on oneDNN (bfloat16 or float32 operands, as `precision`) and the rest on the CBLAS engine when
 *  `blasPath` is given, else WASM. */
export type EngineName = 'wasm' | 'blas' | 'js' | 'dnnl';

/** Which engine, and how: the paths the coordinator resolved, and the GEMM operand precision. */
export interface EngineSpec {
  which: EngineName;
  blasPath?: string;
  dnnlPath?: string;
  /** 'bf16' on 'wasm'/'blas'/'js': the rounding fallback (bf16Rounding); on 'dnnl' the operand type of its
   *  products (absent: 'bf16') */
  precision?: 'f32' | 'bf16';
}

/** The engine's kernels; then `ready[threadId % ready.length] = 1` (shared with the coordinator,
 *  which ends a pool only when no worker is still binding). */
export async function createWorkerKernels(memory: WebAssembly.Memory, engine: EngineSpec, variant: string, ready?: Int32Array): Promise<RuntimeKernels> {
  const K = await bind(memory, engine, variant);
  if (ready) Atomics.store(ready, threadId % ready.length, 1);
  return K;
}

async function bind(memory: WebAssembly.Memory, e: EngineSpec, variant: string): Promise<RuntimeKernels> {
  const base = await bindBase(memory, e.which === 'dnnl' ? (e.blasPath ? 'blas' : 'wasm') : e.which, variant, e.blasPath);
  if (e.which === 'dnnl') {
    const { bindDnnlKernels } = await import('./dnnl-kernels.js');
    return bindDnnlKernels(memory, base, e.dnnlPath, 1, 1, undefined, e.precision ?? 'bf16');
  }
  if (e.precision === 'bf16') {
    const { bf16Rounding } = await import('./dnnl-kernels.js');
    return bf16Rounding(base, memory);
  }
  return base;
}

async function bindBase(memory: WebAssembly.Memory, which: Exclude<EngineName, 'dnnl'>, variant: string, blasPath?: string): Promise<RuntimeKernels> {
  if (which === 'js') return jsKernels(memory);
  if (which === 'blas') {
    const { bindBlasKernels } = await import('./blas-kernels.js');
    return bindBlasKernels(memory, variant, blasPath);
  }
  const { bindWasmKernels } = await import('./wasm-kernels.js');
  return bindWasmKernels(memory, variant);
}
