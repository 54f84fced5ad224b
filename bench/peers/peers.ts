// Side-by-side peer benchmark, one run, one process tree:
//   the project (wasm backend on the BLAS and on the WASM kernel engine, and on oneDNN where it loads:
//   float32 operands, and precision bf16 — its check against the float32 output shows bfloat16-sized errors),
//   PyTorch (bench/peers/torch_peer.py: the same model in float32 PyTorch,
//   loading the same safetensors weights, checked against the project's
//   output before timing), and onnxruntime-node / onnxruntime-web on that
//   PyTorch model exported to ONNX (bench/peers/ort: a bench-only install).
// Seed default model (6 layers, 8 heads, d=512, value factor 2, gelu, MLP 2048),
// B=1, chunks of 512, 2 threads/workers each; one warm-up run each, then
// --reps rounds of timed runs, interleaved (each round runs every participant
// once, so load changes on a shared machine touch all alike); the median per
// participant. A peer that is not installed is reported as skipped. Prints
// tokens/s and every ratio; writes bench/results/peers.json.
//
// Isolation: the peers stay loaded between their runs, and an idle peer is not
// necessarily quiet (thread pools that spin-wait after a run). On a 2-core
// machine that steals the next participant's cores, so by default every other
// peer process is stopped (SIGSTOP) while one participant runs and continued
// (SIGCONT) before its own turn; the project's own worker pools block when idle.
// Each run records the CPU seconds the other participants used meanwhile
// (/proc on Linux; the project via process.cpuUsage()) as `backgroundCpu`.
// `--shared` turns the stopping off, to show what it changes.
//
// The native bound: the single-thread float32 GEMM rate on the fused projection shape — the
// faster of OpenBLAS's cblas_sgemm and oneDNN's float32 matmul where each loads (on some CPUs one is
// twice the other), each measured before and after the runs (the higher counts) — × threads ÷ the
// model's necessary FLOPs per token (bench/flops.ts): what no float32 engine on these cores can beat
// without doing less arithmetic; every participant is also given as a fraction of it.
//
//   npm run bench:peers                     L = 4096 and 16384, 3 reps
//   node dist/bench/peers/peers.js --quick  L = 4096, 1 rep (checks the set-up works)
//   options: --lengths 4096,16384 --reps N --threads N --chunk N --only project,torch,ort-node,ort-web --out FILE
//   --fla [--fla-dir DIR]: then, in the same run, the fla-hub 1.3B shape (random BF16 weights; written to a
//   temporary folder, 2.7 GB, unless DIR holds it) side by side with PyTorch in float32 and bfloat16, 2,048
//   and 8,192 tokens: bench/fla-1p3b.ts with --engines dnnl,torch-bf16,dnnl-f32,blas,torch, its output as
//   it runs and its JSON under `fla1p3b` in this run's (about 20 minutes on 2 cores).
//   PyTorch: /usr/bin/python3 (Debian python3-torch), or RETNET_PEERS_PYTHON.
//   ONNX Runtime: cd bench/peers/ort && ONNXRUNTIME_NODE_INSTALL=skip npm install
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RetNet, Tensor, type KernelsName } from '../../src/index.js';
import { machine } from '../../src/cli/gen.js';
import { gemmRates as gemmRatesOf } from '../gemm-rates.js';
import { flopsPerToken } from '../flops.js';
import { benchArgs, numArg, numListArg } from '../args.js';

