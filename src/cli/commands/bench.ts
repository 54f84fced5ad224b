// `retnet bench`: forward throughput over backend × length × chunks × workers
// on a seeded model; each cell on stderr as it finishes, a table on stdout,
// JSON to a file with --json.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { RetNet } from '../../index.js';
import { RetNetError } from '../../errors.js';
import { gpuAdvice } from '../../backends/tfjs/engines.js';
import { checkKernelsEnv, checkPrecisionBackends, parsePrecision } from '../lm-util.js';
import { envValue } from '../../env.js';
import { chunkedAs } from '../../options.js';
import { backendList, errorMessage, noRepeats, flagModelConfig, kernelsName, parse, table, UsageError, type Command } from '../command.js';
import { MAX_PARALLEL_L } from './run.js';
import { MAX_WORKERS, intListOption, intOption } from '../numbers.js';
import { checkOutputTarget, writeFileAtomic } from '../safe-output.js';
import { discardSink, generatedSource, machine } from '../gen.js';
import { collectProfile, phaseRates, resetProfile, splitPhases, PHASES, RATED } from '../../runtime/profile.js';

const usage = `usage: retnet bench [--backend wasm,tfjs,js] [--lengths 1024,8192] [--chunks 8,16] [--workers 1,2] [--kernels auto,wasm,blas,dnnl] [--precision f32|bf16] [--batch B] [--layers N --dim D --heads H] [--repeat R] [--profile] [--json OUT]

Forward throughput (tokens/s) of a seeded random RetNet for every
combination of backend, length, chunk count and worker count. Inputs are
generated and streamed (model.forwardStream), so long lengths cost no input
memory. Prints each cell on stderr as it finishes, then a table on stdout;
writes JSON only with --json. A backend whose engine cannot start (e.g. tfjs
not installed) is one row of the table with the reason, and is not measured.
Exit codes: 0 when at least one cell was measured and every failure is a
backend that could not start; 1 when nothing was measured or a measurement
failed; 2 bad command line.

options:
  --backend LIST    backends (default wasm)
  --lengths LIST    sequence lengths (default 1024,8192)
  --chunks LIST     chunk counts; -1 = recurrent (default 8,16)
  --workers LIST    worker threads, wasm only (default 1,2; each 1 to ${MAX_WORKERS})
  --kernels LIST    kernel engines, wasm only: auto, wasm, blas, dnnl (default: RETNET_KERNELS, else auto)
  --precision P     f32 (default, or RETNET_PRECISION) or bf16: operand precision of the big matrix products (wasm)
  --batch B         sequences per forward (default 1)
  --layers N, --dim D, --heads H   model size (default 6, 512, 8: the seed's)
  --repeat R        timed runs per cell, best kept (default 1, after one warm-up at the smallest length)
  --profile         per-phase profile of every wasm cell (GEMMs, intra-chunk
                    retention, activations, norms, rotary, scan, dispatch/idle):
                    a timing wrapper around the workers' kernels (RETNET_PROFILE=1),
                    so profiled times run slightly slower than unprofiled ones; and the
                    GFLOP/s of one worker while in the products and the intra-chunk retention
  --json OUT        write the results as JSON to OUT (default: not saved); an existing
                    OUT must be an earlier bench --json output ("suite": "retnet bench"),
                    else it is refused (any other JSON file is left as it is)
  -h, --help        this text`;

/** A cell whose chunk count is not what ran (`--chunks 64` at L = 100: 50 chunks of 2 tokens). */
const ranNote = (r: BenchRow): string =>
  r.chunks > 0 && r.chunksRun !== undefined && r.chunksRun !== r.chunks ? `ran ${r.chunksRun} chunks of ${r.chunkSize} token${r.chunkSize === 1 ? '' : 's'}` : '';

