// Decoding speed of a model folder (e.g. the fla 1.3B shape from bench/make-fla-shape.mjs) against the
// memory-bandwidth bound: B = 1, greedy, `generate`'s recurrent step ('wasm'), next to the
// machine's read bandwidth measured in the same run. Every decoded token reads every weight of the
// layers and the head once, so tokens/s ≤ bandwidth ÷ those bytes (the embedding contributes one row).
//
// Bandwidth: memcmp (Buffer.compare) of two equal 512 MiB buffers per thread — a pure streaming read
// of 1 GiB per thread, the best of 3 — on 1 thread and on `--threads` worker threads at once.
//
//   node dist/bench/decode.js --dir DIR [--tokens 16] [--threads 2] [--precisions f32,bf16] [--split] [--out bench/results/decode-1p3b.json]
import { Worker } from 'node:worker_threads';
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { RetNetLM, type Precision } from '../src/index.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    dir: { type: 'string' }, tokens: { type: 'string', default: '16' }, threads: { type: 'string', default: '2' },
    precisions: { type: 'string', default: 'f32,bf16' }, split: { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'bench/results/decode-1p3b.json') },
  },
});
if (!values.dir) { console.error('usage: node dist/bench/decode.js --dir DIR [--tokens 16] [--threads 2] [--out FILE]'); process.exit(2); }

const HALF = 512 * 2 ** 20;
const readerSrc = `
const { parentPort, workerData } = require('node:worker_threads');
const a = Buffer.alloc(${HALF}, 7), b = Buffer.alloc(${HALF}, 7);
parentPort.postMessage('ready');
parentPort.on('message', () => {
  const t0 = process.hrtime.bigint();
  if (Buffer.compare(a, b) !== 0) throw new Error('buffers differ');
  parentPort.postMessage(Number(process.hrtime.bigint() - t0) / 1e9);
});`;

/** GB/s (1e9 bytes) of n threads streaming 1 GiB each at the same time, best of 3. */
async function bandwidth(n: number): Promise<number> {
  const ws = Array.from({ length: n }, () => new Worker(readerSrc, { eval: true }));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  let best = 0;
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    await Promise.all(ws.map((w) => new Promise((r) => { w.once('message', r); w.postMessage('go'); })));
    const s = (performance.now() - t0) / 1000;
    best = Math.max(best, (n * 2 * HALF) / s / 1e9);
  }
  await Promise.all(ws.map((w) => w.terminate()));
  return best;
}

const dir = values.dir, nTok = Number(values.tokens), threads = Number(values.threads);
const precisions = values.precisions.split(',') as Precision[];
if (!precisions.every((p) => p === 'f32' || p === 'bf16')) { console.error('--precisions: f32, bf16 or both'); process.exit(2); }
const bw1 = await bandwidth(1), bwN = await bandwidth(threads);
console.log(`read bandwidth: ${bw1.toFixed(1)} GB/s on 1 thread, ${bwN.toFixed(1)} GB/s on ${threads}`);

