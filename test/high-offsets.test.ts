// Buffers above 2 GiB in the shared memory: a model whose packed weights fill more than 2 GiB (the fla
// 1.3B: 2.44 GB as BF16) puts its window buffers, decay tables and scratch above byte 2³¹, where a
// signed shift (`offset >> 2`) turns an offset negative. That happened: the CBLAS engine's intra-chunk
// retention read its decay mask and powers through `>> 2` and computed garbage on the 1.3B, and the
// bf16 rounding fallback rounded nothing. Every kernel of every engine must give bit for bit the same
// results on buffers at 64 MiB and just above 2 GiB (the memory grows to 2.1 GiB of address space; only
// the pages used are touched).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMemory } from '../src/wasm/loader.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { jsKernels, type RuntimeKernels } from '../src/runtime/kernels.js';
import { bf16Rounding, bindDnnlKernels } from '../src/runtime/dnnl-kernels.js';
import { loadDnnl } from '../src/runtime/dnnl.js';
import { engineMissing } from './helpers/engines.js';
import { canRun } from './helpers/skip.js';

const PAGE = 65536;
const LOW = 64 * 2 ** 20, HIGH = 2 ** 31 + 16 * 2 ** 20;
const memory = createMemory(256);
memory.grow((HIGH + 32 * 2 ** 20) / PAGE - memory.buffer.byteLength / PAGE);

/** Deterministic float32 values in [−1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 31 - 1; });
}

/** One pass of the chunk worker's kernels on buffers laid out from `base`; returns every output's bytes. */
function run(K: RuntimeKernels, base: number): Uint8Array[] {
  const F4 = 4;
  let top = base;
  const alloc = (bytes: number) => { const p = top; top += Math.ceil(bytes / 64) * 64; return p; };
  const put = (a: Float32Array) => { const p = alloc(a.length * F4); new Float32Array(memory.buffer, p, a.length).set(a); return p; };
  const M = 16, Kd = 72, N = 40, n = 64, dk = 16, dv = 24;
  const out: Uint8Array[] = [];
  const bytes = (p: number, len: number) => new Uint8Array(memory.buffer.slice(p, p + len));
  // GEMM with bias and an activation, then accumulating, on packed float32 weights
  const x = put(values(M * Kd, 1)), w = put(values(N * Kd, 2)), b = put(values(N, 3));
  const wp = alloc(K.packedSize(N, Kd) * F4);
  K.pack(w, N, Kd, wp);
  const gs = alloc(Math.max(64, K.gemmScratchBytes()));
  const y = put(new Float32Array(M * N));
  K.gemm(x, M, Kd, Kd, wp, N, b, y, N, 1, false, gs);
  K.gemm(x, M, Kd, Kd, wp, N, b, y, N, 0, true, gs);
  out.push(bytes(y, M * N * F4));
  // the same on BF16 weights (packBf16, then gemmBf16 widening them into `wide`), where the engine packs in row blocks
  if (!K.packWhole) {
    const wb = put(values(N * Kd, 11));
    const u = new Uint32Array(memory.buffer, wb, N * Kd);
    for (let i = 0; i < u.length; i++) u[i] = u[i]! & 0xffff0000; // every value a BF16 value
    const pb = alloc(K.packedBf16Bytes(N, Kd)), tmp = alloc(K.packedSize(N, Kd) * F4), wide = alloc(K.bf16ScratchBytes(N, Kd));
    assert.ok(K.packBf16(wb, N, Kd, pb, tmp), 'packBf16: exact');
    const yb = put(new Float32Array(M * N));
    K.gemmBf16(x, M, Kd, Kd, pb, N, b, yb, N, 1, false, gs, wide);
    out.push(bytes(yb, M * N * F4));
  }
  // norms and the gate
  const g = put(values(Kd, 4)), h = put(new Float32Array(M * Kd));
  K.rmsNorm(x, M, Kd, Kd, g, 1e-6, h, Kd);
  out.push(bytes(h, M * Kd * F4));
  K.layerNorm(x, M, Kd, Kd, g, b, 1e-5, h, Kd);
  out.push(bytes(h, M * Kd * F4));
  const o = put(values(M * N, 5));
  K.gate(y, N, o, N, M, N, 2);
  out.push(bytes(o, M * N * F4));
  // retention: intra, summary, cross, normalize over a 64-token chunk (the CBLAS engine's own paths)
  const q = put(values(n * dk, 6)), k = put(values(n * dk, 7)), v = put(values(n * dv, 8));
  const pow = put(Float32Array.from({ length: n + 1 }, (_, i) => 0.97 ** i));
  const tile = alloc(Math.max(16, K.tileFloats(n, dk, dv)) * F4);
  const ro = put(new Float32Array(n * dv)), rr = put(new Float32Array(n));
  K.intra(q, k, v, n, dk, dv, dk, dk, dv, pow, ro, dv, rr, tile);
  const S = put(new Float32Array(dk * dv)), z = put(new Float32Array(dk));
  K.summary(k, v, n, dk, dv, dk, dv, pow, S, z, tile);
  K.cross(q, n, dk, dv, dk, pow, S, z, ro, dv, rr, tile);
  const inv = put(values(n, 9).map((t) => 1 + Math.abs(t)));
  K.normalize(ro, n, dv, dv, rr, inv, true);
  out.push(bytes(ro, n * dv * F4), bytes(rr, n * F4), bytes(S, dk * dv * F4), bytes(z, dk * F4));
  // the scan step (float64 state)
  const st = alloc(dk * dv * 8);
  new Float64Array(memory.buffer, st, dk * dv).set(values(dk * dv, 10));
  const inc = alloc(dk * dv * F4);
  K.scanStep(dk * dv, 0.9, st, S, inc);
  out.push(bytes(st, dk * dv * 8), bytes(inc, dk * dv * F4));
  return out;
}

