// GFLOP/s of oneDNN's matmul (src/runtime/dnnl.ts; bfloat16 and float32, brgemm per row count and the
// runtime-M primitive) against OpenBLAS cblas_sgemm (src/runtime/blas-kernels.ts's loadBlas), on the
// fla-hub RetNet-1.3B projection shapes, M = 512 and 2,048 rows: one worker thread, and two worker
// threads at once (each its own primitive, stream and src/dst; both read one reordered copy of W in a
// shared WebAssembly.Memory, as the engine's pool would). Every library runs one thread per caller.
// Times include everything a call does (bf16: the f32 → bf16 conversion of src). dnnl-bf16-plain: the
// bf16 matmul on W left as plain row-major BF16 rows [N, K] (no reorder; oneDNN stages blocks of it per
// call), against dnnl-bf16 on the reordered W — what one copy of the weights in a layout other than
// oneDNN's (e.g. the recurrent step's) would cost the prompt's products.
//
//   npm run build && node dist/bench/dnnl-gemm.js [--out bench/results/dnnl-gemm.json]
//   env: DNNL_GEMM_MIN_S (per measurement, default 0.5), DNNL_GEMM_ROWS (e.g. "512"), DNNL_GEMM_ENGINES
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createDnnlMatmul, loadDnnl, type DnnlMatmul } from '../src/runtime/dnnl.js';
import { loadBlas } from '../src/runtime/blas-kernels.js';
import { benchArgs } from './args.js';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = benchArgs({ options: { out: { type: 'string', default: join(ROOT, 'bench', 'results', 'dnnl-gemm.json') } } });

/** The 1.3B's products (hidden 2048; q 2048, k 2048, v 4096, g 4096 fused; o; gate|up fused; down). */
const SHAPES = [
  { name: 'q|k|v|g', N: 12288, K: 2048 },
  { name: 'o', N: 2048, K: 4096 },
  { name: 'gate|up', N: 5632, K: 2048 },
  { name: 'down', N: 2048, K: 2816 },
] as const;
const ROWS = (process.env.DNNL_GEMM_ROWS ?? '512,2048').split(',').map(Number);
const ENGINES = ['dnnl-bf16', 'dnnl-bf16-plain', 'dnnl-f32', 'openblas-sgemm', 'dnnl-bf16-runtimeM', 'dnnl-f32-runtimeM'] as const;
type Engine = typeof ENGINES[number];
const MIN_S = Number(process.env.DNNL_GEMM_MIN_S ?? 0.5);
/** each figure is the best of this many measurements (the machine may be shared: other load only slows a run) */
const TRIALS = Number(process.env.DNNL_GEMM_TRIALS ?? 3);

const N_MAX = Math.max(...SHAPES.map((s) => s.N)), K_MAX = Math.max(...SHAPES.map((s) => s.K)), M_MAX = Math.max(...ROWS);
const align = (x: number) => Math.ceil(x / 4096) * 4096;
const W_RAW = 0, W_PACKED = align(N_MAX * K_MAX * 4);
const WORKER0 = W_PACKED + align(N_MAX * K_MAX * 4 + (1 << 20));
const SRC_BYTES = align(M_MAX * K_MAX * 4), DST_BYTES = align(M_MAX * N_MAX * 4);
const workerBase = (i: number) => WORKER0 + i * (SRC_BYTES + DST_BYTES);
const TOTAL = workerBase(2);

interface Job { engine: Engine; N: number; K: number; M: number; reps: number }
type Msg = { op: 'prepare'; job: Job } | { op: 'run'; reps: number } | { op: 'quit' };

function engineParts(e: Engine): { dtype: 'bf16' | 'f32'; rows: 'fixed' | 'runtime' } {
  return { dtype: e.includes('bf16') ? 'bf16' : 'f32', rows: e.endsWith('runtimeM') ? 'runtime' : 'fixed' };
}

