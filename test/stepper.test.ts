// The recurrent step on the WASM kernels (src/runtime/stepper.ts) with helper threads, a state kept in
// the stepper's memory, and precision 'bf16'.
//
// - Threads: the retention heads, and the columns of the one-row products, split between the calling
//   thread and helpers — each output column's sum and each head's state update are computed by the same
//   kernel code whatever the split, so outputs and states must equal one thread's bit for bit (float32
//   and BF16 panels, the bf16 fallback, B = 2, 3 threads so the shares are uneven).
// - The state: moved into the stepper's memory on first use (its arrays replaced by views there), then
//   updated in place; the float64 js step must continue from it as from a plain copy. A float32 state
//   (S a Float32Array) stays float32 there, with the same thread and continuation checks.
// - bf16 on oneDNN (where the CPU has bfloat16 dot products; skipped by name elsewhere) against the
//   fallback: the same rounded operands, float32 sums in another order — held to the bf16 bound of
//   test/precision.test.ts (8u per layer of max|output|, u = 2⁻⁹).
// - bf16 on oneDNN with helpers: each weight packed in column blocks, which the threads claim and run
//   on their own oneDNN — bit for bit one thread's single block (one row, M = 1, and two).
// - The LM head (WasmHead) splits its columns the same way (WASM GEMM, and oneDNN's column blocks):
//   bit for bit one thread.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RetNet, RetNetLM, Tensor } from '../src/index.js';
import { WasmStepper } from '../src/runtime/stepper.js';
import { WasmHead } from '../src/lm/wasm-head.js';
import { Bf16Matrix } from '../src/model/bf16.js';
import * as js from '../src/backends/js.js';
import type { ModelSpec } from '../src/backends/executor.js';
import type { LayerState } from '../src/backends/js.js';
import { dnnlBf16Missing, dnnlMissing, loadDnnl } from '../src/runtime/dnnl.js';
import { bindDnnlKernels, guidedColumnBlocks, roundRowsBf16 } from '../src/runtime/dnnl-kernels.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { ARENA_BASE, createMemory } from '../src/wasm/loader.js';
import { canRun } from './helpers/skip.js';

/** Whether a test of oneDNN's bf16 products can run: a missing oneDNN is a missing part (canRun: a failure
 *  in CI); a CPU where oneDNN has no bfloat16 matmul (oneDNN 2.6 below AVX-512) is skipped everywhere. */
function canRunDnnlBf16(name: string): boolean {
  if (!canRun(name, dnnlMissing())) return false;
  const no = dnnlBf16Missing();
  if (no !== null) { console.log(`SKIPPED: ${name} — ${no}`); return false; }
  return true;
}
import { flaDir } from './helpers/fla-golden.js';

const FLAGS = { normalizeAttn: false, normalizeRetn: false };
const specOf = (m: RetNet): ModelSpec => (m as unknown as { spec: ModelSpec }).spec;
const zeroStates = (m: RetNet, B: number): LayerState[][] => m.layers.map(() => Array.from({ length: B }, () => js.zeroLayerState(m.dims)));

function sameBits(what: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) throw new Error(`${what}: differs at ${i}: ${a[i]} vs ${b[i]}`);
}

function inputs(B: number, d: number, seed: number): Float64Array {
  return Float64Array.from({ length: B * d }, (_, i) => Math.sin(0.37 * i + seed) * (1 + (i % 5) / 4));
}

// bf16-sharded: BF16 panels, q|k|v|g 288 and gate|up 192 columns (split), o and down 48 (not split);
// f32: float32 panels.
const models = [['bf16-sharded', await RetNetLM.loadFolder(flaDir('bf16-sharded'), { bf16: 'resident' })], ['f32', await RetNetLM.loadFolder(flaDir('f32'))]] as const;

