// The kernel engines of the wasm backend's worker pool, for tests that run on
// each: 'wasm' always, 'blas' where a CBLAS library loads, 'dnnl' (float32
// operands on oneDNN's matmul, at the default precision) where oneDNN loads —
// skipped otherwise, and a failure in CI, which installs both.
import type { KernelsName } from '../../src/options.js';
import { loadBlas } from '../../src/runtime/blas-kernels.js';
import { dnnlMissing } from '../../src/runtime/dnnl.js';

export const ENGINES: readonly KernelsName[] = ['wasm', 'blas', 'dnnl'];

/** null when `kernels` can run here, else the reason (for canRun). */
export function engineMissing(kernels: KernelsName): string | null {
  if (kernels === 'dnnl') return dnnlMissing();
  if (kernels !== 'blas') return null;
  try { loadBlas(); return null; } catch (e) { return (e as Error).message; }
}
