// ONNX Runtime peer for `npm run bench:peers`: runs the PyTorch peer's ONNX
// export of the model on onnxruntime-node (native, MLAS) or onnxruntime-web
// (WASM SIMD) with N threads, checks it against the project's output, and
// times it (warm-up, then --reps runs; median).
//   node bench/peers/ort/ort-peer.mjs --engine node|web --onnx M.onnx --input X.f32 \
//        --length L --dim d --threads 2 --reps 3 [--check Y.f32] [--serve]
// Prints one JSON line; exit 1 on a failed check. With --serve: after the
// warm-up and check it prints {"ready": ...}, then times one run per "run"
// line on stdin ({"t": seconds}) until "quit" or end of input. Installed apart from the
// package (bench/peers/ort/package.json): never a dependency of retnet.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: {
  engine: { type: 'string' }, onnx: { type: 'string' }, input: { type: 'string' }, length: { type: 'string' },
  dim: { type: 'string' }, serve: { type: 'boolean' }, threads: { type: 'string' }, reps: { type: 'string' }, check: { type: 'string' }, 'check-tol': { type: 'string' },
} });
const L = Number(a.length), d = Number(a.dim), threads = Number(a.threads ?? 2), reps = Number(a.reps ?? 3);
const tol = Number(a['check-tol'] ?? 1e-4);
const pkg = a.engine === 'web' ? 'onnxruntime-web' : 'onnxruntime-node';
const ort = await import(pkg);
const version = JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url), 'utf8')).version;

// onnxruntime-node rejects SharedArrayBuffer-backed tensors: a plain copy.
const readF32 = (p) => { const b = readFileSync(p); const out = new Float32Array(b.byteLength / 4); new Uint8Array(out.buffer).set(b); return out; };
const x = readF32(a.input);
let opts;
if (a.engine === 'web') {
  ort.env.wasm.numThreads = threads;
  opts = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
} else {
  opts = { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' };
}
const t0 = performance.now();
const session = await ort.InferenceSession.create(a.engine === 'web' ? readFileSync(a.onnx) : a.onnx, opts);
const loadSeconds = (performance.now() - t0) / 1000;
const feeds = { x: new ort.Tensor('float32', x, [1, L, d]) };
const result = { engine: pkg, version, threads, length: L, loadSeconds };
const out = await session.run(feeds); // warm-up, and the output checked below
if (a.check) {
  const ref = readF32(a.check), y = out.y.data;
  // scale-free, on the model's increment y − x (the residual x would hide errors in it)
  let e = 0, m = 0;
  for (let i = 0; i < ref.length; i++) { const r = ref[i] - x[i]; e = Math.max(e, Math.abs(y[i] - x[i] - r)); m = Math.max(m, Math.abs(r)); }
  const rel = Number.isFinite(e) ? e / m : Infinity;
  result.check = { relErr: rel, tol, ok: rel <= tol };
  if (!(rel <= tol)) { console.log(JSON.stringify(result)); process.exit(1); }
}
if (a.serve) {
  console.log(JSON.stringify({ ready: true, ...result }));
  const { createInterface } = await import('node:readline');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== 'run') break;
    const t = performance.now();
    await session.run(feeds);
    console.log(JSON.stringify({ t: (performance.now() - t) / 1000 }));
  }
  process.exit(0);
}
const times = [];
for (let r = 0; r < reps; r++) {
  const t = performance.now();
  await session.run(feeds);
  times.push((performance.now() - t) / 1000);
}
const median = [...times].sort((p, q) => p - q)[times.length >> 1];
Object.assign(result, { times, median, tokensPerSec: L / median });
await session.release?.();
console.log(JSON.stringify(result));
process.exit(0);
