// 2 MiB pages for the shared WebAssembly memories (src/wasm/huge-pages.ts): where the kernel's
// transparent huge pages are in 'madvise' mode, a memory from createMemory is advised and touched
// pages come back as AnonHugePages; RETNET_HUGEPAGES=0 leaves it on 4 KiB pages; a bad value is
// E_OPTION; backendInfo() says which; the engine's output is bit for bit the same either way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { RetNet, RetNetError, Tensor } from '../src/index.js';
import { createMemory } from '../src/wasm/loader.js';
import { pagesOf, thpMode } from '../src/wasm/huge-pages.js';
import { loadLibc, memoryBase, requireKoffi } from '../src/runtime/native-lib.js';

const mode = thpMode();

const baseOf = memoryBase(loadLibc(requireKoffi('this test')));

/** kB of anonymous huge pages in the mappings that overlap [lo, hi) (/proc/self/smaps): this memory's
 *  own, whatever else the process (or khugepaged) does meanwhile. */
function anonHugeKb(lo: number, hi: number): number {
  let kb = 0, inside = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (h) { inside = parseInt(h[1], 16) < hi && parseInt(h[2], 16) > lo; continue; }
    const m = /^AnonHugePages:\s+(\d+) kB/.exec(line);
    if (m && inside) kb += Number(m[1]);
  }
  return kb;
}

function withEnv<T>(value: string | undefined, f: () => T): T {
  const old = process.env.RETNET_HUGEPAGES;
  if (value === undefined) delete process.env.RETNET_HUGEPAGES; else process.env.RETNET_HUGEPAGES = value;
  try { return f(); } finally { if (old === undefined) delete process.env.RETNET_HUGEPAGES; else process.env.RETNET_HUGEPAGES = old; }
}

/** Touch 64 MiB of a fresh memory; the AnonHugePages it added (kB) and its label. */
function touch(value: string | undefined): { kb: number; label: string } {
  return withEnv(value, () => {
    const m = createMemory(16);
    m.grow(1024);
    new Uint8Array(m.buffer, 1 << 20, 64 << 20).fill(1);
    const base = baseOf(m);
    return { kb: anonHugeKb(base, base + m.buffer.byteLength), label: pagesOf(m) };
  });
}

test(`createMemory's pages follow the kernel's THP mode (${mode ?? 'none'}) and RETNET_HUGEPAGES`, () => {
  const on = touch(undefined), off = touch('0');
  if (mode === 'madvise') {
    assert.is(on.label, 'huge pages (madvise)');
    assert.ok(on.kb >= 2048, `64 MiB touched in an advised memory added ${on.kb} kB of huge pages`);
    assert.is(off.label, '4 KiB pages (RETNET_HUGEPAGES=0)');
    assert.is(off.kb, 0, 'not advised: no huge pages');
  } else if (mode === 'always') {
    assert.is(on.label, 'huge pages (THP always)');
    assert.is(off.label, 'huge pages (THP always)'); // the kernel's choice; nothing to turn off
  } else {
    assert.ok(on.label.startsWith('4 KiB pages ('), on.label);
    assert.is(on.kb, 0);
  }
  assert.is(touch('1').label, on.label, 'RETNET_HUGEPAGES=1 is the default');
});

test('RETNET_HUGEPAGES other than 0 or 1 is E_OPTION, naming the variable', () => {
  withEnv('yes', () => {
    try { createMemory(16); assert.unreachable('accepted RETNET_HUGEPAGES=yes'); } catch (e) {
      assert.instance(e, RetNetError);
      assert.is((e as RetNetError).code, 'E_OPTION');
      assert.match((e as Error).message, /RETNET_HUGEPAGES/);
    }
  });
  withEnv('', () => { createMemory(16); }); // empty = unset (src/env.ts)
});

test('backendInfo names the pages; the output is bit for bit the same on either', async () => {
  const L = 300, d = 64;
  const x = new Tensor(Float32Array.from({ length: L * d }, (_, i) => Math.sin(i * 0.37)), [1, L, d]);
  const run = async (value: string) => {
    process.env.RETNET_HUGEPAGES = value;
    const m = RetNet.init({ seed: 3, numLayer: 2, numHeads: 4, dimModel: d });
    try {
      const y = await m.forward(x, { backend: 'wasm', numChunks: 3, workers: 2 });
      return { y: y.data as Float32Array, info: (await m.backendInfo())[0] };
    } finally { delete process.env.RETNET_HUGEPAGES; await m.close(); }
  };
  const a = await run('1'), b = await run('0');
  assert.is(a.info.memory, mode === 'madvise' ? 'huge pages (madvise)' : mode === 'always' ? 'huge pages (THP always)' : a.info.memory);
  if (mode === 'madvise') assert.is(b.info.memory, '4 KiB pages (RETNET_HUGEPAGES=0)');
  assert.is(a.y.length, b.y.length);
  let diff = 0;
  for (let i = 0; i < a.y.length; i++) if (!Object.is(a.y[i], b.y[i])) diff++;
  assert.is(diff, 0, 'elements that differ');
});

test.run();
