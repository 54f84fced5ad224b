// BF16 widening, narrowing and packing kernels: SIMD = scalar = reference (bits << 16; top 16 bits),
// exactly, over every length remainder, every BF16 bit pattern (NaNs, infinities, subnormals,
// ±0), unaligned offsets; and the narrowing kernel's inexact flag. The panel unpacking (BF16 8-column
// panels → float32 rows, the prefill's BLAS operand): SIMD = scalar = the weight's bits << 16.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VARIANTS, kernels, arena, memory, rng } from './helpers/kernels.js';
import { wasmContract } from '../src/runtime/wasm-kernels.js';

function alloc(bytes: number): number {
  return arena.alloc(bytes);
}

for (const variant of VARIANTS) {
  test(`f32_widen_bf16__wasmsimd = f32_widen_bf16__scalar = bits << 16 (${variant}), all 65,536 patterns and n = 0..37`, () => {
    const k = kernels(variant);
    const r = rng(3);
    for (const n of [...Array.from({ length: 38 }, (_, i) => i), 65536, 65536 + 5]) for (const shift of [0, 2]) {
      const mark = arena.mark();
      const src = alloc(n * 2 + 16) + shift, a = alloc(n * 4 + 16) + 2 * shift, b = alloc(n * 4 + 16);
      const s = new Uint16Array(memory.buffer, src, n);
      for (let i = 0; i < n; i++) s[i] = n >= 65536 ? i & 0xffff : r.int(65536);
      k.f32_widen_bf16__wasmsimd(n, src, a);
      k.f32_widen_bf16__scalar(n, src, b);
      const ua = new Uint32Array(memory.buffer.slice(a, a + n * 4)), ub = new Uint32Array(memory.buffer.slice(b, b + n * 4));
      for (let i = 0; i < n; i++) {
        const want = (s[i] << 16) >>> 0;
        if (ua[i] !== want || ub[i] !== want) throw new Error(`widen ${variant} n=${n} shift=${shift} at ${i}: simd 0x${ua[i].toString(16)} scalar 0x${ub[i].toString(16)} want 0x${want.toString(16)}`);
      }
      arena.reset(mark);
    }
  });

  test(`f32_unpack_panels_bf16__wasmsimd = __scalar = the BF16 panels' columns as float32 rows (${variant}), every bit pattern, N = 1..41 (partial panels), K = 1..9 and 2,048`, () => {
    const k = kernels(variant);
    const r = rng(11);
    for (const [N, K] of [...Array.from({ length: 41 }, (_, i) => [i + 1, 1 + (i % 9)]), [64, 2048], [24, 2047]]) {
      const mark = arena.mark();
      // panels[p][k][j] = W[8p + j, k] (BF16), columns past N zero (f32_gemm_pack_8's padding)
      const P = Math.ceil(N / 8), src = alloc(P * 8 * K * 2 + 16), a = alloc(N * K * 4 + 16), b = alloc(N * K * 4 + 16);
      const s = new Uint16Array(memory.buffer, src, P * 8 * K);
      const W = new Uint16Array(N * K);
      for (let i = 0; i < N * K; i++) W[i] = r.int(65536);
      for (let p = 0; p < P; p++) for (let kk = 0; kk < K; kk++) for (let j = 0; j < 8; j++) s[(p * K + kk) * 8 + j] = p * 8 + j < N ? W[(p * 8 + j) * K + kk] : 0;
      for (const nb of new Set([N, N - (N % 8)].filter((v) => v > 0))) {
        k.f32_unpack_panels_bf16__wasmsimd(nb, K, src, a);
        k.f32_unpack_panels_bf16__scalar(nb, K, src, b);
        const ua = new Uint32Array(memory.buffer.slice(a, a + nb * K * 4)), ub = new Uint32Array(memory.buffer.slice(b, b + nb * K * 4));
        for (let i = 0; i < nb * K; i++) {
          const want = (W[i] << 16) >>> 0;
          if (ua[i] !== want || ub[i] !== want) throw new Error(`unpack ${variant} N=${N} K=${K} nb=${nb} at ${i}: simd 0x${ua[i].toString(16)} scalar 0x${ub[i].toString(16)} want 0x${want.toString(16)}`);
        }
      }
      arena.reset(mark);
    }
  });

  test(`f32_narrow_bf16__wasmsimd = f32_narrow_bf16__scalar = top 16 bits (${variant}); flag set iff a low half is nonzero`, () => {
    const k = kernels(variant);
    const r = rng(5);
    for (const n of [...Array.from({ length: 38 }, (_, i) => i), 1000]) for (const inexactAt of [-1, 0, n - 1, n >> 1]) {
      if (inexactAt >= n) continue;
      const mark = arena.mark();
      const src = alloc(n * 4 + 16), a = alloc(n * 2 + 16), b = alloc(n * 2 + 16);
      const s = new Uint32Array(memory.buffer, src, n);
      for (let i = 0; i < n; i++) s[i] = (r.int(65536) << 16) >>> 0;
      if (inexactAt >= 0) s[inexactAt] |= 1 + r.int(0xffff);
      const fa = k.f32_narrow_bf16__wasmsimd(n, src, a), fb = k.f32_narrow_bf16__scalar(n, src, b);
      assert.is(fa, inexactAt >= 0 ? 1 : 0, `simd flag n=${n} inexactAt=${inexactAt}`);
      assert.is(fb, fa, `scalar flag n=${n}`);
      const ua = new Uint16Array(memory.buffer, a, n), ub = new Uint16Array(memory.buffer, b, n);
      for (let i = 0; i < n; i++) {
        const want = s[i] >>> 16;
        if (ua[i] !== want || ub[i] !== want) throw new Error(`narrow ${variant} n=${n} at ${i}: simd ${ua[i]} scalar ${ub[i]} want ${want}`);
      }
      // round trip: narrow(widen(x)) = x
      const back = alloc(n * 4 + 16);
      k.f32_widen_bf16__wasmsimd(n, a, back);
      const ok = new Uint32Array(memory.buffer, back, n);
      for (let i = 0; i < n; i++) if (ok[i] !== ((s[i] >>> 16) << 16) >>> 0) throw new Error(`round trip n=${n} at ${i}`);
      arena.reset(mark);
    }
  });
}