const { values: a } = benchArgs({ options: {
  quick: { type: 'boolean' }, lengths: { type: 'string' }, reps: { type: 'string' }, threads: { type: 'string' },
  chunk: { type: 'string' }, only: { type: 'string' }, out: { type: 'string' }, keep: { type: 'boolean' }, shared: { type: 'boolean' },
  fla: { type: 'boolean' }, 'fla-dir': { type: 'string' },
} });
if (a['fla-dir'] !== undefined && !a.fla) { console.error('error: --fla-dir goes with --fla'); process.exit(2); }
const quick = a.quick ?? false;
const lengths = numListArg('lengths', a.lengths ?? (quick ? '4096' : '4096,16384'));
const reps = numArg('reps', a.reps ?? (quick ? '1' : '3'));
const threads = numArg('threads', a.threads ?? '2', { max: 64 });
const chunk = numArg('chunk', a.chunk ?? '512', { max: 16384 });
const only = new Set((a.only ?? 'project,torch,ort-node,ort-web').split(','));
const out = a.out ?? 'bench/results/peers.json';
const isolate = !(a.shared ?? false);
const PEERS_DIR = fileURLToPath(new URL('../../../bench/peers/', import.meta.url));
const PYTHON = process.env.RETNET_PEERS_PYTHON ?? '/usr/bin/python3';
const cfg = { numLayer: 6, numHeads: 8, dimModel: 512, valueFactor: 2, msrGateFn: 'gelu', mlpGateFn: 'gelu', mlpMult: 4, mlpBias: true, seed: 0 } as const;
const d = cfg.dimModel;
for (const L of lengths) if (!(Number.isInteger(L) && L > 0 && L % chunk === 0)) throw new Error(`--lengths: ${L} must be a positive multiple of the chunk ${chunk}`);

interface Entry { name: string; status: 'ok' | 'skipped' | 'failed'; reason?: string; tokensPerSec?: number; median?: number; times?: number[]; engine?: string; check?: unknown; [k: string]: unknown }
const load0 = loadavg();
const params = { model: cfg, B: 1, lengths, chunk, threads, reps, warmup: 1, isolate, date: new Date().toISOString(), loadavgAtStart: load0.map((x) => +x.toFixed(2)) };
console.log('retnet peer benchmark (side by side, one run)');
console.log('machine:', JSON.stringify(machine()));
console.log('parameters:', JSON.stringify(params));

const work = mkdtempSync(join(tmpdir(), 'retnet-peers-'));
const modelPath = join(work, 'model.safetensors');
{ const m = RetNet.init(cfg); m.save(modelPath); await m.close(); }

/** Single-thread float32 GEMM GFLOP/s on the fused projection shape (x [256, d] · [Wq; Wk; Wv; Wg]ᵀ)
 *  of each library that loads (bench/gemm-rates.ts). */
const gemmRates = () => gemmRatesOf(256, 2 * d + 2 * cfg.numHeads * (d / cfg.numHeads) * cfg.valueFactor, d);

const median = (t: number[]) => [...t].sort((p, q) => p - q)[t.length >> 1];
/** max|Δ| / max|ref| of the increments y − x (the residual would hide errors in the model's output). */
function incrementErr(y: Float32Array, ref: Float32Array, x: Float32Array): number {
  let e = 0, m = 0;
  for (let i = 0; i < ref.length; i++) { const r = ref[i] - x[i]; e = Math.max(e, Math.abs(y[i] - x[i] - r)); m = Math.max(m, Math.abs(r)); }
  return Number.isFinite(e) ? e / m : Infinity;
}

/** A participant: set up (warm-up run and check done), then one timed run per call. */
interface Participant { entry: Entry; runOnce(): Promise<number>; close(): Promise<void>; pid?: number }

/** CPU seconds (user + system, all threads) a process has used: /proc/PID/stat fields 14 and 15
 *  in clock ticks (100 per second on Linux); null where /proc is not there. */
function procCpu(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 on (the name may hold spaces)
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return null; }
}
const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
/** CPU seconds used so far by every participant but `p`: the peers' processes, and this process
 *  (the project's models; it cannot be split from `p` when `p` is one of them, so it is left out then). */
function othersCpu(live: Participant[], p: Participant): number | null {
  let s = p.pid === undefined ? 0 : selfCpu();
  for (const q of live) {
    if (q === p || q.pid === undefined) continue;
    const c = procCpu(q.pid);
    if (c === null) return null;
    s += c;
  }
  return s;
}
const signal = (live: Participant[], sig: 'SIGSTOP' | 'SIGCONT', except?: Participant) => {
  for (const q of live) if (q !== except && q.pid !== undefined) { try { process.kill(q.pid, sig); } catch { /* gone */ } }
};