for (const [name, lm] of models) {
  for (const precision of ['f32', 'bf16'] as const) {
    test(`${name}, ${precision}${precision === 'bf16' ? ' (fallback)' : ''}: 3 threads = 1 thread bit for bit (outputs and states, B = 2, 6 steps)`, () => {
      const m = lm.model, d = m.dims.d, B = 2;
      const one = new WasmStepper(specOf(m), { threads: 1, precision, kernels: 'wasm' });
      const three = new WasmStepper(specOf(m), { threads: 3, precision, kernels: 'wasm' });
      try {
        assert.match(three.engine, /3 threads/, 'the helpers started');
        assert.match(one.engine, /1 thread$/);
        const s1 = zeroStates(m, B), s3 = zeroStates(m, B);
        for (let t = 0; t < 6; t++) {
          const x = inputs(B, d, t);
          sameBits(`y t=${t}`, three.step(x, B, t, s3, FLAGS), one.step(x, B, t, s1, FLAGS));
          for (let l = 0; l < m.layers.length; l++) for (let b = 0; b < B; b++) {
            sameBits(`S l=${l} b=${b} t=${t}`, s3[l][b].S, s1[l][b].S);
            sameBits(`z l=${l} b=${b} t=${t}`, s3[l][b].z, s1[l][b].z);
          }
        }
      } finally { one.close(); three.close(); }
    });
  }
}

test('the state moves into the stepper once, is updated in place, and the js step continues from it', () => {
  const m = models[1][1].model, d = m.dims.d;
  const st = m.initState(1);
  const before = st.layers[0][0].S;
  m.step(new Tensor(inputs(1, d, 1), [1, d]), st, { backend: 'wasm' });
  const view = st.layers[0][0].S;
  assert.ok(view !== before && view.buffer instanceof SharedArrayBuffer, 'S is now a view of the stepper memory');
  m.step(new Tensor(inputs(1, d, 2), [1, d]), st, { backend: 'wasm' });
  assert.ok(st.layers[0][0].S === view, 'the same view, updated in place');
  const copy = { pos: st.pos, batch: 1, layers: st.layers.map((l) => l.map((s) => ({ S: s.S.slice(), z: s.z.slice() }))) };
  const x = new Tensor(inputs(1, d, 3), [1, d]);
  const a = m.step(x, st, { backend: 'js' }), b = m.step(x, copy, { backend: 'js' });
  sameBits('js step from the view vs from a copy', a.y.data, b.y.data);
  sameBits('its state', st.layers[1][0].S, copy.layers[1][0].S);
  // another stepper (a precision change makes one) moves the state again, from its current values:
  // the same as that stepper continuing from a copy
  const copy2 = { pos: st.pos, batch: 1, layers: st.layers.map((l) => l.map((s) => ({ S: s.S.slice(), z: s.z.slice() }))) };
  const x4 = new Tensor(inputs(1, d, 4), [1, d]);
  const c = m.step(x4, st, { backend: 'wasm', precision: 'bf16' });
  assert.ok(st.layers[0][0].S !== view, 'moved to the bf16 stepper');
  const e = m.step(x4, copy2, { backend: 'wasm', precision: 'bf16' });
  sameBits('bf16 step from the moved state vs from a copy', c.y.data, e.y.data);
});

