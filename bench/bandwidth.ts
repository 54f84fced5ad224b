// The machine's streaming read bandwidth, for benchmarks that set a speed against it (bench/decode.ts,
// bench/dnnl-gemv.ts): each reader thread memcmps (Buffer.compare) two equal 512 MiB buffers — a pure
// sequential read of 1 GiB per thread — and n readers run at the same time. The buffers live in a
// WebAssembly memory made as the engines make theirs (createMemory), so on the same kind of pages: 2 MiB
// pages where the engines get them (src/wasm/huge-pages.ts), 4 KiB ones with RETNET_HUGEPAGES=0. (On the
// AMD EPYC VM, 2026-12-07, the two read at the same speed: 64–68 GB/s each, alternated in one process.)
import { Worker } from 'node:worker_threads';

const HALF = 512 * 2 ** 20;
const loader = new URL('../src/wasm/loader.js', import.meta.url).href;
const readerSrc = `
const { parentPort } = require('node:worker_threads');
(async () => {
const { createMemory } = await import(${JSON.stringify(loader)});
const m = createMemory(2 * ${HALF / 65536} + 16);
const a = Buffer.from(m.buffer, 0, ${HALF}).fill(7), b = Buffer.from(m.buffer, ${HALF}, ${HALF}).fill(7);
parentPort.postMessage('ready');
parentPort.on('message', () => {
  const t0 = process.hrtime.bigint();
  if (Buffer.compare(a, b) !== 0) throw new Error('buffers differ');
  parentPort.postMessage(Number(process.hrtime.bigint() - t0) / 1e9);
});
})();`;

/** n reader threads (1 GiB of buffers each, kept until close); measure(reps): GB/s (1e9 bytes) of the
 *  n reading at the same time, best of reps. */
export async function readers(n: number): Promise<{ measure(reps: number): Promise<number>; close(): Promise<void> }> {
  const ws = Array.from({ length: n }, () => new Worker(readerSrc, { eval: true }));
  // a reader that fails (its memory, its import) ends with 'error' or 'exit': fail instead of waiting forever
  const reply = (w: Worker) => new Promise((resolve, reject) => {
    const fail = (e: unknown) => { w.off('message', ok); reject(e instanceof Error ? e : new Error(`bandwidth reader exited (code ${String(e)})`)); };
    const ok = (m: unknown) => { w.off('error', fail); w.off('exit', fail); resolve(m); };
    w.once('message', ok); w.once('error', fail); w.once('exit', fail);
  });
  try { await Promise.all(ws.map(reply)); } catch (e) { await Promise.all(ws.map((w) => w.terminate())); throw e; }
  return {
    async measure(reps) {
      let best = 0;
      for (let rep = 0; rep < reps; rep++) {
        const t0 = performance.now();
        await Promise.all(ws.map((w) => { const p = reply(w); w.postMessage('go'); return p; }));
        best = Math.max(best, (n * 2 * HALF) / ((performance.now() - t0) / 1000) / 1e9);
      }
      return best;
    },
    async close() { await Promise.all(ws.map((w) => w.terminate())); },
  };
}

/** GB/s of n threads reading at once, best of 3 (readers started and ended around it). */
export async function bandwidth(n: number): Promise<number> {
  const r = await readers(n);
  try { return await r.measure(3); } finally { await r.close(); }
}