export interface BenchRow {
  backend: string; engine: string; device: string; B: number; L: number; chunks: number; workers: number | null;
  /** the kernel request of a wasm row (--kernels) */
  kernels?: string;
  seconds: number; tokensPerSec: number; error?: string;
  /** why the engine is not the one 'auto' prefers (e.g. "BLAS engine unavailable: …") */
  engineNote?: string;
  /** tokens per chunk and the chunks they make (fewer than `chunks` asked when it does not divide L; L and 1 when recurrent) */
  chunkSize?: number; chunksRun?: number;
  /** the backend could not start (its engine is missing): one row for the backend, nothing measured */
  unavailable?: string;
  /** --profile: worker-milliseconds per phase of the best run (they sum to workers × seconds × 1000) */
  profile?: Record<string, number>;
  /** --profile: GFLOP/s of the products and the intra-chunk retention (causal FLOPs) per worker thread while in them */
  rates?: Record<string, number>;
}

const bench: Command = {
  name: 'bench',
  summary: 'forward tokens/s by backend, length, chunk count and workers',
  usage,
  async run(argv) {
    const a = parse({ usage }, argv, {
      backend: { type: 'string' }, lengths: { type: 'string' }, chunks: { type: 'string' }, workers: { type: 'string' }, kernels: { type: 'string' }, batch: { type: 'string' }, precision: { type: 'string' },
      layers: { type: 'string' }, dim: { type: 'string' }, heads: { type: 'string' }, repeat: { type: 'string' }, json: { type: 'string' }, profile: { type: 'boolean' },
    });
    if (!a) return 0;
    const v = a.values;
    const backends = backendList('backend', v.backend ?? 'wasm');
    const lengths = intListOption('lengths', v.lengths ?? '1024,8192');
    const chunksList = intListOption('chunks', v.chunks ?? '8,16', { allowMinusOne: true });
    const workersList = intListOption('workers', v.workers ?? '1,2', { max: MAX_WORKERS });
    // a chunk longer than `retnet run`'s parallel-form limit builds a C×C matrix per head (before: --lengths
    // 40000 --chunks 1 on the js backend ran on past 120 s, into 12 GiB per head)
    for (const L of lengths) for (const c of chunksList) {
      const C = c === -1 ? 1 : chunkedAs(L, c).chunkSize;
      if (C > MAX_PARALLEL_L) throw new UsageError(`--lengths ${L} with --chunks ${c} makes chunks of ${C} tokens, over ${MAX_PARALLEL_L} (each builds a ${C}×${C} decay/score matrix per head); use at least ${Math.ceil(L / MAX_PARALLEL_L)} chunks`);
    }
    // no --kernels: the library's default (RETNET_KERNELS, else auto), as the other commands take it
    const kernelsList = v.kernels === undefined ? [undefined] : noRepeats('kernels', String(v.kernels).split(',').map((k) => kernelsName('kernels', k.trim())!));
    const B = intOption('batch', v.batch) ?? 1;
    const precision = parsePrecision(v.precision, backends);
    checkPrecisionBackends(precision, backends); // before: every cell of a js or tfjs backend an error row, exit 1
    checkKernelsEnv(backends, v.kernels);
    const cfg = flagModelConfig(intOption('layers', v.layers) ?? 6, intOption('dim', v.dim) ?? 512, intOption('heads', v.heads) ?? 8);
    const repeat = intOption('repeat', v.repeat) ?? 1;
    const out: string | undefined = v.json;
    // before the benchmark: the JSON's folder must be usable and the file not a special one
    const target = out === undefined ? undefined : checkOutputTarget(out, [], '--json', { createDir: true, kind: 'bench-json' });
    const profile = v.profile ?? false;
    if (profile) process.env.RETNET_PROFILE = '1'; // read by each worker pool as it starts
    const rows: BenchRow[] = [];
    console.log(`bench: RetNet ${cfg.numLayer} layers, ${cfg.numHeads} heads, d=${cfg.dimModel}, value factor 2, MLP 4·d; batch ${B}; ${JSON.stringify(machine())}`);
    const cell = (r: BenchRow) => `${r.backend}${r.kernels !== undefined ? ` kernels=${r.kernels}` : ''}${r.workers !== null ? ` workers=${r.workers}` : ''} L=${r.L} chunks=${r.chunks}${ranNote(r) ? ` (${ranNote(r)})` : ''}`;
    for (const backend of backends) {
      // per kernel engine: one that cannot load (dnnl without oneDNN) skips its own cells only (before: the
      // whole backend's, and a later engine's row said the backend was not available)
      const unavailableFor = new Map<string | undefined, string>();
      for (const kernels of backend === 'wasm' ? kernelsList : [undefined]) for (const workers of backend === 'wasm' ? workersList : [null]) {
        if (unavailableFor.has(kernels)) continue;
        // a fresh model per worker count: the pool is sized when first used
        const model = RetNet.init(cfg);
        try {
          const opts = { backend, kernels, workers: workers ?? undefined, ...(precision ? { precision } : {}) };
          let engine = '', device = '', warm = false;
          for (const L of lengths) for (const chunks of chunksList) {
            if (unavailableFor.has(kernels)) continue;
            const ran = chunks === -1 ? { chunkSize: 1, chunks: L } : chunkedAs(L, chunks);
            const row: BenchRow = { backend, ...(kernels !== undefined ? { kernels } : {}), engine, device, B, L, chunks, workers, seconds: NaN, tokensPerSec: NaN, chunkSize: ran.chunkSize, chunksRun: ran.chunks };
            try {
              if (!warm) { await model.forwardStream(generatedSource(1, Math.min(...lengths), cfg.dimModel), discardSink(), { ...opts, numChunks: chunks }); warm = true; }
              let best = Infinity;
              for (let r = 0; r < repeat; r++) {
                if (profile) resetProfile();
                const t0 = performance.now();
                await model.forwardStream(generatedSource(B, L, cfg.dimModel), discardSink(), { ...opts, numChunks: chunks });
                const sec = (performance.now() - t0) / 1000;
                if (sec < best && profile && backend === 'wasm' && workers) {
                  const rep = collectProfile();
                  row.profile = splitPhases(rep, sec * 1000, workers);
                  row.rates = phaseRates(rep);
                }
                best = Math.min(best, sec);
              }
              const inf = (await model.backendInfo())[0];
              engine = row.engine = inf?.engine ?? 'js-float64'; device = row.device = inf?.device ?? 'CPU, main thread';
              if (typeof inf?.note === 'string' && inf.note) row.engineNote = inf.note;
              row.seconds = best; row.tokensPerSec = (B * L) / best;
            } catch (e) {
              if (!warm && e instanceof RetNetError && e.code === 'E_ENGINE') {
                // the backend cannot start: one row with the reason, its other cells not tried
                const unavailable = errorMessage(e);
                unavailableFor.set(kernels, unavailable);
                rows.push({ backend, ...(kernels !== undefined ? { kernels } : {}), engine: '-', device: '-', B, L: NaN, chunks: NaN, workers: null, seconds: NaN, tokensPerSec: NaN, unavailable });
                process.stderr.write(`bench: ${backend}${kernels !== undefined ? ` kernels=${kernels}` : ''}: not available, skipped: ${unavailable}\n`);
                continue;
              }
              row.error = errorMessage(e);
            }
            rows.push(row);
            process.stderr.write(row.error ? `bench: ${cell(row)}: error: ${row.error}\n`
              : `bench: ${cell(row)}: ${Math.round(row.tokensPerSec)} tokens/s (${row.seconds.toFixed(3)} s, ${row.engine})\n`);
          }
        } finally {
          await model.close();
        }
      }
    }
    const measured = rows.filter((r) => r.unavailable === undefined);
    console.log(table(['backend', 'engine', 'device', 'B', 'L', 'chunks', 'workers', 'seconds', 'tokens/s', 'note'],
      rows.map((r) => r.unavailable !== undefined
        ? [r.kernels !== undefined ? `${r.backend} (kernels ${r.kernels})` : r.backend, '-', '-', '-', '-', '-', '-', '-', '-', `not available: ${firstClause(r.unavailable)}`]
        // a --kernels list's rows say which request each ran (before: auto and blas rows looked the same)
        : [r.kernels !== undefined ? `${r.backend} (kernels ${r.kernels})` : r.backend, r.engine || '-', r.device || '-', r.B, r.L, r.chunks, r.workers ?? '-',
          r.error ? '-' : Number(r.seconds.toFixed(3)), r.error ? '-' : Math.round(r.tokensPerSec), r.error ? `error: ${r.error.slice(0, 80)}` : ranNote(r)])));
    // the install advice only where a package may be missing (not for a bad RETNET_TFJS_ENGINE value)
    // naming the package the reason says is missing where it says one (before: always @tensorflow/tfjs, also when
    // that was installed and RETNET_TFJS_ENGINE asked for another engine's package)
    const tfjsOut = rows.filter((r) => r.unavailable !== undefined && r.backend === 'tfjs' && !/ must be one of /.test(r.unavailable));
    if (tfjsOut.length > 0) {
      // (only where RETNET_TFJS_ENGINE names one engine: on 'auto' every engine's package is missing, and the
      // CPU one is the advice)
      const named = envValue('RETNET_TFJS_ENGINE');
      const missing = named === undefined || named === 'auto' ? []
        : [...new Set(tfjsOut.flatMap((r) => [...r.unavailable!.matchAll(/package (\S+) is not installed/g)].map((m) => m[1]!)))];
      console.log(`tfjs: ${missing.length ? `npm install ${missing.join(' ')} (the engine asked for); otherwise, ` : 'for the CPU, npm install @tensorflow/tfjs; '}${gpuAdvice()} (the full reason is on stderr)`);
    }
    for (const n of new Set(measured.map((r) => r.engineNote).filter(Boolean))) console.log(`note: ${n}`);
    if (profile) printProfiles(measured);
    if (target !== undefined) {
      mkdirSync(dirname(target), { recursive: true });
      writeFileAtomic(target, JSON.stringify({ suite: 'retnet bench', date: new Date().toISOString(), machine: machine(), model: cfg, batch: B, repeat, rows }, null, 2) + '\n');
      console.log(`wrote ${out}`);
    } else console.log('(results not saved: add --json FILE to write them)');
    const ok = measured.some((r) => !r.error);
    return ok && !measured.some((r) => r.error) ? 0 : 1;
  },
};

