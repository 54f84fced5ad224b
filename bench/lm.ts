// Byte-LM throughput: scoring bytes/s (streamed, one pass) on a concatenation
// of this repository's source files, the head alone (final LayerNorm + 256×d
// projection + log-softmax), and recurrent decode bytes/s.
// Prints its parameters; writes bench/results/lm.json.
//
//   npm run bench:lm [-- --bytes N] [--backend wasm|js] [--chunk-size C] [--workers W] [--decode N]
//
// Which kernels the wasm backend runs: RETNET_KERNELS=auto (default: BLAS when a CBLAS
// library loads, else WASM) | wasm | blas | js (scalar JS); the engine that ran is printed.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { RetNetLM, type BackendName } from '../src/index.js';
import { benchArgs } from './args.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({
  options: {
    bytes: { type: 'string', default: String(1 << 20) }, backend: { type: 'string', default: 'wasm' },
    'chunk-size': { type: 'string', default: '256' }, workers: { type: 'string' }, decode: { type: 'string', default: '256' },
  },
});
const nBytes = Number(values.bytes), chunkSize = Number(values['chunk-size']), decodeBytes = Number(values.decode);
const backend = values.backend as BackendName;
const workers = values.workers ? Number(values.workers) : undefined;

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|md)$/.test(name)) out.push(p);
  }
  return out;
}

/** The repo's .ts/.md sources, concatenated (and repeated) to exactly n bytes. */
function corpus(n: number): Uint8Array {
  const files = ['src', 'test', 'workers', 'assembly'].flatMap((d) => { try { return sources(join(ROOT, d)); } catch { return []; } });
  const parts = files.map((f) => readFileSync(f));
  const out = new Uint8Array(n);
  let o = 0;
  while (o < n) for (const p of parts) { if (o >= n) break; const k = Math.min(p.length, n - o); out.set(p.subarray(0, k), o); o += k; }
  return out;
}

const text = corpus(nBytes);
const lm = await RetNetLM.load();
const kernels = backend === 'wasm' ? `RETNET_KERNELS=${process.env.RETNET_KERNELS || 'auto'}` : 'float64 reference';
const params = { bytes: nBytes, backend, kernels, chunkSize, workers: workers ?? availableParallelism(), decodeBytes, model: 'bytes-4x128 (4 layers, d=128, 4 heads)', node: process.version };
console.log('params', params);

// scoring
const t0 = performance.now();
const r = await lm.score(text, { backend, chunkSize, workers });
const scoreSec = (performance.now() - t0) / 1000;
const info = await lm.model.backendInfo();
console.log(`score: ${nBytes} bytes in ${scoreSec.toFixed(2)} s = ${Math.round(nBytes / scoreSec)} bytes/s, ${r.bitsPerByte.toFixed(4)} bits/byte  ${JSON.stringify(info)}`);

// the head alone, on 8192 float32 rows (what the sink does per arriving block)
const rows = 8192, d = lm.d;
const fake = new Float32Array(rows * d);
for (let i = 0; i < fake.length; i++) fake[i] = Math.sin(i * 0.37) * 3;
const seqStub = { bytes: text.subarray(0, rows + 1), nll: 0, logprobs: null };
const consume = (lm as unknown as { consumeRows(s: unknown, start: number, rows: Float32Array, n: number): void }).consumeRows.bind(lm);
consume(seqStub, 0, fake.subarray(0, 256 * d), 256);
const t1 = performance.now();
consume(seqStub, 0, fake, rows);
const headSec = (performance.now() - t1) / 1000;
console.log(`head: ${rows} rows in ${headSec.toFixed(3)} s = ${Math.round(rows / headSec)} rows/s (${((2 * rows * 256 * d) / headSec / 1e9).toFixed(2)} GFLOP/s)`);

// decode
const g = await lm.generate({ prompt: text.subarray(0, 512), maxBytes: decodeBytes, temperature: 0 });
const decodeRate = g.bytes.length / g.decodeSeconds;
console.log(`decode: ${g.bytes.length} bytes in ${g.decodeSeconds.toFixed(2)} s = ${Math.round(decodeRate)} bytes/s (recurrent step, wasm kernels, float64 state); prefill 512 bytes in ${g.prefillSeconds.toFixed(2)} s`);
await lm.close();

const result = {
  params, backendInfo: info,
  score: { bytes: nBytes, seconds: scoreSec, bytesPerSecond: nBytes / scoreSec, bitsPerByte: r.bitsPerByte },
  head: { rows, seconds: headSec, rowsPerSecond: rows / headSec },
  decode: { bytes: g.bytes.length, seconds: g.decodeSeconds, bytesPerSecond: decodeRate, prefillBytes: 512, prefillSeconds: g.prefillSeconds },
  date: new Date().toISOString(),
};
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'lm.json'), JSON.stringify(result, null, 2) + '\n');
console.log('wrote bench/results/lm.json');
