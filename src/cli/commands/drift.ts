// `retnet drift`: the chunk-count stability study. The float32 forward at
// chunk counts 1, 2, 4, …, L (and −1, recurrent; the parallel form where it
// fits) per backend and state precision, against one float64 reference.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { MultiScaleRetention, RetNet, Tensor, maxAbs, maxAbsDiff, nmse, relMaxError, type BackendName } from '../../index.js';
import { chunkedAs, type Precision } from '../../options.js';
import { RetNetError } from '../../errors.js';
import { UsageError, backendList, noRepeats, errorMessage, fmtE, modelConfig, parse, table, type Command } from '../command.js';
import { intOption, workersOption } from '../numbers.js';
import { checkOutputDir, checkOutputTarget, holdsOutput, writeFileAtomic } from '../safe-output.js';
import { machine } from '../gen.js';
import { MAX_PARALLEL_L } from './run.js';
import { actOption, refuseForFolder } from './info.js';
import { driftSvg } from '../plot.js';
import { RetNetLM, embedRow } from '../../lm/retnet-lm.js';
import { SafetensorsFile } from '../../safetensors.js';
import { checkWasmOnlyFlags, loadLM } from '../lm-util.js';
import { Rng } from '../../random.js';

/** Whether a .safetensors file is a language model's (its embedding and head beside the RetNet). */
function isLmCheckpoint(path: string): boolean {
  try {
    const f = SafetensorsFile.open(path);
    try { return f.has('embed.weight') && f.has('head.weight'); } finally { f.close(); }
  } catch { return false; } // RetNet.load names what is wrong with it
}

/** x [1, L, d]: the embedding rows of L seeded random token ids, the first one the model's BOS (if any). */
function embedRandomIds(lm: RetNetLM, L: number, seed: number): Tensor {
  const d = lm.d, rng = new Rng(seed), x = new Float32Array(L * d);
  for (let t = 0; t < L; t++) {
    const id = t === 0 && lm.tokenizer.bosId !== null ? lm.tokenizer.bosId : Math.floor(rng.uniform() * lm.vocab);
    embedRow(lm.embed, d, id, x, t * d);
  }
  return new Tensor(x, [1, L, d]);
}

const usage = `usage: retnet drift [--model M] [--length L] [--backends wasm,tfjs] [--precisions f32,bf16] [--out-dir DIR] [--no-plot] [--workers N] [--seed S] [--normalize-attn] [--normalize-retn] [--msr-gate-fn F] [--mlp-gate-fn F]

How the float32 forward's error against a float64 reference changes with the
chunk count: numChunks 1, 2, 4, …, L and -1 (recurrent), plus the parallel form
(at an L that is not a power of two, the counts its chunks of ceil(L/k) tokens make:
L = 100 runs 1, 2, 4, 8, 15, 25, 50, 100 chunks)
when L ≤ ${MAX_PARALLEL_L} (chunks longer than that are skipped: they need an
L×L matrix per head), for each backend and for stateDtype float32 and float64, and on
the wasm backend for each operand precision asked for (f32; bf16: bfloat16 operands
of the big matrix products).
The reference is the js backend (float64, exact in every form), computed once,
chunkwise. Errors of the retention output (layer 0, before the group norm) and
of the model's output: max abs, max abs / max|ref|, NMSE. Writes drift.csv,
drift.json and drift.svg (log–log plot) to the output folder (checked before
the study starts; each file is replaced only when it is complete) and prints
where. A backend whose engine cannot start is reported once and skipped. The
plot needs the optional packages vega and vega-lite: without them (or with
--no-plot) drift.svg is skipped with a note, and the CSV and JSON are written.
Exit codes: 0 when at least one form of one backend was measured, 1 when none
was, 2 bad command line.

options:
  --model M         checkpoint (default: a seeded random RetNet, 2 layers, d=64, 4 heads), or
                    a fla-hub RetNet folder (DIR or ORG/NAME in the local Hugging Face cache) or a
                    language-model checkpoint (the shipped byte LM's kind),
                    fed the embeddings of seeded random token ids
  --length L        sequence length (default 8192; the study at 65536 takes minutes)
  --backends LIST   backends to study (default wasm, and tfjs when @tensorflow/tfjs is installed)
  --precisions LIST operand precisions on the wasm backend: f32, bf16 (default f32,bf16;
                    bf16 given here needs wasm among --backends)
  --out-dir DIR     output folder (default: a new folder retnet-drift-XXXXXX under the OS temp dir)
  --no-plot         do not draw drift.svg
  --workers N       worker threads (wasm; 1 to 256)
  --seed S          seed of the input sequence (randn, 0 to 4294967295, default 1)
  --normalize-attn, --normalize-retn   normalisations (both forms and the reference; the
                                       seed family's, refused for a model folder)
  --msr-gate-fn F, --mlp-gate-fn F     activations for a --model checkpoint file (refused
                                       for a model folder: its config.json decides)
  -h, --help        this text`;