/** A peer process in --serve mode: its first JSON line is {ready, ...}, then one {t} per "run" line. */
function servePeer(cmd: string, args: string[]): Promise<{ ok: true; json: Record<string, unknown>; pid: number; run(): Promise<number>; close(): Promise<void> } | { ok: false; err: string; json?: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    const waiting: ((v: Record<string, unknown> | null) => void)[] = [];
    let buf = '';
    child.stderr.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000); });
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i).trim(); buf = buf.slice(i + 1);
        let json: Record<string, unknown> | null = null;
        try { json = JSON.parse(line); } catch { continue; } // not a result line
        waiting.shift()?.(json);
      }
    });
    const tail = () => stderr.trim().split('\n').filter((l) => !/Warning|warn\(|_C\._jit/.test(l)).slice(-3).join(' | ');
    child.on('exit', (code) => { while (waiting.length) waiting.shift()!(null); if (code) lastExit = `exit ${code}: ${tail()}`; });
    child.on('error', (e) => { lastExit = e.message; while (waiting.length) waiting.shift()!(null); });
    let lastExit = '';
    const next = () => new Promise<Record<string, unknown> | null>((r) => waiting.push(r));
    next().then((first) => {
      if (!first || !first.ready) { resolve({ ok: false, err: lastExit || `no ready line (${tail()})`, json: first ?? undefined }); child.kill(); return; }
      resolve({
        ok: true, json: first, pid: child.pid!,
        async run() { const p = next(); child.stdin.write('run\n'); const r = await p; if (!r || typeof r.t !== 'number') throw new Error(`peer stopped: ${lastExit || tail()}`); return r.t; },
        async close() { child.stdin.end('quit\n'); await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r))); },
      });
    });
  });
}

const results: { L: number; loadavg: number[]; entries: Entry[]; ratios: Record<string, number>; bound?: Record<string, unknown> }[] = [];
const gemmBefore = gemmRates();
for (const g of gemmBefore) console.log(`${g.library} 256×${d}·(${2 * d + 2 * cfg.numHeads * (d / cfg.numHeads) * cfg.valueFactor}×${d})ᵀ, one thread: ${g.gflops} GFLOP/s`);
const ortInstalled = (pkg: string) => existsSync(join(PEERS_DIR, 'ort', 'node_modules', pkg, 'package.json'));
const ORT_HINT = 'not installed: cd bench/peers/ort && ONNXRUNTIME_NODE_INSTALL=skip npm install';
const fmtTimes = (t: number[]) => t.map((v) => v.toFixed(2)).join(', ');