// Packing BF16 weights: bf16_pack_8 (BF16 rows → BF16 8-column panels, no widening; what packModel runs
// on unscaled BF16 rows) and the wasm engine's packBf16 (float32 rows narrowed, then bf16_pack_8), against
// the path they replace — f32_gemm_pack_8 on the widened rows, then f32_narrow_bf16 — byte for byte: N and
// K off the 8×8 transpose (partial panels, K tails), every bit pattern. And f32_scale (packing's power-of-two
// row scales) = the float64 product rounded once, as the JavaScript loop it replaces computed it.
for (const variant of VARIANTS) {
  test(`bf16_pack_8__wasmsimd = __scalar = f32_gemm_pack_8 + f32_narrow_bf16, byte for byte (${variant}); f32_scale = Math.fround(x·s)`, () => {
    const k = kernels(variant);
    const contract = wasmContract(k);
    const r = rng(21);
    for (const [N, K] of [[1, 1], [7, 5], [8, 8], [9, 7], [16, 16], [23, 13], [40, 64], [64, 2048], [17, 1031], [8, 9]]) {
      const mark = arena.mark();
      const packedF = k.f32_gemm_packed_size(N, K);
      const bits = alloc(N * K * 2 + 16), w = alloc(N * K * 4 + 16), pf = alloc(packedF), want = alloc(packedF / 2 + 16);
      const got1 = alloc(packedF / 2 + 16), got2 = alloc(packedF / 2 + 16), got3 = alloc(packedF / 2 + 16), tmp = alloc(packedF + 16);
      const bv = new Uint16Array(memory.buffer, bits, N * K);
      for (let i = 0; i < N * K; i++) bv[i] = r.int(65536);
      k.f32_widen_bf16__wasmsimd(N * K, bits, w);
      k.f32_gemm_pack_8(N, K, w, K, pf);
      assert.is(k.f32_narrow_bf16__wasmsimd(packedF / 4, pf, want), 0);
      for (const g of [got1, got2, got3]) new Uint8Array(memory.buffer, g, packedF / 2).fill(0xa5); // padding must be written, not left
      k.bf16_pack_8__wasmsimd(N, K, bits, got1);
      k.bf16_pack_8__scalar(N, K, bits, got2);
      assert.ok(contract.packBf16(w, N, K, got3, tmp), `packBf16 N=${N} K=${K}: BF16 values refused`);
      const u = (p: number) => new Uint16Array(memory.buffer.slice(p, p + packedF / 2));
      const wv = u(want);
      for (const [name, g] of [['simd', got1], ['scalar', got2], ['packBf16', got3]] as const) {
        const gv = u(g);
        for (let i = 0; i < wv.length; i++) if (gv[i] !== wv[i]) throw new Error(`${name} ${variant} N=${N} K=${K} at ${i}: 0x${gv[i].toString(16)} want 0x${wv[i].toString(16)}`);
      }
      // a value that is not BF16 is refused
      if (N * K > 1) {
        new Uint32Array(memory.buffer, w, N * K)[N * K - 1] |= 1;
        assert.not.ok(contract.packBf16(w, N, K, got3, tmp), `packBf16 N=${N} K=${K} took a non-BF16 value`);
      }
      arena.reset(mark);
    }
    // f32_scale by powers of two, the only scales packing applies (exact but for subnormal results, rounded once either way)
    const n = 1037, x = alloc(n * 4 + 16), xs = new Float32Array(memory.buffer, x, n);
    for (const s of [0.0625, 2 ** -20, 8]) {
      const src = Float32Array.from({ length: n }, (_, i) => i % 7 === 0 ? (r.next() - 0.5) * 1e-36 : (r.next() - 0.5) * 8);
      xs.set(src);
      k.f32_scale__wasmsimd(n, x, s);
      for (let i = 0; i < n; i++) if (!Object.is(xs[i], Math.fround(src[i] * s))) throw new Error(`f32_scale s=${s} at ${i}: ${xs[i]} want ${Math.fround(src[i] * s)}`);
    }
  });
}