// ---------------------------------------------------------------- worker
function worker(): void {
  const { memory, index } = workerData as { memory: WebAssembly.Memory; index: number };
  const port = parentPort!;
  const src = workerBase(index), dst = src + SRC_BYTES;
  { // random src rows once
    const f = new Float32Array(memory.buffer, src, SRC_BYTES / 4);
    let s = 12345 + index;
    for (let i = 0; i < f.length; i++) { s = (s * 1103515245 + 12345) >>> 0; f[i] = s / 2 ** 31 - 1; }
  }
  let call: (() => void) | null = null;
  let mm: DnnlMatmul | null = null;
  port.on('message', (m: Msg) => {
    if (m.op === 'quit') { mm?.destroy(); process.exit(0); }
    if (m.op === 'prepare') {
      mm?.destroy(); mm = null;
      const { engine, N, K, M } = m.job;
      if (engine === 'openblas-sgemm') {
        const blas = loadBlas();
        const base = blas.baseOf(memory);
        call = () => blas.sgemm(101, 111, 112, M, N, K, 1, base + src, K, base + W_RAW, K, 0, base + dst, N);
        call();
        port.postMessage({ impl: blas.label, threads: 1 });
      } else {
        const lib = loadDnnl();
        const base = lib.baseOf(memory);
        const plain = engine === 'dnnl-bf16-plain';
        const mmm = plain ? createDnnlMatmul({ N, K, dtype: 'bf16', plainWeights: true }) : createDnnlMatmul({ N, K, ...engineParts(engine), packedAt: base + W_PACKED });
        mm = mmm;
        // plain: the BF16 rows of W at W_PACKED, named on every call
        call = plain ? () => mmm.run(base + src, M, K, base + dst, N, false, base + W_PACKED) : () => mmm.run(base + src, M, K, base + dst, N, false);
        call(); // creates the primitive for M rows, first touches
        port.postMessage({ impl: mmm.impl(M), threads: lib.threads() });
      }
      return;
    }
    // run: `reps` calls, or until MIN_S when reps is 0; report the count and seconds
    call!();
    let n = 0;
    const t0 = performance.now();
    let t = 0;
    do { call!(); n++; t = (performance.now() - t0) / 1000; } while (m.reps ? n < m.reps : (t < MIN_S || n < 2));
    port.postMessage({ reps: n, seconds: t });
  });
}

// ---------------------------------------------------------------- main
function ask(w: Worker, m: Msg): Promise<any> {
  return new Promise((res, rej) => {
    const onErr = (e: Error) => { w.off('message', onMsg); rej(e); };
    const onMsg = (r: unknown) => { w.off('error', onErr); res(r); };
    w.once('message', onMsg); w.once('error', onErr);
    w.postMessage(m);
  });
}