for (const L of lengths) {
  console.log(`\n== L = ${L} (B = 1, chunks of ${chunk}, ${threads} threads/workers) ==`);
  const entries: Entry[] = [];
  const live: Participant[] = [];
  const xT = Tensor.randn([1, L, d], { seed: 1 });
  const x = Float32Array.from(xT.data);
  const xPath = join(work, `x-${L}.f32`), yPath = join(work, `y-${L}.f32`);
  writeFileSync(xPath, new Uint8Array(x.buffer));
  let ref: Float32Array | null = null;
  try {
    // -- the project, each kernel engine in its own model (own pool), same weights file
    for (const [kernels, precision] of [['blas', 'f32'], ['dnnl', 'f32'], ['wasm', 'f32'], ['dnnl', 'bf16']] as [KernelsName, 'f32' | 'bf16'][]) {
      const name = kernels === 'dnnl' ? `retnet (dnnl, ${precision})` : `retnet (${kernels})`;
      if (!only.has('project')) { entries.push({ name, status: 'skipped', reason: 'not selected (--only)' }); continue; }
      const model = await RetNet.load(modelPath);
      try {
        const opts = { backend: 'wasm', kernels, precision, chunkSize: chunk, workers: threads } as const;
        const input = new Tensor(x, [1, L, d]);
        const y = await model.forward(input, opts); // warm-up, and the output the peers are checked against
        const engine = (await model.backendInfo())[0]?.engine;
        const yf = Float32Array.from(y.data);
        let check: unknown;
        if (ref === null) { ref = yf; writeFileSync(yPath, new Uint8Array(ref.buffer)); check = 'reference for the peers'; }
        else {
          // held to a tolerance like the peers: float32 engines 1e-4 (float32 sums over ≤ 2,048 terms, a
          // different order); bf16 the stated bound, 8·2⁻⁹ of max|output| per layer (docs/engines.md)
          const tol = precision === 'bf16' ? cfg.numLayer * 8 * 2 ** -9 : 1e-4, relErr = incrementErr(yf, ref, x);
          check = { relErr, tol, ok: relErr <= tol, against: entries.find((e) => e.status === 'ok')?.name };
          if (!(relErr <= tol)) throw new Error(`output off by ${relErr.toExponential(2)} (max|Δ|/max|ref|) against ${entries.find((e) => e.status === 'ok')?.name}, beyond ${tol.toExponential(1)}`);
        }
        const entry: Entry = { name, status: 'ok', engine, check };
        entries.push(entry);
        live.push({ entry, async runOnce() { const t = performance.now(); await model.forward(input, opts); return (performance.now() - t) / 1000; }, close: () => model.close() });
        console.log(`${name}: ready, engine ${engine}`);
      } catch (e) {
        await model.close();
        const reason = (e as Error).message;
        entries.push({ name, status: kernels !== 'wasm' && /E_ENGINE|CBLAS|oneDNN/.test(`${(e as { code?: string }).code} ${reason}`) ? 'skipped' : 'failed', reason });
        console.log(`${name}: ${entries[entries.length - 1].status}: ${reason}`);
      }
    }

    // -- PyTorch (which also exports the ONNX model the ONNX Runtime peers run)
    const wantOrt = only.has('ort-node') || only.has('ort-web');
    const onnxPath = join(work, `model-${L}.onnx`);
    let onnxOk = false;
    if (!only.has('torch') && !wantOrt) entries.push({ name: 'pytorch', status: 'skipped', reason: 'not selected (--only)' });
    else if (!ref) entries.push({ name: 'pytorch', status: 'skipped', reason: 'no project output to check against' });
    else if (!existsSync(PYTHON)) entries.push({ name: 'pytorch', status: 'skipped', reason: `${PYTHON} not found (Debian: apt-get install -y python3-torch)` });
    else {
      console.log(`pytorch: starting ${PYTHON} bench/peers/torch_peer.py (warm-up, check${wantOrt ? ', ONNX export' : ''}) …`);
      const r = await servePeer(PYTHON, [join(PEERS_DIR, 'torch_peer.py'), '--serve', '--model', modelPath, '--input', xPath, '--length', String(L), '--chunk', String(chunk),
        '--threads', String(threads), '--check', yPath, ...(wantOrt ? ['--onnx', onnxPath] : [])]);
      if (r.ok) {
        onnxOk = !!r.json.onnx && existsSync(onnxPath);
        const { ready: _r, ...meta } = r.json;
        if (only.has('torch')) {
          const entry: Entry = { name: `pytorch ${r.json.torch}`, status: 'ok', ...meta };
          entries.push(entry);
          live.push({ entry, runOnce: r.run, close: r.close, pid: r.pid });
          console.log(`${entry.name}: ready, check ${JSON.stringify(r.json.check)}`);
        } else await r.close();
      } else {
        const missingTorch = /No module named 'torch'/.test(r.err);
        entries.push({ name: 'pytorch', status: missingTorch ? 'skipped' : 'failed', reason: missingTorch ? 'python3-torch not installed (apt-get install -y python3-torch)' : r.err, ...(r.json ?? {}) });
        console.log(`pytorch: ${entries[entries.length - 1].status}: ${r.err}`);
      }
    }

    // -- ONNX Runtime, node (native) and web (WASM)
    for (const [key, engine, pkg] of [['ort-node', 'node', 'onnxruntime-node'], ['ort-web', 'web', 'onnxruntime-web']] as const) {
      if (!only.has(key)) { entries.push({ name: pkg, status: 'skipped', reason: 'not selected (--only)' }); continue; }
      if (!ortInstalled(pkg)) { entries.push({ name: pkg, status: 'skipped', reason: ORT_HINT }); console.log(`${pkg}: skipped (${ORT_HINT})`); continue; }
      if (!onnxOk) { entries.push({ name: pkg, status: 'skipped', reason: 'no ONNX export (the PyTorch peer did not run or failed)' }); continue; }
      console.log(`${pkg}: starting (warm-up, check) …`);
      const r = await servePeer(process.execPath, [join(PEERS_DIR, 'ort', 'ort-peer.mjs'), '--serve', '--engine', engine, '--onnx', onnxPath, '--input', xPath,
        '--length', String(L), '--dim', String(d), '--threads', String(threads), '--check', yPath]);
      if (r.ok) {
        const { ready: _r, ...meta } = r.json;
        const entry: Entry = { name: `${pkg} ${r.json.version}`, status: 'ok', ...meta };
        entries.push(entry);
        live.push({ entry, runOnce: r.run, close: r.close, pid: r.pid });
        console.log(`${entry.name}: ready, check ${JSON.stringify(r.json.check)}`);
      } else {
        entries.push({ name: pkg, status: 'failed', reason: r.err, ...(r.json ?? {}) });
        console.log(`${pkg}: failed: ${r.err}`);
      }
    }

    // -- timed runs, interleaved: round r runs every participant once (starting one further each
    //    round), so a change in the machine's load touches all of them alike
    for (let r = 0; r < reps; r++) {
      for (let i = 0; i < live.length; i++) {
        const p = live[(i + r) % live.length];
        if (isolate) { signal(live, 'SIGSTOP', p); signal([p], 'SIGCONT'); }
        try {
          const c0 = othersCpu(live, p);
          const t = await p.runOnce();
          const c1 = othersCpu(live, p);
          const bg = c0 === null || c1 === null ? null : +(c1 - c0).toFixed(2);
          (p.entry.times ??= []).push(t);
          ((p.entry.backgroundCpu ??= []) as (number | null)[]).push(bg);
          console.log(`  round ${r + 1}/${reps}: ${p.entry.name} ${t.toFixed(2)} s (${(L / t).toFixed(0)} tokens/s; others used ${bg ?? '?'} CPU s meanwhile)`);
        } catch (e) {
          p.entry.status = 'failed'; p.entry.reason = (e as Error).message;
        }
      }
    }
  } finally {
    signal(live, 'SIGCONT');
    await Promise.allSettled(live.map((p) => p.close()));
  }
  for (const e of entries) if (e.status === 'ok' && e.times?.length) { e.median = median(e.times); e.tokensPerSec = L / e.median; }

  // -- every ratio between the measured entries (row ÷ column, tokens/s)
  const ok = entries.filter((e) => e.status === 'ok' && e.tokensPerSec);
  const ratios: Record<string, number> = {};
  for (const p of ok) for (const q of ok) if (p !== q) ratios[`${p.name} / ${q.name}`] = p.tokensPerSec! / q.tokensPerSec!;
  const la = loadavg().map((v) => +v.toFixed(2));
  console.log(`\nL = ${L}: tokens/s, median of ${reps} (load average now ${la.join(' ')})`);
  for (const e of entries) console.log(`  ${e.name.padEnd(28)} ${e.status === 'ok' && e.tokensPerSec ? `${e.tokensPerSec.toFixed(0).padStart(7)}   (${fmtTimes(e.times!)} s)` : `${e.status}: ${e.reason}`}`);
  if (ok.length > 1) {
    console.log('  ratios (row ÷ column):');
    console.log(`  ${''.padEnd(28)} ${ok.map((q) => q.name.slice(0, 18).padStart(19)).join('')}`);
    for (const p of ok) console.log(`  ${p.name.padEnd(28)} ${ok.map((q) => (p === q ? '—' : `${ratios[`${p.name} / ${q.name}`].toFixed(2)}×`).padStart(19)).join('')}`);
  }
  results.push({ L, loadavg: la, entries, ratios });
}