export type { DriftRow } from '../drift-row.js';
import { DRIFT_CSV_COLUMNS, DRIFT_STUDY, type DriftRow } from '../drift-row.js';

/** Sequence length of the study when --length is not given. */
export const DEFAULT_DRIFT_LENGTH = 8192;

/** The backends studied when --backends is not given: wasm, and tfjs when TensorFlow.js is installed. */
function defaultBackends(): BackendName[] {
  try { import.meta.resolve('@tensorflow/tfjs'); return ['wasm', 'tfjs']; } catch { return ['wasm']; }
}

/** The files drift writes into --out-dir. */
const OUT_FILES = ['drift.csv', 'drift.json', 'drift.svg'];

const fmtBytes = (n: number) => (n >= 2 ** 40 ? `${(n / 2 ** 40).toFixed(1)} TiB` : `${(n / 2 ** 30).toFixed(1)} GiB`);

const drift: Command = {
  name: 'drift',
  summary: 'chunk-count stability study: error vs chunk count against a float64 reference (CSV, JSON, SVG)',
  usage,
  async run(argv) {
    const a = parse({ usage }, argv, {
      model: { type: 'string' }, length: { type: 'string' }, backends: { type: 'string' }, 'out-dir': { type: 'string' },
      workers: { type: 'string' }, seed: { type: 'string' }, 'normalize-attn': { type: 'boolean' }, 'normalize-retn': { type: 'boolean' },
      'msr-gate-fn': { type: 'string' }, 'mlp-gate-fn': { type: 'string' }, 'no-plot': { type: 'boolean' }, precisions: { type: 'string' },
    });
    if (!a) return 0;
    const v = a.values;
    const L = intOption('length', v.length) ?? DEFAULT_DRIFT_LENGTH;
    const backends = v.backends !== undefined ? backendList('backends', v.backends) : defaultBackends();
    const plot = v['no-plot'] !== true;
    const precisions = (v.precisions ?? 'f32,bf16').split(',').map((p: string) => p.trim());
    for (const p of precisions) if (p !== 'f32' && p !== 'bf16') throw new UsageError(`--precisions must list f32 and/or bf16 (got ${JSON.stringify(p)})`);
    noRepeats('precisions', precisions);
    // the precisions are the wasm backend's: bf16 asked for with no wasm backend would give no bf16 row
    // (before: silently none, exit 0); the default list applies to wasm when it is there
    if (v.precisions !== undefined && precisions.includes('bf16') && !backends.includes('wasm')) {
      throw new UsageError(`--precisions bf16 needs the wasm backend in --backends (bfloat16 products run on wasm only; got --backends ${backends.join(',')})`);
    }
    const workers = workersOption('workers', v.workers);
    checkWasmOnlyFlags(backends, { '--workers': v.workers }, '--backends');
    // the activations are a checkpoint file's (the seeded model is gelu/gelu): without --model they were
    // accepted and ignored (drift.json said gelu)
    for (const flag of ['msr-gate-fn', 'mlp-gate-fn'] as const) {
      if (v[flag] !== undefined && v.model === undefined) throw new UsageError(`--${flag} is for a --model checkpoint file; the default seeded model is gelu throughout: give --model, or leave --${flag} out`);
    }
    const seed = intOption('seed', v.seed, { min: 0, max: 2 ** 32 - 1 }) ?? 1;
    const flags = { normalizeAttn: v['normalize-attn'] ?? false, normalizeRetn: v['normalize-retn'] ?? false };
    const acts = { msrGateFn: actOption('msr-gate-fn', v['msr-gate-fn']), mlpGateFn: actOption('mlp-gate-fn', v['mlp-gate-fn']) };
    if (v.model !== undefined && RetNetLM.isFolderSpec(v.model)) {
      // a fla-family folder fixes its activations (config.json) and has no retention normalisations: these
      // flags were ignored (the activations) or refused by the library after the model loaded (exit 1)
      refuseForFolder(v.model, v);
    }
    const skipped: { backend: BackendName; reason: string }[] = [];

    // before the study: the output folder must be usable (and its files not the model or special files)
    const inputs = [{ label: '--model', path: v.model }];
    const files = plot ? OUT_FILES : OUT_FILES.filter((f) => f !== 'drift.svg');
    // no --out-dir: a fresh folder under the OS temp dir, never the current directory (removed again if nothing is written)
    const outDir = v['out-dir'] ?? mkdtempSync(join(tmpdir(), 'retnet-drift-'));
    const ownDir = v['out-dir'] === undefined;
    if (!ownDir) checkOutputDir(outDir, files, inputs, '--out-dir', 'drift'); // files of an earlier drift run are replaced, any other is refused
    process.stderr.write(`drift: L = ${L}, backends ${backends.join(', ')}; output folder ${outDir}\n`);
    try {
      return await study(outDir);
    } finally {
      if (ownDir) { try { if (readdirSync(outDir).length === 0) rmdirSync(outDir); } catch { /* best effort */ } }
    }

    // the study itself (outDir is usable): returns the exit code
    async function study(outDir: string): Promise<number> {
      // checked again when written (the folder may be new); a symlinked file is written through
      const save = (name: string, data: string) => writeFileAtomic(checkOutputTarget(join(outDir, name), inputs, '--out-dir file', { kind: 'drift' }), data);

      // a fla-family folder (DIR or ORG/NAME): its RetNet, fed the embeddings of seeded random token ids
      // (or a language-model checkpoint such as the shipped byte LM: embed, RetNet, norm and head in one file —
      // before: refused as "unexpected weights")
      const lm = v.model === undefined ? null : RetNetLM.isFolderSpec(v.model) ? await loadLM(v.model) : isLmCheckpoint(v.model) ? await RetNetLM.load(v.model, acts) : null;
      const model = lm ? lm.model : v.model ? await RetNet.load(v.model, acts) : RetNet.init(modelConfig(2, 64, 4));
      const msr = MultiScaleRetention.fromRetNet(model, 0);
      const log = (s: string) => process.stderr.write(s + '\n');
      try {
        const d = model.dims.d;
        // the study holds the input (float32 [L, d]), the float64 references of
        // the retention output ([L, H·dv]) and of the model output ([L, d]), and one result at a time
        const hdv = model.dims.H * model.dims.dv;
        const need = L * (4 * d + 8 * hdv + 8 * d + 8 * Math.max(hdv, d));
        if (need > totalmem()) {
          throw new UsageError(`--length ${L} needs about ${fmtBytes(need)} (the input and its float64 references are held in memory), more than this machine's ${fmtBytes(totalmem())}; choose a shorter --length`);
        }
        // a backend whose engine cannot start: reported once, then skipped
        const usable: BackendName[] = [];
        for (const backend of backends) {
          try {
            // precision named: every row of the study names its own, so RETNET_PRECISION is not read here either
            // (before: a bad value in the environment failed the study after the model loaded)
            await model.forward(Tensor.randn([1, 2, d], { seed: 0, dtype: 'float32' }), { backend, workers, numChunks: 1, precision: 'f32' });
            usable.push(backend);
          } catch (e) {
            if (!(e instanceof RetNetError && e.code === 'E_ENGINE')) throw e;
            log(`drift: backend ${backend} skipped: ${errorMessage(e)}`);
            skipped.push({ backend, reason: errorMessage(e) });
          }
        }
        if (usable.length === 0) throw new Error(`none of the backends (${backends.join(', ')}) could start; see the messages above`);
        const x = lm ? embedRandomIds(lm, L, seed) : Tensor.randn([1, L, d], { seed, dtype: 'float32' });
        // One float64 reference, chunkwise with a mid chunk size (~√L, a power of two).
        const refChunk = Math.min(L, 2 ** Math.round(Math.log2(Math.sqrt(L))));
        let t0 = performance.now();
        const refOpts = { backend: 'js' as const, chunkSize: refChunk, ...flags };
        const ref = { retention: await msr.retentionOutput(x, refOpts), output: await model.forward(x, refOpts) };
        const refSeconds = (performance.now() - t0) / 1000;
        log(`drift: reference (js float64, chunk size ${refChunk}) in ${refSeconds.toFixed(2)} s`);

        const counts: (number | null)[] = [];
        if (L <= MAX_PARALLEL_L) counts.push(null);
        // chunk counts as run: numChunks k means chunks of ceil(L/k), which at an L that is not a power
        // of two make fewer chunks than k (L = 100, k = 64: 50 of 2); that count is what a row says
        for (let k = 1; k < L; k *= 2) {
          const { chunkSize, chunks } = chunkedAs(L, k);
          if (chunkSize <= MAX_PARALLEL_L && chunks < L && !counts.includes(chunks)) counts.push(chunks);
        }
        counts.push(L, -1);
        const rows: DriftRow[] = [];
        for (const backend of usable) for (const precision of (backend === 'wasm' ? precisions : ['f32']) as Precision[]) {
          for (const stateDtype of backend === 'js' ? (['float64'] as const) : (['float32', 'float64'] as const)) {
            // the first row's run once untimed (the backend started, the weights packed, the buffers of this
            // length made), so that no row's seconds include that (before: the first row of each backend and
            // precision did — 0.129 s against 0.005 for the same row after it, L = 1,024; a warm-up on 8 tokens
            // still left 0.041); a failure here is left for the rows to record
            const warm = { backend, workers, stateDtype, numChunks: counts[0], ...(backend === 'wasm' ? { precision } : {}), ...flags };
            try { await msr.retentionOutput(x, warm); await model.forward(x, warm); } catch { /* the rows say it */ }
            for (const numChunks of counts) {
              const form = numChunks === null ? 'parallel' : numChunks === -1 ? 'recurrent' : 'chunkwise';
              const chunkSize = numChunks === null ? L : numChunks === -1 ? 1 : Math.ceil(L / numChunks);
              // the precision always, on wasm: a row labelled f32 is f32 whatever RETNET_PRECISION says
              const opts = { backend, workers, stateDtype, numChunks, ...(backend === 'wasm' ? { precision } : {}), ...flags };
              for (const target of ['retention', 'output'] as const) {
                const row: DriftRow = { backend, stateDtype, precision: backend === 'js' ? 'f64' : precision, form, numChunks, chunkSize, target, maxAbsError: NaN, relMaxError: NaN, nmse: NaN, seconds: NaN };
                try {
                  t0 = performance.now();
                  const y = target === 'retention' ? await msr.retentionOutput(x, opts) : await model.forward(x, opts);
                  row.seconds = (performance.now() - t0) / 1000;
                  row.maxAbsError = maxAbsDiff(y, ref[target]);
                  row.relMaxError = relMaxError(y, ref[target]);
                  row.nmse = nmse(y, ref[target]);
                } catch (e) {
                  row.error = errorMessage(e);
                }
                rows.push(row);
              }
              const last = rows.slice(-2);
              log(`  ${backend}${precision === 'bf16' ? ' bf16' : ''} ${stateDtype} ${form}${numChunks !== null && numChunks > 0 ? ` ${numChunks} chunks` : ''}: ${last.map((r) => r.error ? `${r.target} error: ${r.error}` : `${r.target} rel ${fmtE(r.relMaxError)}`).join(', ')}`);
            }
          }
        }

        mkdirSync(outDir, { recursive: true });
        const cols = DRIFT_CSV_COLUMNS;
        const csv = [cols.join(','), ...rows.map((r) => cols.map((c) => {
          const val = r[c];
          return val === undefined || val === null ? '' : typeof val === 'string' && /[",\n]/.test(val) ? `"${val.replace(/"/g, '""')}"` : String(val);
        }).join(','))].join('\n') + '\n';
        save('drift.csv', csv);
        const meta = {
          study: DRIFT_STUDY, date: new Date().toISOString(), machine: machine(), L, seed,
          input: lm ? `embeddings of ${L} seeded random token ids${lm.tokenizer.bosId !== null ? ' (BOS first)' : ''} [1, ${L}, ${d}]` : `randn [1, ${L}, ${d}]`,
          model: v.model ?? { seeded: modelConfig(2, 64, 4) }, dims: model.dims, flags,
          // the activations that ran (--msr-gate-fn/--mlp-gate-fn, the file's config, else gelu): before, not recorded
          activations: { msrGateFn: model.config.msrGateFn, mlpGateFn: model.config.mlpGateFn },
          reference: { backend: 'js', dtype: 'float64', chunkSize: refChunk, seconds: refSeconds, maxAbs: { retention: maxAbs(ref.retention), output: maxAbs(ref.output) } },
        };
        // the plot first (its absence is recorded in drift.json): optional packages, optional output
        let svg: string | null = null, plotNote: string;
        if (!plot) plotNote = 'drift.svg not drawn (--no-plot)';
        else {
          try { svg = await driftSvg(rows, L); plotNote = ''; } catch (e) {
            if (!(e instanceof RetNetError && e.code === 'E_ENGINE')) throw e;
            plotNote = `drift.svg skipped: ${errorMessage(e)}`;
          }
        }
        save('drift.json', JSON.stringify({ ...meta, skipped, ...(svg === null ? { plot: plotNote } : {}), rows }, null, 2) + '\n');
        if (svg !== null) save('drift.svg', svg);
        else {
          // a drift.svg of an earlier study in this folder would sit beside this one's csv/json as if it
          // were its plot: removed — only when it is one (before: any regular file of that name, a user's own
          // drift.svg included); another file of that name is left and said
          const stale = join(outDir, 'drift.svg');
          if (holdsOutput(stale, 'drift')) { rmSync(stale); plotNote += '; an earlier study\'s drift.svg in this folder was removed'; }
          else if (existsSync(stale)) plotNote += `; ${stale} is not an earlier study's plot and was left as it is`;
        }

        console.log(table(['backend', 'precision', 'state', 'form', 'chunks', 'chunk size', 'target', 'max|Δ|', 'max|Δ|/max|ref|', 'NMSE', 'seconds'],
          rows.map((r) => [r.backend, r.precision, r.stateDtype, r.form, r.numChunks ?? '-', r.chunkSize, r.target,
            r.error ? 'error' : fmtE(r.maxAbsError), r.error ? r.error.slice(0, 50) : fmtE(r.relMaxError), r.error ? '' : fmtE(r.nmse), r.error ? '' : r.seconds.toFixed(3)])));
        console.log(`wrote ${join(outDir, 'drift.csv')}, drift.json${svg !== null ? ', drift.svg' : ''}`);
        if (svg === null) log(`drift: note: ${plotNote}`);
        return rows.some((r) => !r.error) ? 0 : 1;
      } finally {
        await msr.close();
        await (lm ?? model).close();
      }
    }
  },
};
export default drift;