async function main(): Promise<void> {
  const lib = loadDnnl();
  const blas = loadBlas();
  const memory = new WebAssembly.Memory({ initial: Math.ceil(TOTAL / 65536), maximum: 65536, shared: true });
  const base = lib.baseOf(memory);
  const engines = (process.env.DNNL_GEMM_ENGINES?.split(',') ?? ENGINES) as Engine[];
  const workers = [0, 1].map((index) => new Worker(fileURLToPath(import.meta.url), { workerData: { memory, index } }));
  const cpu = cpus()[0]?.model ?? 'unknown';
  const date = new Date().toISOString();
  console.log(`dnnl-gemm ${date}\nCPU: ${cpu} (${cpus().length} logical)\noneDNN: ${lib.label} from ${lib.path}; BLAS: ${blas.label}`);
  const load0 = loadavg();
  console.log(`GFLOP/s = 2·M·N·K / seconds per call (2 threads: both workers' calls / the slower one's time); best of ${TRIALS} runs of ≥ ${MIN_S} s; load average ${load0.map((x) => x.toFixed(2)).join(' ')}\n`);

  const rows: Record<string, unknown>[] = [];
  const head = ['shape', 'N×K', 'M', ...engines.flatMap((e) => [`${e} 1T`, `${e} 2T`])];
  console.log(head.join('\t'));
  const impls = new Map<string, string>();
  for (const s of SHAPES) {
    // W [N, K] float32 at W_RAW (the BLAS operand and the source of every reorder)
    const w = new Float32Array(memory.buffer, W_RAW, s.N * s.K);
    let seed = s.N * 7 + s.K;
    for (let i = 0; i < w.length; i++) { seed = (seed * 1664525 + 1013904223) >>> 0; w[i] = (seed / 2 ** 32 - 0.5) * 0.1; }
    for (const M of ROWS) {
      const flops = 2 * M * s.N * s.K;
      const rec: Record<string, unknown> = { shape: s.name, N: s.N, K: s.K, M };
      const cells: string[] = [];
      for (const engine of engines) {
        if (engine === 'dnnl-bf16-plain') { // W's BF16 rows (round to nearest even) at W_PACKED, as they are
          const b = new Uint16Array(memory.buffer, W_PACKED, s.N * s.K), u = new Uint32Array(memory.buffer, W_RAW, s.N * s.K);
          for (let i = 0; i < b.length; i++) { const x = u[i]!; b[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff; } // finite values
        } else if (engine !== 'openblas-sgemm') { // reorder W once into the shared memory; the workers' primitives read it there
          const packer = createDnnlMatmul({ N: s.N, K: s.K, ...engineParts(engine), weights: base + W_RAW, weightsType: 'f32', packedAt: base + W_PACKED });
          if (packer.packedBytes > WORKER0 - W_PACKED) throw new Error(`packed W of ${packer.packedBytes} bytes does not fit`);
          packer.destroy();
        }
        const job: Job = { engine, N: s.N, K: s.K, M, reps: 0 };
        const info = await Promise.all(workers.map((wk) => ask(wk, { op: 'prepare', job })));
        impls.set(`${engine} M=${M}`, info[0].impl);
        const t1: number[] = [], t2: number[] = [];
        let reps = 2;
        for (let t = 0; t < TRIALS; t++) {
          const one = await ask(workers[0]!, { op: 'run', reps: 0 });
          t1.push(flops * one.reps / one.seconds / 1e9);
          reps = Math.max(2, one.reps);
        }
        for (let t = 0; t < TRIALS; t++) {
          const two = await Promise.all(workers.map((wk) => ask(wk, { op: 'run', reps })));
          t2.push(flops * (two[0].reps + two[1].reps) / Math.max(two[0].seconds, two[1].seconds) / 1e9);
        }
        const g1 = Math.max(...t1), g2 = Math.max(...t2);
        const r1 = (xs: number[]) => xs.map((x) => +x.toFixed(1));
        rec[engine] = { impl: info[0].impl, threadsPerWorker: info[0].threads, gflops1: +g1.toFixed(1), gflops2: +g2.toFixed(1), trials1: r1(t1), trials2: r1(t2), ms1: +(2 * M * s.N * s.K / g1 / 1e6).toFixed(2) };
        cells.push(g1.toFixed(1), g2.toFixed(1));
      }
      rows.push(rec);
      console.log([s.name, `${s.N}×${s.K}`, String(M), ...cells].join('\t'));
    }
  }
  for (const wk of workers) wk.postMessage({ op: 'quit' });
  console.log('\nimplementations: ' + [...new Set([...impls].map(([k, v]) => `${k.replace(/ M=\d+$/, '')} → ${v}`))].join('; '));
  const out = {
    date, cpu, logicalCpus: cpus().length, node: process.version,
    onednn: { path: lib.path, version: lib.version, isa: lib.isa, cpuRuntime: lib.cpuRuntime, threadsPerCaller: 1, threadControl: 'omp_set_num_threads(1) in each calling thread' },
    blas: blas.label, minSecondsPerMeasurement: MIN_S, trials: TRIALS, statistic: 'best of trials',
    loadAverageBefore: load0, loadAverageAfter: loadavg(),
    note: 'GFLOP/s = 2·M·N·K / s; 2 threads = two worker_threads, each its own primitive and rows, one shared reordered W; bf16 includes the f32→bf16 conversion of src',
    command: 'npm run build && node dist/bench/dnnl-gemm.js',
    env: { DNNL_GEMM_ROWS: process.env.DNNL_GEMM_ROWS ?? null, DNNL_GEMM_ENGINES: process.env.DNNL_GEMM_ENGINES ?? null },
    rows,
  };
  const file = args.out;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\nwrote ${file}`);
}

if (isMainThread) await main();
else worker();
