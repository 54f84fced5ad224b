// Side-by-side peer benchmark, one run, one process tree:
//   the project (wasm backend on the BLAS and on the WASM kernel engine),
//   PyTorch (bench/peers/torch_peer.py: the same model in float32 PyTorch,
//   loading the same safetensors weights, checked against the project's
//   output before timing), and onnxruntime-node / onnxruntime-web on that
//   PyTorch model exported to ONNX (bench/peers/ort: a bench-only install).
// Seed default model (6 layers, 8 heads, d=512, value factor 2, gelu, MLP 2048),
// B=1, chunks of 512, 2 threads/workers each; one warm-up run, then the
// median of --reps timed runs. A peer that is not installed is reported as
// skipped. Prints tokens/s and every ratio; writes bench/results/peers.json.
//
//   npm run bench:peers                     L = 4096 and 16384, 3 reps
//   node dist/bench/peers/peers.js --quick  L = 4096, 1 rep (checks the set-up works)
//   options: --lengths 4096,16384 --reps N --threads N --chunk N --only project,torch,ort-node,ort-web --out FILE
//   PyTorch: /usr/bin/python3 (Debian python3-torch), or RETNET_PEERS_PYTHON.
//   ONNX Runtime: cd bench/peers/ort && ONNXRUNTIME_NODE_INSTALL=skip npm install
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RetNet, Tensor, type KernelsName } from '../../src/index.js';
import { machine } from '../../src/cli/gen.js';

const { values: a } = parseArgs({ options: {
  quick: { type: 'boolean' }, lengths: { type: 'string' }, reps: { type: 'string' }, threads: { type: 'string' },
  chunk: { type: 'string' }, only: { type: 'string' }, out: { type: 'string' }, keep: { type: 'boolean' },
} });
const quick = a.quick ?? false;
const lengths = (a.lengths ?? (quick ? '4096' : '4096,16384')).split(',').map(Number);
const reps = Number(a.reps ?? (quick ? 1 : 3));
const threads = Number(a.threads ?? 2);
const chunk = Number(a.chunk ?? 512);
const only = new Set((a.only ?? 'project,torch,ort-node,ort-web').split(','));
const out = a.out ?? 'bench/results/peers.json';
const PEERS_DIR = fileURLToPath(new URL('../../../bench/peers/', import.meta.url));
const PYTHON = process.env.RETNET_PEERS_PYTHON ?? '/usr/bin/python3';
const cfg = { numLayer: 6, numHeads: 8, dimModel: 512, valueFactor: 2, msrGateFn: 'gelu', mlpGateFn: 'gelu', mlpMult: 4, mlpBias: true, seed: 0 } as const;
const d = cfg.dimModel;
for (const L of lengths) if (!(Number.isInteger(L) && L > 0 && L % chunk === 0)) throw new Error(`--lengths: ${L} must be a positive multiple of the chunk ${chunk}`);

interface Entry { name: string; status: 'ok' | 'skipped' | 'failed'; reason?: string; tokensPerSec?: number; median?: number; times?: number[]; engine?: string; check?: unknown; [k: string]: unknown }
const load0 = loadavg();
const params = { model: cfg, B: 1, lengths, chunk, threads, reps, warmup: 1, date: new Date().toISOString(), loadavgAtStart: load0.map((x) => +x.toFixed(2)) };
console.log('retnet peer benchmark (side by side, one run)');
console.log('machine:', JSON.stringify(machine()));
console.log('parameters:', JSON.stringify(params));

const work = mkdtempSync(join(tmpdir(), 'retnet-peers-'));
const modelPath = join(work, 'model.safetensors');
{ const m = RetNet.init(cfg); m.save(modelPath); await m.close(); }

const median = (t: number[]) => [...t].sort((p, q) => p - q)[t.length >> 1];
/** max|Δ| / max|ref| of the increments y − x (the residual would hide errors in the model's output). */
function incrementErr(y: Float32Array, ref: Float32Array, x: Float32Array): number {
  let e = 0, m = 0;
  for (let i = 0; i < ref.length; i++) { const r = ref[i] - x[i]; e = Math.max(e, Math.abs(y[i] - x[i] - r)); m = Math.max(m, Math.abs(r)); }
  return Number.isFinite(e) ? e / m : Infinity;
}