// The one-row GEMM on BF16 panels (a decoding step) against the path it replaces — widen the panels,
// then f32_gemm_4x8__wasmsimd with M = 1 — bit for bit: N and K off the panel width and the K block,
// bias or none, every activation, accumulate or not.
for (const variant of VARIANTS) {
  test(`f32_gemv_bf16__wasmsimd = widen + f32_gemm_4x8__wasmsimd (M = 1), bit for bit (${variant})`, () => {
    const k = kernels(variant);
    const r = rng(9);
    for (const [N, K] of [[1, 1], [7, 5], [8, 64], [13, 65], [40, 130], [256, 200], [33, 1031]]) {
      for (const act of [0, 1, 2, 5]) for (const acc of [0, 1]) for (const withBias of [false, true]) {
        const mark = arena.mark();
        const packedF = k.f32_gemm_packed_size(N, K);
        const w = alloc(N * K * 4), pf = alloc(packedF), pb = alloc(packedF / 2), wide = alloc(packedF);
        const x = alloc(K * 4 + 16), b = withBias ? alloc(N * 4 + 32) : 0, y1 = alloc(N * 4 + 32), y2 = alloc(N * 4 + 32);
        const wf = new Float32Array(memory.buffer, w, N * K);
        for (let i = 0; i < N * K; i++) wf[i] = Math.fround((r.next() - 0.5) * 1.5);
        const wu = new Uint32Array(memory.buffer, w, N * K);
        for (let i = 0; i < N * K; i++) wu[i] &= 0xffff0000; // BF16 values
        k.f32_gemm_pack_8(N, K, w, K, pf);
        assert.is(k.f32_narrow_bf16__wasmsimd(packedF / 4, pf, pb), 0);
        const xv = new Float32Array(memory.buffer, x, K);
        for (let i = 0; i < K; i++) xv[i] = Math.fround(r.next() * 4 - 2);
        if (b) { const bv = new Float32Array(memory.buffer, b, N); for (let i = 0; i < N; i++) bv[i] = Math.fround(r.next() - 0.5); }
        const y1v = new Float32Array(memory.buffer, y1, N), y2v = new Float32Array(memory.buffer, y2, N);
        for (let i = 0; i < N; i++) y1v[i] = y2v[i] = Math.fround(r.next() * 2 - 1);
        k.f32_widen_bf16__wasmsimd(packedF / 4, pb, wide);
        k.f32_gemm_4x8__wasmsimd(1, N, K, x, K, wide, b, y1, N, act, acc, 0);
        k.f32_gemv_bf16__wasmsimd(N, K, x, pb, b, y2, act, acc);
        const u1 = new Uint32Array(memory.buffer, y1, N), u2 = new Uint32Array(memory.buffer, y2, N);
        for (let i = 0; i < N; i++) {
          if (u1[i] !== u2[i]) throw new Error(`${variant} N=${N} K=${K} act=${act} acc=${acc} bias=${withBias} at ${i}: gemv ${y2v[i]} vs gemm ${y1v[i]}`);
        }
        arena.reset(mark);
      }
    }
  });
}

test.run();