const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const fileBytes = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
const embedBytes = cfg.vocab_size * cfg.hidden_size * 2; // BF16
const perToken = fileBytes - (cfg.tie_word_embeddings ? 0 : embedBytes);
const t0 = performance.now();
const lm = await RetNetLM.loadFolder(dir);
const loadSeconds = (performance.now() - t0) / 1000;
const prompt = Int32Array.from({ length: 8 }, (_, i) => (i === 0 ? 1 : 100 + 37 * i));
const bound1 = bw1 * 1e9 / perToken, boundN = bwN * 1e9 / perToken;
// State bytes a step reads and writes (S [H, dk, dv] and z [H, dk] per layer, float64): not in the bound
// (which counts weights only), stated beside it.
const dk = (cfg.hidden_size * (cfg.expand_k ?? 1)) / cfg.num_heads, dv = (cfg.hidden_size * (cfg.expand_v ?? 2)) / cfg.num_heads;
const stateBytes = cfg.num_hidden_layers * cfg.num_heads * (dk * dv + dk) * 8;
const runs: Record<string, unknown>[] = [];
for (const precision of precisions) {
  // generate's loop without a tokenizer (the benchmark shape has none): prefill, then greedy steps of the
  // recurrent 'wasm' step — what generate runs per token. The first step packs the stepper's copy of the weights.
  const tw = performance.now();
  lm.step(prompt[0], undefined, { backend: 'wasm', precision });
  const warmSeconds = (performance.now() - tw) / 1000;
  const tp = performance.now();
  let { logprobs, state } = lm.prefill(prompt, 256, 'wasm', precision);
  const td = performance.now();
  const ids: number[] = [];
  for (let i = 0; i < nTok; i++) {
    let id = 0;
    for (let v = 1; v < logprobs.length; v++) if (logprobs[v] > logprobs[id]) id = v;
    ids.push(id);
    ({ logprobs, state } = lm.step(id, state, { backend: 'wasm', precision }));
  }
  const decodeSeconds = (performance.now() - td) / 1000;
  const tps = nTok / decodeSeconds;
  const engine = (lm.model as unknown as { stepper?: { engine: string } }).stepper?.engine ?? '?';
  runs.push({
    precision, engine, warmSeconds, prefillSeconds: (td - tp) / 1000, decodeSeconds, decodedTokens: nTok,
    tokensPerSecond: +tps.toFixed(3),
    fractionOfBound: { oneThread: +(tps / bound1).toFixed(3), threads: +(tps / boundN).toFixed(3) },
    greedyIds: ids,
  });
  console.log(`decode ${precision} (${engine}): ${nTok} tokens in ${decodeSeconds.toFixed(2)} s = ${tps.toFixed(2)} tok/s; bound ${boundN.toFixed(2)} tok/s at ${bwN.toFixed(1)} GB/s ÷ ${(perToken / 1e9).toFixed(2)} GB per token (${(100 * tps / boundN).toFixed(0)}%; one thread's bound ${bound1.toFixed(2)})`);
}
// --split: where a step's time goes — the stepper's kernel calls on this thread wrapped in timers
// (products: gemm/gemmBf16; retention: step; the rest: the step's remainder and the head), 8 steps each.
// The wrappers see this thread's calls only: helper threads' shares run at the same time as them.
const split: Record<string, Record<string, number>> = {};
if (values.split) {
  for (const precision of precisions) {
    let r = lm.step(prompt[0], undefined, { backend: 'wasm', precision });
    const K = (lm.model as unknown as { stepper: { K: Record<string, unknown> } }).stepper.K;
    const acc: Record<string, number> = {};
    const orig = { ...K };
    for (const [k, f] of Object.entries(orig)) {
      if (typeof f !== 'function') continue;
      K[k] = (...a: unknown[]) => { const t = performance.now(); const v = (f as (...x: unknown[]) => unknown)(...a); acc[k] = (acc[k] ?? 0) + performance.now() - t; return v; };
    }
    const n = 8, t0 = performance.now();
    for (let i = 0; i < n; i++) r = lm.step(100 + i, r.state, { backend: 'wasm', precision });
    const total = (performance.now() - t0) / n;
    Object.assign(K, orig);
    const products = ((acc.gemm ?? 0) + (acc.gemmBf16 ?? 0)) / n, retention = (acc.step ?? 0) / n;
    split[precision] = { msPerToken: +total.toFixed(2), products: +products.toFixed(2), retention: +retention.toFixed(2), rest: +(total - products - retention).toFixed(2) };
    console.log(`split ${precision}: ${total.toFixed(1)} ms per token — products ${products.toFixed(1)}, retention step ${retention.toFixed(1)}, the rest (norms, rotary, gates, head, dispatch) ${(total - products - retention).toFixed(1)}`);
  }
}
const out = {
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version },
  params: { dir, layers: cfg.num_hidden_layers, tokens: nTok, promptTokens: prompt.length, threads },
  bandwidthGBps: { oneThread: +bw1.toFixed(2), threads: +bwN.toFixed(2) },
  bytesPerToken: perToken, stateBytesPerToken: stateBytes,
  boundTokensPerSecond: { oneThread: +bound1.toFixed(3), threads: +boundN.toFixed(3) },
  loadSeconds, runs, ...(values.split ? { split } : {}),
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
};
await lm.close();
mkdirSync(dirname(values.out), { recursive: true });
writeFileSync(values.out, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${values.out}`);
