// The fla-hub 1.3B shape (random BF16 weights, bench/make-fla-shape.mjs) scored on the wasm backend,
// both kernel engines: one B = 1 document of random token ids per run, each run in its own child
// process so that its peak RSS (process.resourceUsage().maxRSS) is its own. Reports tokens/s,
// peak RSS, RSS against the weight file's size, and the BF16 widening's GEMM overhead
// (gemmBf16 vs gemm on the same float32-widened weight, one thread, the model's four weight shapes).
// Engine `torch` runs the PyTorch peer in the same loop (bench/peers/torch_fla_peer.py: the
// float32 chunkwise PyTorch transcription, checked against the fla goldens first; same threads
// (2), same chunk size, the same number of tokens), so project and PyTorch are measured side by
// side in one run; `torch-bf16` is the same peer in bfloat16 (--dtype bfloat16). Precision
// 'bf16' of this project: engine `dnnl` (oneDNN's bf16 matmul), or `wasm-bf16` / `blas-bf16`
// (the rounding fallback on those engines); `dnnl-f32` is oneDNN's float32 matmul (kernels 'dnnl' at f32). Writes bench/results/fla-1p3b.json.
// Every run uses 2 threads or workers, and is set against the machine's float32 and bfloat16
// matrix-product peaks: 2 × the fastest library's single-thread rate on the model's MLP gate|up product
// (bench/gemm-rates.ts; measured before and after the runs, the higher counts) ÷ the FLOPs per token
// (bench/flops.ts: every Linear, the head included, and the retention's necessary terms).
//
//   npm run bench:fla [-- --dir DIR] [--lengths 16384,65536] [--engines wasm,blas,dnnl,dnnl-f32,torch,torch-bf16] [--chunk-size 256] [--skip "wasm:65536"]
//   PyTorch: /usr/bin/python3 (Debian python3-torch) or RETNET_PEERS_PYTHON.
//   --same-process: each engine scores every length in one process, shortest first, with the peak RSS
//   read after each — the growth with length without process-to-process variance (the allocator's
//   heap after loading and packing differs between processes by tens of MiB).
//
// Without --dir the model is written to a temporary folder (2.70 GB) and removed afterwards.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { RetNetLM, Tensor } from '../src/index.js';
import type { KernelsName, Precision } from '../src/options.js';
import { createMemory, ARENA_BASE } from '../src/wasm/loader.js';
import { Arena } from '../src/runtime/arena.js';
import { bindWasmKernels } from '../src/runtime/wasm-kernels.js';
import type { RuntimeKernels } from '../src/runtime/kernels.js';
import { benchArgs, numArg, numListArg } from './args.js';
import { hugePages } from '../src/wasm/huge-pages.js';
import { gemmRates, type GemmRate } from './gemm-rates.js';
import { flaFlopsPerToken } from './flops.js';
import { SafetensorsFile } from '../src/safetensors.js';
import { parseFlaConfig } from '../src/model/fla.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({
  options: {
    dir: { type: 'string' }, lengths: { type: 'string', default: '16384,65536' }, engines: { type: 'string', default: 'wasm,blas' },
    'chunk-size': { type: 'string', default: '256' }, skip: { type: 'string', default: '' }, out: { type: 'string', default: join(ROOT, 'bench/results/fla-1p3b.json') },
    child: { type: 'boolean', default: false }, 'same-process': { type: 'boolean', default: false }, engine: { type: 'string' }, tokens: { type: 'string' }, gemm: { type: 'boolean', default: false },
    peaks: { type: 'boolean', default: false },
  },
  internal: ['child', 'engine', 'tokens', 'gemm', 'peaks'],
});
const chunkSize = numArg('chunk-size', values['chunk-size'], { max: 16384 });

/** Random ids in [3, vocab), seeded (xorshift32); the 1.3B's vocabulary is 32000. */
function randomIds(n: number, vocab: number, seed = 12345): Int32Array {
  let s = seed >>> 0;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; out[i] = 3 + (s % (vocab - 3)); }
  return out;
}

/** A run that cannot happen on this machine (a library or PyTorch missing): skipped by name, not a failure. */
class Unavailable extends Error {}

const mib = (b: number) => Math.round(b / 2 ** 20 * 10) / 10;

/** A bench engine name → the kernels and precision options: 'wasm' | 'blas' (f32), 'dnnl' (bf16),
 *  'dnnl-f32' (oneDNN's float32 matmul), 'wasm-bf16' | 'blas-bf16' (bf16, the rounding fallback). */