test('a float32 state: 3 threads = 1 thread bit for bit (f32, bf16 fallback and oneDNN; B = 2); it stays float32 views, and the js step continues from it as from a copy', () => {
  const m = models[1][1].model, d = m.dims.d, B = 2;
  const kinds: [string, 'f32' | 'bf16', 'wasm' | 'dnnl'][] = [['f32', 'f32', 'wasm'], ['bf16 fallback', 'bf16', 'wasm']];
  if (!dnnlMissing() && dnnlBf16Missing() === null) kinds.push(['bf16 oneDNN', 'bf16', 'dnnl']);
  else console.log(`  (not here: the bf16 oneDNN step — ${dnnlMissing() ?? dnnlBf16Missing()}; its own tests below report the skip)`);
  const states32 = () => m.layers.map(() => Array.from({ length: B }, () => js.zeroLayerState(m.dims, 'float32')));
  for (const [label, precision, kernels] of kinds) {
    const one = new WasmStepper(specOf(m), { threads: 1, precision, kernels });
    const three = new WasmStepper(specOf(m), { threads: 3, precision, kernels });
    try {
      const s1 = states32(), s3 = states32();
      for (let t = 0; t < 6; t++) {
        const x = inputs(B, d, t + 20);
        sameBits(`${label} y t=${t}`, three.step(x, B, t, s3, FLAGS), one.step(x, B, t, s1, FLAGS));
        for (let l = 0; l < m.layers.length; l++) for (let b = 0; b < B; b++) {
          assert.ok(s3[l][b].S instanceof Float32Array && s3[l][b].S.buffer instanceof SharedArrayBuffer, `${label}: S is a float32 view of the stepper memory`);
          sameBits(`${label} S l=${l} b=${b} t=${t}`, s3[l][b].S, s1[l][b].S);
          sameBits(`${label} z l=${l} b=${b} t=${t}`, s3[l][b].z, s1[l][b].z);
        }
      }
    } finally { one.close(); three.close(); }
  }
  // the js step continues from the views as from copies (both float32 states)
  const st = m.initState(1, 'float32');
  for (let t = 0; t < 3; t++) m.step(new Tensor(inputs(1, d, t + 30), [1, d]), st, { backend: 'wasm' });
  const copy = { pos: st.pos, batch: 1, layers: st.layers.map((l) => l.map((s) => ({ S: s.S.slice(), z: s.z.slice() }))) };
  assert.ok(copy.layers[0][0].S instanceof Float32Array);
  const x = new Tensor(inputs(1, d, 40), [1, d]);
  sameBits('js step from the float32 views vs from copies', m.step(x, st, { backend: 'js' }).y.data, m.step(x, copy, { backend: 'js' }).y.data);
  sameBits('their states', st.layers[1][0].S, copy.layers[1][0].S);
  assert.throws(() => m.initState(1, 'float16' as 'float32'), (e: Error & { code?: string }) => e.code === 'E_OPTION');
});

test('step options: bf16 on the js step is E_OPTION; RETNET_PRECISION=bf16 does not reach the js step', () => {
  const m = models[1][1].model, d = m.dims.d;
  const x = new Tensor(inputs(1, d, 5), [1, d]);
  assert.throws(() => m.step(x, undefined, { backend: 'js', precision: 'bf16' }), (e: Error & { code?: string }) => e.code === 'E_OPTION' && /js step/.test(e.message));
  assert.throws(() => m.step(x, undefined, { backend: 'wasm', precision: 'f16' as 'bf16' }), (e: Error & { code?: string }) => e.code === 'E_OPTION');
  const old = process.env.RETNET_PRECISION;
  process.env.RETNET_PRECISION = 'bf16';
  try {
    const a = m.step(x, undefined, { backend: 'js' });
    delete process.env.RETNET_PRECISION;
    const b = m.step(x, undefined, { backend: 'js' });
    sameBits('js step under RETNET_PRECISION=bf16', a.y.data, b.y.data);
  } finally {
    if (old === undefined) delete process.env.RETNET_PRECISION; else process.env.RETNET_PRECISION = old;
  }
});