// The native bound: `threads` cores at the fastest library's single-thread float32 GEMM rate (each
// library's the higher of its two measurements, so a busy moment cannot flatter the fractions) over
// the necessary FLOPs per token.
const gemmAfter = gemmRates();
const perLibrary = gemmBefore.map((b) => {
  const a = gemmAfter.find((g) => g.library === b.library);
  return { library: b.library, before: b.gflops, after: a?.gflops ?? null, gflops: Math.max(b.gflops, a?.gflops ?? 0) };
});
const best = perLibrary.reduce<typeof perLibrary[number] | null>((m, g) => (!m || g.gflops > m.gflops ? g : m), null);
if (!best) console.log('\nnative bound: not computed (no float32 GEMM library loaded: OpenBLAS and oneDNN both missing)');
if (best) {
  console.log(`\nnative bound: ${threads} × ${best.gflops} GFLOP/s (float32 GEMM, one thread: ${perLibrary.map((g) => `${g.library} ${g.gflops} (before ${g.before}, after ${g.after})`).join('; ')}; the fastest counts) ÷ necessary FLOPs per token (bench/flops.ts)`);
  for (const r of results) {
    const fpt = flopsPerToken(cfg, chunk);
    const tokens = threads * best.gflops * 1e9 / fpt.total;
    const share: Record<string, number> = {};
    for (const e of r.entries) if (e.tokensPerSec) share[e.name] = +(e.tokensPerSec / tokens).toFixed(3);
    r.bound = { gemmGflopsPerThread: best.gflops, gemmLibrary: best.library, perLibrary, mflopsPerToken: +(fpt.total / 1e6).toFixed(2), tokensPerSec: Math.round(tokens), fraction: share };
    console.log(`  L = ${r.L}: ${(fpt.total / 1e6).toFixed(2)} MFLOP/token → bound ${Math.round(tokens)} tokens/s; fraction of it: ${Object.entries(share).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(', ')}`);
  }
}