function engineOf(name: string): [KernelsName, Precision] {
  if (name === 'wasm' || name === 'blas') return [name, 'f32'];
  if (name === 'dnnl') return ['dnnl', 'bf16'];
  if (name === 'dnnl-f32') return ['dnnl', 'f32'];
  if (name === 'wasm-bf16' || name === 'blas-bf16') return [name.slice(0, 4) as KernelsName, 'bf16'];
  throw new Error(`unknown engine ${name}: wasm, blas, dnnl, dnnl-f32, wasm-bf16, blas-bf16, torch, torch-bf16`);
}

// ---------------------------------------------------------------- child: one scoring run
async function child(): Promise<void> {
  const dir = values.dir!, lengths = numListArg('tokens', values.tokens!);
  const [kernels, precision] = engineOf(values.engine!);
  const t0 = performance.now();
  const lm = await RetNetLM.loadFolder(dir);
  const t1 = performance.now();
  const rssLoaded = process.memoryUsage().rss;
  // a short warm-up forward of the body packs the weights into the shared memory and starts the workers;
  // not a score(): that would make the LM head a 64-token call uses (at precision bf16 the whole packed
  // head, which a long call then keeps using, where a process that scores one long document streams it),
  // so each measured call makes its own head, as in a process that loads the model and scores one
  // document (the PyTorch peer's timed call likewise includes its first-call work)
  await lm.model.forward(Tensor.randn([1, 64, lm.d], { seed: 7 }), { backend: 'wasm', kernels, precision, chunkSize, workers: THREADS });
  const t2 = performance.now();
  const rssPacked = process.memoryUsage().rss;
  // several lengths: scored one after the other in this process, the peak RSS read after each (so a
  // longer document's growth over a shorter one is measured without process-to-process variance)
  let tPrev = t2;
  for (const n of lengths) {
    const r = await lm.score(randomIds(n, lm.vocab), { backend: 'wasm', kernels, precision, chunkSize, workers: THREADS });
    const t3 = performance.now();
    const info = await lm.model.backendInfo();
    const out = {
      engine: values.engine, precision, engineLabel: info.map((i) => i.engine).join(', '), ...(info[0]?.dispatch ? { dispatch: info[0].dispatch } : {}), tokens: n, chunkSize,
      ...(lengths.length > 1 ? { sameProcessAs: lengths } : {}),
      loadSeconds: (t1 - t0) / 1000, packSeconds: (t2 - t1) / 1000, scoreSeconds: (t3 - tPrev) / 1000,
      tokensPerSecond: n / ((t3 - tPrev) / 1000), nll: r.nll, perplexity: r.perplexity,
      rssAfterLoadMiB: mib(rssLoaded), rssAfterPackMiB: mib(rssPacked), rssEndMiB: mib(process.memoryUsage().rss),
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    console.log(`RESULT ${JSON.stringify(out)}`);
    tPrev = performance.now();
  }
  await lm.close();
}

// ---------------------------------------------------------------- child: GEMM overhead of the BF16 widening
function timeIt(f: () => void, minMs = 1500): number {
  f();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) { f(); n++; }
  return (performance.now() - t0) / n;
}

async function gemmOverhead(): Promise<void> {
  const shapes: [string, number, number][] = [['q|k|v|g', 12288, 2048], ['o', 2048, 4096], ['gate|up', 5632, 2048], ['down', 2048, 2816]];
  const engines: [string, (m: WebAssembly.Memory) => Promise<RuntimeKernels>][] = [['wasm', async (m) => bindWasmKernels(m, 'auto')]];
  try {
    const { bindBlasKernels } = await import('../src/runtime/blas-kernels.js');
    engines.push(['blas', async (m) => bindBlasKernels(m, 'auto')]);
  } catch { /* no BLAS */ }
  const rows: unknown[] = [];
  for (const [ename, bind] of engines) {
    for (const [name, N, K] of shapes) for (const M of [256, 512]) {
      const memory = createMemory(256);
      const Kn = await bind(memory);
      const A = new Arena(memory, ARENA_BASE, 2 ** 32 - 65536);
      const wF = A.persistent(Kn.packedSize(N, K) * 4, 'w'), wB = A.persistent(Kn.packedBf16Bytes(N, K), 'w');
      const wide = A.persistent(Kn.bf16ScratchBytes(N, K), 'w'), gs = A.persistent(Math.max(64, Kn.gemmScratchBytes()), 'w');
      const x = A.persistent(M * K * 4, 'x'), y = A.persistent(M * N * 4, 'y'), raw = A.persistent(N * K * 4, 'raw'), tmp = A.persistent(Kn.packedSize(N, K) * 4, 'tmp');
      const rv = new Uint32Array(memory.buffer, raw, N * K);
      let s = 99;
      for (let i = 0; i < rv.length; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; rv[i] = ((s & 0x7fff) | 0x3c00) << 16 & 0xbfff0000; }
      A.f32(x, M * K).fill(0.01);
      Kn.pack(raw, N, K, wF);
      if (!Kn.packBf16(raw, N, K, wB, tmp)) throw new Error('not exact');
      const f32ms = timeIt(() => Kn.gemm(x, M, K, K, wF, N, 0, y, N, 0, false, gs));
      const bfms = timeIt(() => Kn.gemmBf16(x, M, K, K, wB, N, 0, y, N, 0, false, gs, wide));
      rows.push({ engine: ename, weight: name, N, K, M, f32Ms: +f32ms.toFixed(2), bf16Ms: +bfms.toFixed(2), overheadPercent: +((bfms / f32ms - 1) * 100).toFixed(1), f32Gflops: +(2 * M * N * K / f32ms / 1e6).toFixed(1) });
      console.error(JSON.stringify(rows[rows.length - 1]));
    }
  }
  console.log(`RESULT ${JSON.stringify(rows)}`);
}

