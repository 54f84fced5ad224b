// Byte-LM throughput: scoring bytes/s (streamed, one pass) on a concatenation
// of this repository's source files, the head alone (final LayerNorm + 256×d
// projection + log-softmax), and recurrent decode bytes/s.
// Prints its parameters; writes bench/results/lm.json.
//
//   npm run bench:lm [-- --bytes N] [--backend wasm|js] [--chunk-size C] [--workers W] [--decode N] [--out FILE]
//
// Scoring is timed after a warm-up score of 4 KiB (the pool started, the weights packed), decoding
// after a warm-up generation of up to 256 bytes.
// Which kernels the wasm backend runs: RETNET_KERNELS=auto (default: BLAS when a CBLAS
// library loads, else WASM) | wasm | blas | js (scalar JS); the engine that ran is printed.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { RetNetLM, type BackendName } from '../src/index.js';
import { benchArgs, numArg } from './args.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({
  options: {
    bytes: { type: 'string', default: String(1 << 20) }, backend: { type: 'string', default: 'wasm' },
    'chunk-size': { type: 'string', default: '256' }, workers: { type: 'string' }, decode: { type: 'string', default: '256' },
    out: { type: 'string', default: join(ROOT, 'bench/results/lm.json') }, // the checkout's by default; a given one from the current folder
  },
});
const nBytes = numArg('bytes', values.bytes), chunkSize = numArg('chunk-size', values['chunk-size'], { max: 16384 }), decodeBytes = numArg('decode', values.decode, { min: 0 });
const backend = values.backend as BackendName;
const workers = values.workers !== undefined ? numArg('workers', values.workers, { max: 256 }) : undefined;

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

// scoring, after a warm-up (pool start and weight packing are not the scoring rate)
await lm.score(text.subarray(0, Math.min(nBytes, 4096)), { backend, chunkSize, workers });
const t0 = performance.now();
const r = await lm.score(text, { backend, chunkSize, workers });
const scoreSec = (performance.now() - t0) / 1000;
const info = await lm.model.backendInfo();
console.log(`score: ${nBytes} bytes in ${scoreSec.toFixed(2)} s = ${Math.round(nBytes / scoreSec)} bytes/s, ${r.bitsPerByte.toFixed(4)} bits/byte  ${JSON.stringify(info)}`);

// the head alone on 8192 rows, block by block as a score runs it (final norm, projection, log-sum-exp);
// the head a score with these options uses (float64 loops on js, the WASM GEMM otherwise)
type Head = (rows: ArrayLike<number>, r0: number, m: number) => { z: ArrayLike<number>; lse: () => ArrayLike<number> };
const headFor = (lm as unknown as { headFor(o: object): Promise<Head> }).headFor.bind(lm);
const head = await headFor({ backend });
const rows = 8192, d = lm.d, block = 64;
const fake = new Float32Array(rows * d);
for (let i = 0; i < fake.length; i++) fake[i] = Math.sin(i * 0.37) * 3;
const runHead = (n: number): number => {
  let sum = 0;
  for (let r0 = 0; r0 < n; r0 += block) { const l = head(fake, r0, Math.min(block, n - r0)).lse(); for (let i = 0; i < l.length; i++) sum += l[i]!; }
  return sum;
};
runHead(256); // warm-up
const t1 = performance.now();
const headSum = runHead(rows);
const headSec = (performance.now() - t1) / 1000;
if (!Number.isFinite(headSum) || headSum === 0) throw new Error(`the head produced no log-sum-exps (sum ${headSum})`);
console.log(`head: ${rows} rows in ${headSec.toFixed(3)} s = ${Math.round(rows / headSec)} rows/s (${((2 * rows * 256 * d) / headSec / 1e9).toFixed(2)} GFLOP/s)`);

// decode
const genOpts = { prompt: text.subarray(0, 512), maxBytes: decodeBytes, temperature: 0, backend: backend === 'js' ? 'js' as const : 'wasm' as const };
await lm.generate({ ...genOpts, maxBytes: Math.min(decodeBytes, 256) }); // warm-up (the stepper's first steps are several times slower)
const g = await lm.generate(genOpts);
const decodeRate = g.bytes.length / g.decodeSeconds;
console.log(`decode: ${g.bytes.length} bytes in ${g.decodeSeconds.toFixed(2)} s = ${Math.round(decodeRate)} bytes/s (recurrent step, ${backend === 'js' ? 'float64 JS' : 'wasm kernels'}, float64 state); prefill 512 bytes in ${g.prefillSeconds.toFixed(2)} s`);
await lm.close();

const result = {
  params, backendInfo: info,
  score: { bytes: nBytes, seconds: scoreSec, bytesPerSecond: nBytes / scoreSec, bitsPerByte: r.bitsPerByte },
  head: { rows, seconds: headSec, rowsPerSecond: rows / headSec, logSumExpSum: headSum },
  decode: { bytes: g.bytes.length, seconds: g.decodeSeconds, bytesPerSecond: decodeRate, prefillBytes: 512, prefillSeconds: g.prefillSeconds },
  date: new Date().toISOString(),
};
// where benchArgs checked it: relative to the current folder (before: checked there, written under the checkout's
// root, so --out README.md replaced the checkout's README)
const target = resolve(values.out!);
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, JSON.stringify(result, null, 2) + '\n');
console.log(`wrote ${target}`);