test('bf16 on oneDNN (all threads) vs the fallback: within 8u per layer of max|output| (6 steps)', () => {
  const name = 'recurrent step on the dnnl engine';
  if (!canRun(name, dnnlMissing())) return;
  const lib = loadDnnl();
  if (!lib.hasBf16Hardware) { console.log(`SKIPPED: ${name} — this CPU has no bfloat16 dot products (oneDNN dispatches to ${lib.isa})`); return; }
  for (const [label, lm] of models) {
    const m = lm.model, d = m.dims.d;
    const dn = new WasmStepper(specOf(m), { threads: 2, precision: 'bf16', kernels: 'dnnl' });
    const fb = new WasmStepper(specOf(m), { threads: 1, precision: 'bf16', kernels: 'wasm' });
    try {
      assert.match(dn.engine, /onednn/i);
      const sd = zeroStates(m, 1), sf = zeroStates(m, 1);
      let worst = 0;
      for (let t = 0; t < 6; t++) {
        const x = inputs(1, d, t);
        const a = dn.step(x, 1, t, sd, FLAGS), b = fb.step(x, 1, t, sf, FLAGS);
        let diff = 0, scale = 0;
        for (let i = 0; i < d; i++) { diff = Math.max(diff, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
        worst = Math.max(worst, diff / scale);
      }
      const bound = 8 * 2 ** -9 * m.layers.length;
      console.log(`  ${label}: dnnl vs fallback step ${worst.toExponential(2)} (bound ${bound.toExponential(2)})`);
      assert.ok(worst <= bound, `${label}: ${worst} > ${bound}`);
    } finally { dn.close(); fb.close(); }
  }
});

test('bf16 on oneDNN: 3 threads (a column block of every weight on each thread\'s oneDNN) = 1 thread bit for bit (outputs and states, B = 1 and 2, 6 steps)', () => {
  if (!canRunDnnlBf16('recurrent step on the dnnl engine, threads')) return;
  for (const [label, lm] of models) for (const B of [1, 2]) {
    const m = lm.model, d = m.dims.d;
    const one = new WasmStepper(specOf(m), { threads: 1, precision: 'bf16', kernels: 'dnnl' });
    const three = new WasmStepper(specOf(m), { threads: 3, precision: 'bf16', kernels: 'dnnl' });
    try {
      assert.match(three.engine, /onednn.*3 threads/i, 'the helpers started, on oneDNN');
      const s1 = zeroStates(m, B), s3 = zeroStates(m, B);
      for (let t = 0; t < 6; t++) {
        const x = inputs(B, d, t + 10);
        sameBits(`${label} B=${B} y t=${t}`, three.step(x, B, t, s3, FLAGS), one.step(x, B, t, s1, FLAGS));
        for (let l = 0; l < m.layers.length; l++) for (let b = 0; b < B; b++) sameBits(`${label} S l=${l} b=${b} t=${t}`, s3[l][b].S, s1[l][b].S);
      }
    } finally { one.close(); three.close(); }
  }
});

test('guidedColumnBlocks: T big blocks first, then 2T small ones; every column once; multiples of 64 but the last', () => {
  for (const [N, T] of [[2048, 2], [12288, 2], [5632, 2], [32000, 3], [300, 3], [100, 2], [64, 4], [1, 1]]) {
    const b = guidedColumnBlocks(N, T);
    let next = 0;
    for (const [n0, nn] of b) { assert.is(n0, next, `N=${N} T=${T}: contiguous`); next += nn; }
    assert.is(next, N, `N=${N} T=${T}: every column`);
    b.slice(0, -1).forEach(([, nn]) => assert.is(nn % 64, 0, `N=${N} T=${T}: multiple of 64`));
    if (b.length === 3 * T) for (let i = T; i < b.length; i++) assert.ok(b[i]![1] < b[0]![1], `N=${N} T=${T}: small after big`);
  }
  assert.equal(guidedColumnBlocks(2048, 2), [[0, 768], [768, 768], [1536, 128], [1664, 128], [1792, 128], [1920, 128]]);
});

test('the dnnl engine with weights in 3 column blocks (even, or big first), run in turn on one thread = one block, bit for bit (1 and 5 rows, bias, accumulate)', () => {
  if (!canRunDnnlBf16('dnnl engine column blocks')) return;
  for (const guided of [false, true]) blockedVsOne(guided);
});

function blockedVsOne(guided: boolean): void {
  const memory = createMemory(64);
  const base = bindWasmKernels(memory, 'auto');
  const one = bindDnnlKernels(memory, base, undefined, 1);
  const three = guided ? bindDnnlKernels(memory, base, undefined, 1, 3, (n) => guidedColumnBlocks(n, 3)) : bindDnnlKernels(memory, base, undefined, 1, 3);
  const N = 300, K = 96, M = 5;
  let at = ARENA_BASE;
  const alloc = (n: number) => { const o = at; at += Math.ceil(n / 64) * 64; return o; };
  const w = alloc(N * K * 4), W1 = alloc(one.packedBf16Bytes(N, K)), W3 = alloc(three.packedBf16Bytes(N, K));
  const x = alloc(M * K * 4), b = alloc(N * 4), y1 = alloc(M * N * 4), y3 = alloc(M * N * 4);
  const f = new Float32Array(memory.buffer);
  for (let i = 0; i < N * K; i++) f[w / 4 + i] = Math.sin(i * 0.37);
  for (let i = 0; i < M * K; i++) f[x / 4 + i] = Math.cos(i * 0.11);
  for (let i = 0; i < N; i++) f[b / 4 + i] = i / N;
  one.packWhole!(w, 'f32', N, K, W1); three.packWhole!(w, 'f32', N, K, W3);
  assert.is(three.calls(x, M, K, K, W3, N, b, y3, N, 0, false).length, guided ? guidedColumnBlocks(N, 3).length : 3);
  if (guided) assert.ok(guidedColumnBlocks(N, 3).length > 3, 'more blocks than threads');
  for (const rows of [1, M]) for (const acc of [false, true]) {
    for (let i = 0; i < M * N; i++) f[y1 / 4 + i] = f[y3 / 4 + i] = (i % 7) / 7;
    one.gemm(x, rows, K, K, W1, N, b, y1, N, 0, acc, 0);
    three.gemm(x, rows, K, K, W3, N, b, y3, N, 0, acc, 0);
    sameBits(`${guided ? 'big first' : 'even'}: rows ${rows}, accumulate ${acc}`, f.subarray(y3 / 4, y3 / 4 + M * N), f.subarray(y1 / 4, y1 / 4 + M * N));
  }
}

test('bf16 LM head on oneDNN: 3 threads (column blocks) = 1 thread bit for bit — float32 and BF16 heads, 1 and 7 rows', () => {
  if (!canRunDnnlBf16('LM head on the dnnl engine, threads')) return;
  const lib = loadDnnl();
  const V = 1000, d = 48;
  const f32 = Float32Array.from({ length: V * d }, (_, i) => Math.sin(i * 0.7) * 0.3);
  const bits = Uint16Array.from(f32, (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16);
  const normW = Float32Array.from({ length: d }, (_, i) => 1 + i / d), normB = new Float32Array(d);
  const rows = Float64Array.from({ length: 7 * d }, (_, i) => Math.cos(i * 0.11) * 2);
  const tools = { dnnl: { lib }, round: roundRowsBf16 };
  for (const head of [f32, new Bf16Matrix(V, d, bits)]) {
    const one = new WasmHead(head, normW, normB, d, V, 8, 1e-6, 'bf16', tools, 1);
    const three = new WasmHead(head, normW, normB, d, V, 8, 1e-6, 'bf16', tools, 3);
    try {
      assert.match(three.engine, /onednn.*3 threads/i);
      for (const m of [1, 7]) sameBits(`${head instanceof Bf16Matrix ? 'BF16' : 'float32'} head, m=${m}`, Float32Array.from(three.logits(rows, 0, m)), one.logits(rows, 0, m));
      assert.ok((three as unknown as { team: { size: number } | null }).team?.size === 3, 'the helpers ran');
    } finally { one.close(); three.close(); }
  }
});

test('LM head (WasmHead): 3 threads = 1 thread bit for bit — float32 and BF16 heads, 1 and 7 rows, LayerNorm and RMSNorm', () => {
  const V = 1000, d = 48;
  const f32 = Float32Array.from({ length: V * d }, (_, i) => Math.sin(i * 0.7) * 0.3);
  const bits = Uint16Array.from(f32, (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16);
  const normW = Float32Array.from({ length: d }, (_, i) => 1 + i / d), normB = Float32Array.from({ length: d }, (_, i) => i / (4 * d));
  const rows = Float64Array.from({ length: 7 * d }, (_, i) => Math.cos(i * 0.11) * 2);
  for (const head of [f32, new Bf16Matrix(V, d, bits)]) for (const rms of [undefined, 1e-6]) {
    const one = new WasmHead(head, normW, normB, d, V, 8, rms, 'f32', undefined, 1);
    const three = new WasmHead(head, normW, normB, d, V, 8, rms, 'f32', undefined, 3);
    try {
      for (const m of [1, 7]) {
        const a = Float32Array.from(three.logits(rows, 0, m)), b = one.logits(rows, 0, m);
        sameBits(`${head instanceof Bf16Matrix ? 'BF16' : 'float32'} head, ${rms ? 'RMSNorm' : 'LayerNorm'}, m=${m}`, a, b);
      }
      assert.ok((three as unknown as { team: { size: number } | null }).team?.size === 3, 'the helpers ran');
    } finally { one.close(); three.close(); }
  }
});

test.after(async () => { for (const [, lm] of models) await lm.close(); });
test.run();