/** The reason of an engine error up to its first ' (' or '; ' (the details are on stderr, the advice below the table). */
const firstClause = (m: string) => m.split(/ \(|; /)[0];

/** One line per profiled cell: each phase's share of workers × wall time. */
function printProfiles(rows: BenchRow[]): void {
  const cols = [...PHASES.filter((p) => rows.some((r) => (r.profile?.[p] ?? 0) > 0)), 'dispatch/idle'];
  const prof = rows.filter((r) => r.profile);
  if (!prof.length) return;
  console.log('\nprofile: share of workers × wall time per phase (worker-ms in JSON; gemm+act = GEMMs with an activation epilogue)');
  console.log(table(['L', 'chunks', 'workers', ...cols], prof.map((r) => {
    const total = (r.workers ?? 1) * r.seconds * 1000;
    return [r.L, r.chunks, r.workers ?? '-', ...cols.map((c) => `${((100 * (r.profile![c] ?? 0)) / total).toFixed(1)}%`)];
  })));
  console.log('\nrates inside the engine: GFLOP/s of one worker thread while in the phase (intra: its causal FLOPs only)');
  console.log(table(['L', 'chunks', 'workers', ...RATED], prof.map((r) =>
    [r.L, r.chunks, r.workers ?? '-', ...RATED.map((p) => (Number.isFinite(r.rates?.[p]) ? r.rates![p].toFixed(1) : '-'))])));
}

export default bench;
