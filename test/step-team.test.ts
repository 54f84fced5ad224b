// The helper team of the recurrent step (src/runtime/step-helper.ts): the calls of a round are claimed
// by whichever thread is free. What must hold whatever the timing:
// - every call of a round runs exactly once: products that accumulate into their own output rows
//   (integer operands, so every sum is exact) must end at rounds × one product — a call run twice, or
//   skipped, or a round's list read while the next one is written, changes a sum;
// - each thread uses its own scratch (a list per thread, the same work at every index);
// - a call that fails ends its round with an error once no thread still runs (no hang), and the team
//   runs the next round normally.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OP, StepTeam, type Call } from '../src/runtime/step-helper.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import { ARENA_BASE, createMemory } from '../src/wasm/loader.js';

const N = 40, Kd = 24, CALLS = 37, ROUNDS = 200;

function setup() {
  const memory = createMemory(64);
  const K = bindWasmKernels(memory, 'auto');
  let at = ARENA_BASE;
  const alloc = (bytes: number) => { const o = at; at += Math.ceil(bytes / 64) * 64; return o; };
  const f = () => new Float32Array(memory.buffer);
  const w = alloc(N * Kd * 4), W = alloc(K.packedSize(N, Kd) * 4), x = alloc(Kd * 4), y = alloc(CALLS * N * 4);
  for (let i = 0; i < N * Kd; i++) f()[w / 4 + i] = (i % 7) - 3;
  for (let j = 0; j < Kd; j++) f()[x / 4 + j] = (j % 5) - 2;
  K.pack(w, N, Kd, W);
  const gs = [0, 1, 2, 3].map(() => alloc(Math.max(64, K.gemmScratchBytes())));
  // one row's exact product, in float64 (integers far below 2^24: float32 sums are exact too)
  const want = new Float64Array(N);
  for (let n = 0; n < N; n++) for (let j = 0; j < Kd; j++) want[n] += f()[w / 4 + n * Kd + j]! * f()[x / 4 + j]!;
  const calls = (t: number): Call[] => Array.from({ length: CALLS }, (_, i) => [OP.gemm, x, 1, Kd, Kd, W, N, 0, y + i * N * 4, N, 0, 1, gs[t]!]);
  return { memory, K, f, y, want, calls };
}

test(`every call of a round runs exactly once: 3 helpers, ${ROUNDS} rounds of ${CALLS} accumulating products, scratch per thread`, () => {
  const { memory, K, f, y, want, calls } = setup();
  const team = StepTeam.start(memory, 'auto', 3);
  assert.ok(team, 'the helpers started');
  try {
    assert.is(team!.size, 4);
    for (let r = 0; r < ROUNDS; r++) team!.run(K, calls);
    const out = f().subarray(y / 4, y / 4 + CALLS * N);
    for (let i = 0; i < CALLS; i++) {
      for (let n = 0; n < N; n++) {
        const got = out[i * N + n]!, expect = ROUNDS * want[n]!;
        if (got !== expect) throw new Error(`call ${i}, column ${n}: ${got}, want ${expect} (${got / (want[n] || 1)} products)`);
      }
    }
  } finally { team!.close(); }
});

test('a round of more calls than a helper buffer holds (600 > 512) runs in parts, each call once', () => {
  const { memory, K, f, y, want, calls } = setup();
  const team = StepTeam.start(memory, 'auto', 1);
  assert.ok(team, 'the helper started');
  try {
    // 600 calls over the CALLS output rows: row i gets ⌈(600 − i) / CALLS⌉ products
    const many = (t: number): Call[] => Array.from({ length: 600 }, (_, j) => calls(t)[j % CALLS]!);
    team!.run(K, many);
    for (let i = 0; i < CALLS; i++) {
      const times = Math.ceil((600 - i) / CALLS);
      for (let n = 0; n < N; n++) assert.is(f()[y / 4 + i * N + n], times * want[n]!, `row ${i}, column ${n}`);
    }
  } finally { team!.close(); }
});

test('a call that fails ends its round with an error (no hang), and the next round runs', () => {
  const { memory, K, f, y, want, calls } = setup();
  const team = StepTeam.start(memory, 'auto', 2);
  assert.ok(team, 'the helpers started');
  try {
    const bad = (t: number): Call[] => { const c = calls(t); c[CALLS >> 1] = [99]; return c; };
    // whichever thread claims the bad call: its own error (this thread) or E_ENGINE (a helper)
    for (let r = 0; r < 5; r++) assert.throws(() => team!.run(K, bad), /unknown op 99|helper thread failed/);
    f().fill(0, y / 4, y / 4 + CALLS * N);
    team!.run(K, calls);
    for (let n = 0; n < N; n++) assert.is(f()[y / 4 + n], want[n]);
  } finally { team!.close(); }
});

test.run();