function sameAtBothOffsets(name: string, K: RuntimeKernels): void {
  const low = run(K, LOW), high = run(K, HIGH);
  low.forEach((l, i) => {
    const hgh = high[i]!;
    assert.is(hgh.length, l.length);
    for (let j = 0; j < l.length; j++) if (l[j] !== hgh[j]) throw new Error(`${name}: output ${i} differs at byte ${j} between buffers at 64 MiB and above 2 GiB`);
  });
}

test('wasm engine and the JS twin: bit for bit the same results above 2 GiB', () => {
  sameAtBothOffsets('wasm', bindWasmKernels(memory, 'auto'));
  sameAtBothOffsets('js twin', jsKernels(memory));
});

test('bf16 rounding fallback (over the wasm engine): the same results above 2 GiB, and it rounds there', () => {
  const K = bf16Rounding(bindWasmKernels(memory, 'auto'), memory);
  sameAtBothOffsets('wasm bf16 fallback', K);
  // rounding really happens at a high offset: the GEMM input's low halves are cleared
  const p = HIGH + 8 * 2 ** 20;
  new Float32Array(memory.buffer, p, 4).set([1 + 2 ** -20, Math.PI, -Math.E, 0.1]);
  K.gemm(p, 1, 4, 4, p + 1024, 0, 0, p + 2048, 0, 0, false, p + 4096);
  for (const u of new Uint32Array(memory.buffer, p, 4)) assert.is(u & 0xffff, 0);
});

const tBlas = 'CBLAS engine: bit for bit the same results above 2 GiB (its intra-chunk retention, bias prefill and ones vector)';
test(tBlas, async () => {
  if (!canRun(tBlas, engineMissing('blas'))) return;
  const { bindBlasKernels } = await import('../src/runtime/blas-kernels.js');
  sameAtBothOffsets('blas', bindBlasKernels(memory, 'auto'));
});

const tDnnl = 'dnnl engine (bf16): bit for bit the same results above 2 GiB';
test(tDnnl, () => {
  let missing: string | null = null;
  try { if (!loadDnnl().hasBf16Hardware) missing = 'this CPU has no bfloat16 dot products'; } catch (e) { missing = (e as Error).message; }
  if (missing !== null) { console.log(`SKIPPED: ${tDnnl} — ${missing}`); return; }
  sameAtBothOffsets('dnnl', bindDnnlKernels(memory, bindWasmKernels(memory, 'auto')));
});

const tDnnlF32 = 'dnnl engine (f32): bit for bit the same results above 2 GiB, float32 and BF16 weights';
test(tDnnlF32, () => {
  if (!canRun(tDnnlF32, engineMissing('dnnl'))) return;
  sameAtBothOffsets('dnnl f32', bindDnnlKernels(memory, bindWasmKernels(memory, 'auto'), undefined, 1, 1, undefined, 'f32'));
});

test.run();
