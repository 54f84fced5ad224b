// What keeps scoring's peak RSS down: the default window shrinks when states are carried between
// windows (defaultWindowRows), scratch pages whose contents are dead go back to the system
// (releasePages: the LM head's staging after packing), and the head is staged a block of rows at a
// time (Bf16Matrix.rowBits). The outputs of either are covered elsewhere
// (any window size gives the same bits: runtime-forms; the head's logits: fla-bf16); here, the sizes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_ROWS, defaultWindowRows } from '../src/runtime/executor.js';
import { releasePages } from '../src/wasm/huge-pages.js';
import { Bf16Matrix } from '../src/model/bf16.js';

// the fla 1.3B shape at chunks of 256 (executor.ts's perRow): d 2048, Wp 12288, H·dv 4096, H 8, stride 256·512 + 256
const d = 2048, Wp = 12288, Hdv = 4096, H = 8, stride = 256 * 512 + 256;
const perRow = 4 * (d + Wp + Hdv + H) + (2 * H * stride * 4) / 256;
const carried = 24 * H * stride * 8; // 24 float64 states

test('defaultWindowRows: one window when the batch fits; else the carried states come out of the budget', () => {
  const one = defaultWindowRows(perRow, 2048, carried);
  assert.ok(one >= 2048, `2,048 rows in one window (got ${one})`);
  assert.is(one, Math.min(DEFAULT_WINDOW_ROWS, Math.floor(DEFAULT_WINDOW_BYTES / perRow)));
  const long = defaultWindowRows(perRow, 8192, carried);
  assert.ok(long * perRow + carried <= DEFAULT_WINDOW_BYTES, `window ${long} rows + states within the budget`);
  assert.ok((long + 1) * perRow + carried > DEFAULT_WINDOW_BYTES, `the largest window that fits (got ${long})`);
  assert.ok(long < one, 'smaller than the one-window size');
  // states that use the whole budget: still a window (the planner rounds up to a slab)
  assert.is(defaultWindowRows(perRow, 8192, DEFAULT_WINDOW_BYTES * 2), 1);
  // a small model's states change little: d 64, 2 heads, dk = dv = 32, 4 layers
  const small = 4 * (64 + 4 * 64 + 64 + 2) + (2 * 2 * (32 * 32 + 32) * 4) / 64;
  const smallCarried = 4 * 2 * (32 * 32 + 32) * 8;
  assert.is(defaultWindowRows(small, 1e6, smallCarried), Math.min(DEFAULT_WINDOW_ROWS, Math.floor((DEFAULT_WINDOW_BYTES - smallCarried) / small)));
});

const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

test('releasePages gives a touched region back (RSS falls by most of it) and the bytes read as zeros', () => {
  if (process.platform !== 'linux') { console.log('SKIPPED: releasePages gives a touched region back — Linux only (madvise MADV_DONTNEED)'); return; }
  const mib = 64, memory = new WebAssembly.Memory({ initial: (mib + 2) * 16, maximum: (mib + 2) * 16, shared: true });
  const off = 65536, n = mib * 2 ** 20;
  const bytes = new Uint8Array(memory.buffer, off, n);
  bytes.fill(7);
  const before = rssKiB();
  assert.ok(releasePages(memory, off, n), 'released');
  const after = rssKiB();
  assert.ok(before - after >= (mib * 1024 * 3) / 4, `RSS fell by ${((before - after) / 1024).toFixed(1)} MiB of ${mib}`);
  assert.is(bytes[0], 0); assert.is(bytes[n - 1], 0); assert.is(bytes[n >> 1], 0);
  // pages outside the range are untouched
  const edge = new Uint8Array(memory.buffer, off + n, 16);
  edge.fill(9);
  assert.ok(releasePages(memory, off, 4096));
  assert.is(edge[0], 9);
  assert.throws(() => releasePages(memory, memory.buffer.byteLength - 10, 100), /outside the memory/);
});

test('Bf16Matrix.rowBits: a view when resident, only the rows through a row reader, the whole matrix read without one', () => {
  const rows = 5, cols = 3, all = Uint16Array.from({ length: rows * cols }, (_, i) => 0x3f80 + i);
  const res = new Bf16Matrix(rows, cols, all);
  assert.ok(res.readsRows);
  const v = res.rowBits(1, 2);
  assert.equal([...v], [...all.subarray(3, 9)]);
  assert.is(v.buffer, all.buffer, 'a view, not a copy');
  let whole = 0;
  const partial: [number, number][] = [];
  const file = new Bf16Matrix(rows, cols, () => { whole++; return all.slice(); }, (r0, n) => { partial.push([r0, n]); return all.slice(r0 * cols, (r0 + n) * cols); });
  assert.ok(file.readsRows);
  assert.equal([...file.rowBits(2, 3)], [...all.subarray(6, 15)]);
  assert.equal(partial, [[2, 3]]); assert.is(whole, 0);
  const noReader = new Bf16Matrix(rows, cols, () => { whole++; return all.slice(); });
  assert.not.ok(noReader.readsRows);
  assert.equal([...noReader.rowBits(4, 1)], [...all.subarray(12, 15)]);
  assert.is(whole, 1);
  assert.throws(() => res.rowBits(4, 2), RangeError);
  assert.throws(() => res.rowBits(-1, 1), RangeError);
  assert.throws(() => res.rowBits(0.5, 1), RangeError);
  // into: the rows written there, the same array returned, the reader given it (no array in between)
  for (const m of [res, file, noReader]) {
    const into = new Uint16Array(6);
    assert.is(m.rowBits(3, 2, into), into);
    assert.equal([...into], [...all.subarray(9, 15)]);
  }
  const seen: (Uint16Array | undefined)[] = [];
  const direct = new Bf16Matrix(rows, cols, () => all.slice(), (r0, n, into) => { seen.push(into); const o = into ?? new Uint16Array(n * cols); o.set(all.subarray(r0 * cols, (r0 + n) * cols)); return o; });
  const into = new Uint16Array(3);
  direct.rowBits(1, 1, into);
  assert.is(seen[0], into, 'the row reader writes into it');
  assert.throws(() => res.rowBits(0, 2, new Uint16Array(5)), RangeError);
});

test.run();