/** Runs a peer process; its last stdout line is its JSON result. */
function runPeer(cmd: string, args: string[], cwd?: string): Promise<{ ok: boolean; json?: Record<string, unknown>; err?: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 * 2 ** 20, timeout: 60 * 60_000 }, (error, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      let json: Record<string, unknown> | undefined;
      try { json = JSON.parse(line); } catch { /* no result line */ }
      if (error) resolve({ ok: false, json, err: `${error.message.split('\n')[0]}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
      else if (!json) resolve({ ok: false, err: `no JSON result line (stderr: ${stderr.trim().split('\n').slice(-3).join(' | ')})` });
      else resolve({ ok: true, json });
    });
  });
}

const results: { L: number; loadavg: number[]; entries: Entry[]; ratios: Record<string, number> }[] = [];
const ortInstalled = (pkg: string) => existsSync(join(PEERS_DIR, 'ort', 'node_modules', pkg, 'package.json'));
const ORT_HINT = 'not installed: cd bench/peers/ort && ONNXRUNTIME_NODE_INSTALL=skip npm install';

for (const L of lengths) {
  console.log(`\n== L = ${L} (B = 1, chunks of ${chunk}, ${threads} threads/workers) ==`);
  const entries: Entry[] = [];
  const xT = Tensor.randn([1, L, d], { seed: 1 });
  const x = Float32Array.from(xT.data);
  const xPath = join(work, `x-${L}.f32`), yPath = join(work, `y-${L}.f32`);
  writeFileSync(xPath, new Uint8Array(x.buffer));
  let ref: Float32Array | null = null;

  // -- the project, each kernel engine in its own model (own pool), same weights file
  for (const kernels of ['blas', 'wasm'] as KernelsName[]) {
    const name = `retnet (${kernels})`;
    if (!only.has('project')) { entries.push({ name, status: 'skipped', reason: 'not selected (--only)' }); continue; }
    const model = await RetNet.load(modelPath);
    try {
      const opts = { backend: 'wasm', kernels, chunkSize: chunk, workers: threads } as const;
      const input = new Tensor(x, [1, L, d]);
      const y = await model.forward(input, opts);
      const engine = (await model.backendInfo())[0]?.engine;
      const times: number[] = [];
      for (let r = 0; r < reps; r++) { const t = performance.now(); await model.forward(input, opts); times.push((performance.now() - t) / 1000); }
      const yf = Float32Array.from(y.data);
      let check: unknown;
      if (ref === null) { ref = yf; writeFileSync(yPath, new Uint8Array(ref.buffer)); check = 'reference for the peers'; }
      else check = { relErr: incrementErr(yf, ref, x), against: entries.find((e) => e.status === 'ok')?.name };
      const med = median(times);
      entries.push({ name, status: 'ok', engine, times, median: med, tokensPerSec: L / med, check });
      console.log(`${name}: ${(L / med).toFixed(0)} tokens/s (median of ${reps}: ${times.map((t) => t.toFixed(2)).join(', ')} s) engine ${engine}`);
    } catch (e) {
      const reason = (e as Error).message;
      entries.push({ name, status: kernels === 'blas' && /E_ENGINE|CBLAS/.test(`${(e as { code?: string }).code} ${reason}`) ? 'skipped' : 'failed', reason });
      console.log(`${name}: ${entries[entries.length - 1].status}: ${reason}`);
    } finally { await model.close(); }
  }

  // -- PyTorch (and the ONNX export the ONNX Runtime peers run)
  const wantOrt = only.has('ort-node') || only.has('ort-web');
  const onnxPath = join(work, `model-${L}.onnx`);
  let onnxOk = false;
  if (!only.has('torch') && !wantOrt) entries.push({ name: 'pytorch', status: 'skipped', reason: 'not selected (--only)' });
  else if (!ref) entries.push({ name: 'pytorch', status: 'skipped', reason: 'no project output to check against' });
  else if (!existsSync(PYTHON)) entries.push({ name: 'pytorch', status: 'skipped', reason: `${PYTHON} not found (Debian: apt-get install -y python3-torch)` });
  else {
    console.log(`pytorch: running ${PYTHON} bench/peers/torch_peer.py …`);
    const r = await runPeer(PYTHON, [join(PEERS_DIR, 'torch_peer.py'), '--model', modelPath, '--input', xPath, '--length', String(L), '--chunk', String(chunk),
      '--threads', String(threads), '--reps', String(only.has('torch') ? reps : 0), '--check', yPath, ...(wantOrt ? ['--onnx', onnxPath] : [])]);
    if (r.ok && r.json) {
      onnxOk = !!r.json.onnx && existsSync(onnxPath);
      if (only.has('torch')) {
        entries.push({ name: `pytorch ${r.json.torch}`, status: 'ok', ...r.json });
        console.log(`pytorch ${r.json.torch}: ${(r.json.tokensPerSec as number).toFixed(0)} tokens/s (median of ${reps}: ${(r.json.times as number[]).map((t) => t.toFixed(2)).join(', ')} s), check ${JSON.stringify(r.json.check)}`);
      }
    } else {
      const missingTorch = /No module named 'torch'/.test(r.err ?? '');
      entries.push({ name: 'pytorch', status: missingTorch ? 'skipped' : 'failed', reason: missingTorch ? 'python3-torch not installed (apt-get install -y python3-torch)' : r.err, ...(r.json ?? {}) });
      console.log(`pytorch: ${entries[entries.length - 1].status}: ${r.err}`);
    }
  }

  // -- ONNX Runtime, node (native) and web (WASM)
  for (const [key, engine, pkg] of [['ort-node', 'node', 'onnxruntime-node'], ['ort-web', 'web', 'onnxruntime-web']] as const) {
    if (!only.has(key)) { entries.push({ name: pkg, status: 'skipped', reason: 'not selected (--only)' }); continue; }
    if (!ortInstalled(pkg)) { entries.push({ name: pkg, status: 'skipped', reason: ORT_HINT }); console.log(`${pkg}: skipped (${ORT_HINT})`); continue; }
    if (!onnxOk) { entries.push({ name: pkg, status: 'skipped', reason: 'no ONNX export (the PyTorch peer did not run or failed)' }); continue; }
    console.log(`${pkg}: running …`);
    const r = await runPeer(process.execPath, [join(PEERS_DIR, 'ort', 'ort-peer.mjs'), '--engine', engine, '--onnx', onnxPath, '--input', xPath,
      '--length', String(L), '--dim', String(d), '--threads', String(threads), '--reps', String(reps), '--check', yPath]);
    if (r.ok && r.json) {
      entries.push({ name: `${pkg} ${r.json.version}`, status: 'ok', ...r.json });
      console.log(`${pkg} ${r.json.version}: ${(r.json.tokensPerSec as number).toFixed(0)} tokens/s (median of ${reps}: ${(r.json.times as number[]).map((t) => t.toFixed(2)).join(', ')} s), check ${JSON.stringify(r.json.check)}`);
    } else {
      entries.push({ name: pkg, status: 'failed', reason: r.err, ...(r.json ?? {}) });
      console.log(`${pkg}: failed: ${r.err}`);
    }
  }

  // -- every ratio between the measured entries (row ÷ column, tokens/s)
  const ok = entries.filter((e) => e.status === 'ok');
  const ratios: Record<string, number> = {};
  for (const p of ok) for (const q of ok) if (p !== q) ratios[`${p.name} / ${q.name}`] = p.tokensPerSec! / q.tokensPerSec!;
  const la = loadavg().map((v) => +v.toFixed(2));
  console.log(`\nL = ${L}: tokens/s (load average now ${la.join(' ')})`);
  for (const e of entries) console.log(`  ${e.name.padEnd(28)} ${e.status === 'ok' ? e.tokensPerSec!.toFixed(0).padStart(7) : `${e.status}: ${e.reason}`}`);
  if (ok.length > 1) {
    console.log('  ratios (row ÷ column):');
    console.log(`  ${''.padEnd(28)} ${ok.map((q) => q.name.slice(0, 18).padStart(19)).join('')}`);
    for (const p of ok) console.log(`  ${p.name.padEnd(28)} ${ok.map((q) => (p === q ? '—' : `${ratios[`${p.name} / ${q.name}`].toFixed(2)}×`).padStart(19)).join('')}`);
  }
  results.push({ L, loadavg: la, entries, ratios });
}

mkdirSync('bench/results', { recursive: true });
writeFileSync(out, JSON.stringify({ machine: machine(), params, loadavgAtEnd: loadavg().map((x) => +x.toFixed(2)), results }, null, 2));
console.log(`\nwrote ${out}`);
if (!a.keep) rmSync(work, { recursive: true, force: true });
else console.log(`kept ${work}`);
