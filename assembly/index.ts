// Module entry: every exported kernel. Built twice from this one source (see
// common.ts): dist/wasm/retnet.simd.wasm and dist/wasm/retnet.relaxed.wasm.
// Memory is imported (shared); the module has no data segments, no mutable
// globals and never allocates: JS owns all memory above ARENA_BASE.
export * from './gemm';
export * from './elementwise';
export * from './retention';
export * from './convert';
export { exp64, erf64, act64 } from './common';

/** End of the module's static data (bytes); JS asserts it is ≤ ARENA_BASE. */
export function data_end(): usize { return __heap_base; }

/** 1 in the relaxed-simd build, 0 in the plain one. */
export function is_relaxed(): i32 { return ASC_FEATURE_RELAXED_SIMD ? 1 : 0; }