// --fla: the 1.3B shape against PyTorch float32 and bfloat16, in this run (bench/fla-1p3b.ts in a child)
let fla1p3b: unknown;
if (a.fla) {
  const flaOut = join(work, 'fla-1p3b.json');
  const args = [fileURLToPath(new URL('../fla-1p3b.js', import.meta.url)), '--engines', 'dnnl,torch-bf16,dnnl-f32,blas,torch', '--lengths', '2048,8192', '--out', flaOut,
    ...(a['fla-dir'] ? ['--dir', a['fla-dir']] : [])];
  console.log(`
the fla 1.3B shape: node ${args.map((x) => (x.includes(' ') ? JSON.stringify(x) : x)).join(' ')}`);
  const code = await new Promise<number | null>((res) => { const c = spawn(process.execPath, args, { stdio: 'inherit' }); c.on('close', res); c.on('error', () => res(null)); });
  fla1p3b = code === 0 && existsSync(flaOut) ? JSON.parse(readFileSync(flaOut, 'utf8')) : { status: 'failed', exitCode: code };
  if (code !== 0) { console.error(`the fla 1.3B run failed (exit ${code}); the seed results are written all the same`); process.exitCode = 1; }
}

mkdirSync('bench/results', { recursive: true });
writeFileSync(out, JSON.stringify({ machine: machine(), params, gemm: { before: gemmBefore, after: gemmAfter }, loadavgAtEnd: loadavg().map((x) => +x.toFixed(2)), results, ...(a.fla ? { fla1p3b } : {}) }, null, 2));
console.log(`\nwrote ${out}`);
if (!a.keep) rmSync(work, { recursive: true, force: true });
else console.log(`kept ${work}`);