// ---------------------------------------------------------------- parent
const PYTHON = process.env.RETNET_PEERS_PYTHON ?? '/usr/bin/python3';
const PEER = join(ROOT, 'bench/peers/torch_fla_peer.py');
const torchChecked = new Set<string>();

/** The PyTorch peer on the same folder: its golden check once, then one timed run of n tokens. */
function runTorch(dir: string, n: number, dtype: 'float32' | 'bfloat16'): Record<string, number | string> {
  if (!torchChecked.has(dtype)) {
    const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      throw new Unavailable(`PyTorch is not importable by ${PYTHON} (${probe.error ? (probe.error as NodeJS.ErrnoException).code : probe.stderr.trim().split('\n').pop()}); Debian: apt-get install python3-torch, or set RETNET_PEERS_PYTHON`);
    }
    const c = spawnSync(PYTHON, [PEER, '--check', join(ROOT, 'test/fixtures/fla'), '--dtype', dtype], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (c.status !== 0) throw new Error(`the PyTorch peer failed its golden check: ${c.stdout}`);
    console.log(`torch peer golden check: ${c.stdout.trim()}`);
    torchChecked.add(dtype);
  }
  const r = spawnSync(PYTHON, [PEER, '--model', dir, '--length', String(n), '--chunk', String(chunkSize), '--threads', String(THREADS), '--dtype', dtype], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`torch peer failed (status ${r.status}): ${r.stdout.slice(-2000)}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | string>;
  return {
    engine: dtype === 'float32' ? 'torch' : 'torch-bf16', precision: dtype === 'float32' ? 'f32' : 'bf16',
    engineLabel: `PyTorch ${j.torch} ${dtype}, ${j.threads} threads`, tokens: n, chunkSize, loadSeconds: j.load_s, scoreSeconds: j.median_s,
    tokensPerSecond: j.tokens_per_s, nll: j.nll, perplexity: Math.exp((j.nll as number) / (n - 1)), peakRssBytes: j.maxrss_bytes,
  };
}

function runChildAll(args: string[]): unknown[] {
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--child', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('RESULT '));
  // an engine whose library does not load here (E_ENGINE): that run is skipped, not failed
  if (!(r.status !== 0 && /E_ENGINE/.test(r.stderr))) process.stderr.write(r.stderr); // (a skip: its one line instead)
  if (r.status !== 0 && /E_ENGINE/.test(r.stderr)) throw new Unavailable(`E_ENGINE: ${(r.stderr.split('\n').find((l) => l.startsWith('RetNetError:')) ?? '').slice(13).trim()}`);
  if (r.status !== 0 || lines.length === 0) throw new Error(`child ${args.join(' ')} failed (status ${r.status}): ${r.stdout.slice(-2000)}`);
  return lines.map((l) => JSON.parse(l.slice(7)));
}
const runChild = (args: string[]): unknown => runChildAll(args)[0];
const firstLine = (t: string) => t.trim().split('\n')[0]!.slice(0, 300);

/** Threads (PyTorch) and workers (this project) of every run. */
const THREADS = 2;

/** The machine's matrix-product peak, one thread, on the model's MLP gate|up product (x [chunk, d] ·
 *  [W_gate; W_up]ᵀ, K = d): float32 (OpenBLAS sgemm, oneDNN f32) and bfloat16 (oneDNN bf16) — measured
 *  in a child process, so that this one never loads the native libraries the runs use. */
function measurePeaks(dir: string): GemmRate[] {
  return runChild(['--dir', dir, '--peaks', '--chunk-size', String(chunkSize)]) as GemmRate[];
}

function peaksChild(): void {
  const dir = values.dir!;
  let up: { shape: number[] } | undefined;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
    const st = SafetensorsFile.open(join(dir, f));
    up ??= [...st.tensors.entries()].find(([n]) => /mlp\.gate_proj\.weight$/.test(n))?.[1];
    st.close();
  }
  if (!up) throw new Error(`no mlp.gate_proj.weight in the safetensors files of ${dir}`);
  const [I, d] = up.shape as [number, number];
  console.log(`RESULT ${JSON.stringify(gemmRates(chunkSize, 2 * I, d, ['f32', 'bf16']))}`);
}

/** FLOPs per token the runs need (bench/flops.ts): every 2-D weight but the embedding is a Linear. */
function modelFlops(dir: string): number {
  const cfg = parseFlaConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), dir);
  let linear = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
    const st = SafetensorsFile.open(join(dir, f));
    for (const [name, t] of st.tensors) if (t.shape.length === 2 && !/embed/.test(name)) linear += t.shape[0]! * t.shape[1]!;
    st.close();
  }
  return flaFlopsPerToken(linear, cfg.layers, cfg.H, cfg.dk, cfg.dv, chunkSize).total;
}

async function parent(): Promise<void> {
  let dir = values.dir, made: string | null = null;
  if (!dir) {
    made = mkdtempSync(join(tmpdir(), 'fla-1p3b-'));
    dir = made;
    const r = spawnSync(process.execPath, [join(ROOT, 'bench/make-fla-shape.mjs'), dir], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('make-fla-shape failed');
  }
  const weightBytes = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((a, f) => a + statSync(join(dir!, f)).size, 0);
  const lengths = numListArg('lengths', values.lengths), engines = values.engines.split(',');
  for (const e of engines) if (!e.startsWith('torch')) engineOf(e);
  const skip = new Set(values.skip.split(',').filter(Boolean));
  const layers = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).num_hidden_layers;
  const params = { dir: made ? '(temporary)' : dir, layers, weightBytes, lengths, engines, chunkSize, skip: [...skip] };
  console.log(`fla-1p3b: ${JSON.stringify(params)}`);
  console.log(`machine: ${cpus()[0]?.model} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}`);
  const runs: Record<string, unknown>[] = [];
  const notRun: { engine: string; tokens: number; status: 'skipped' | 'failed'; reason: string }[] = [];
  const machine = { cpu: cpus()[0]?.model, cores: cpus().length, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, pages: hugePages(),
    ...(process.env.OPENBLAS_CORETYPE !== undefined ? { OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE } : {}) };
  const save = (extra: Record<string, unknown> = {}) => {
    mkdirSync(join(values.out, '..'), { recursive: true });
    writeFileSync(values.out, JSON.stringify({ date: new Date().toISOString(), machine, params, runs, ...(notRun.length ? { notRun } : {}), ...extra }, null, 2) + '\n');
  };
  const flops = modelFlops(dir);
  const peaksBefore = measurePeaks(dir);
  for (const g of peaksBefore) console.log(`peak before: ${g.library}, one thread: ${g.gflops} GFLOP/s`);
  try {
    const record = (engine: string, r: Record<string, number>) => {
      r.peakRssMiB = mib(r.peakRssBytes);
      r.peakRssOverWeights = +(r.peakRssBytes / weightBytes).toFixed(3);
      runs.push(r);
      save();
      console.log(`${engine} ${r.tokens} tokens: ${r.tokensPerSecond.toFixed(1)} tok/s, score ${r.scoreSeconds.toFixed(1)} s (load ${r.loadSeconds.toFixed(1)} s${r.packSeconds !== undefined ? `, pack ${r.packSeconds.toFixed(1)} s` : ''}), peak RSS ${r.peakRssMiB} MiB = ${r.peakRssOverWeights}× the weights, ppl ${r.perplexity.toFixed(1)}`);
    };
    if (values['same-process']) {
      // every length in one process per engine, shortest first: the peak RSS after each
      for (const engine of engines) {
        if (engine.startsWith('torch')) throw new Error('--same-process is for this project\'s engines');
        for (const r of runChildAll(['--dir', dir, '--engine', engine, '--tokens', lengths.join(','), '--chunk-size', String(chunkSize)])) record(engine, r as Record<string, number>);
      }
    } else {
      // shortest length first on every engine, so that a long run cut short still leaves the others; an
      // engine that cannot run here (no PyTorch, no CBLAS/oneDNN) is skipped by name, a failure recorded
      // and the others still run (the exit code is then 1)
      for (const n of lengths) for (const engine of engines) {
        if (skip.has(`${engine}:${n}`)) { console.log(`${engine} ${n}: skipped`); continue; }
        const gone = notRun.find((x) => x.engine === engine && x.status === 'skipped');
        if (gone) { notRun.push({ ...gone, tokens: n }); console.log(`${engine} ${n}: skipped (${gone.reason})`); continue; }
        try {
          const r = (engine === 'torch' || engine === 'torch-bf16' ? runTorch(dir, n, engine === 'torch' ? 'float32' : 'bfloat16')
            : runChild(['--dir', dir, '--engine', engine, '--tokens', String(n), '--chunk-size', String(chunkSize)])) as Record<string, number>;
          record(engine, r);
        } catch (e) {
          const status = e instanceof Unavailable ? 'skipped' : 'failed';
          notRun.push({ engine, tokens: n, status, reason: firstLine((e as Error).message) });
          console.log(`${engine} ${n}: ${status}: ${firstLine((e as Error).message)}`);
          save();
        }
      }
    }
    const growth: Record<string, number> = {};
    for (const engine of engines) {
      const byLen = (n: number) => runs.find((r) => r.engine === engine && r.tokens === n) as Record<string, number> | undefined;
      const a = byLen(Math.min(...lengths)), b = byLen(Math.max(...lengths));
      if (a && b && a !== b) { growth[engine] = mib(b.peakRssBytes - a.peakRssBytes); console.log(`${engine}: peak RSS at ${b.tokens} − at ${a.tokens} = ${growth[engine]} MiB`); }
    }
    const gemm = values.gemm ? runChild(['--gemm']) : null;
    // each run against the machine's float32 and bfloat16 matrix-product peaks: THREADS × the fastest
    // library's single-thread rate (the higher of before and after) ÷ the FLOPs per token
    const peaksAfter = measurePeaks(dir);
    for (const g of peaksAfter) console.log(`peak after: ${g.library}, one thread: ${g.gflops} GFLOP/s`);
    const best = (dtype: 'f32' | 'bf16') => Math.max(0, ...[...peaksBefore, ...peaksAfter].filter((g) => g.dtype === dtype).map((g) => g.gflops));
    const bound = { f32: THREADS * best('f32') * 1e9 / flops, bf16: THREADS * best('bf16') * 1e9 / flops };
    console.log(`bounds: ${(flops / 1e9).toFixed(3)} GFLOP per token; float32 ${THREADS} × ${best('f32')} GFLOP/s → ${bound.f32.toFixed(1)} tokens/s, bfloat16 ${THREADS} × ${best('bf16')} → ${bound.bf16.toFixed(1)} tokens/s`);
    for (const r of runs) {
      const tps = r.tokensPerSecond as number;
      r.fractionOfPeak = { f32: bound.f32 ? +(tps / bound.f32).toFixed(3) : null, bf16: bound.bf16 ? +(tps / bound.bf16).toFixed(3) : null };
      const parts = [bound.f32 ? `${(100 * tps / bound.f32).toFixed(1)}% of the float32 peak` : '', bound.bf16 ? `${(100 * tps / bound.bf16).toFixed(1)}% of the bfloat16 peak` : ''].filter(Boolean);
      console.log(`${r.engine} ${r.tokens} tokens: ${parts.length ? parts.join(', ') : 'no native library measured: no peak'}`);
    }
    save({ peakRssGrowthMiB: growth, gemmOverhead: gemm, flopsPerToken: flops, peaks: { before: peaksBefore, after: peaksAfter }, boundTokensPerSecond: bound });
    console.log(`wrote ${values.out}`);
    for (const x of notRun) console.log(`not run: ${x.engine} ${x.tokens}: ${x.status}: ${x.reason}`);
    if (notRun.some((x) => x.status === 'failed')) process.exitCode = 1;
  } finally {
    if (made) rmSync(made, { recursive: true, force: true });
  }
}

if (values.child) await (values.gemm ? gemmOverhead() : values.peaks ? peaksChild() : child());
else await parent();
