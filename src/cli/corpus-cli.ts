// The CLI side of corpus scoring (`retnet score --out …`, `retnet worker`):
// option parsing into the library's options, the progress bar (documents,
// bytes, bytes/s, ETA) and the summary lines. The work is in src/corpus.
import { corpusSummaryJson, type CorpusProgress, type CorpusSummary, type ScoreCorpusOptions } from '../corpus/score-corpus.js';
import { intOption } from './numbers.js';
import { MAX_PARALLEL_L } from './commands/run.js';
import { RUN_ID_RE } from '../corpus/digest.js';
import { asModelRefusal, needTokenizer, queueUrlOption, checkPrecisionBackends, parseBackend, parseIntOption, parsePrecision, parseNumberOption, UsageError, type CommandIO } from './lm-util.js';
import { checkOutputTarget, writeFileAtomic } from './safe-output.js';
import { statSync } from 'node:fs';
import { formatOf } from '../corpus/inputs.js';

export const corpusOptionSpec = {
  out: { type: 'string' }, resume: { type: 'boolean' }, 'text-field': { type: 'string' }, 'id-field': { type: 'string' },
  include: { type: 'string' }, strict: { type: 'boolean' }, 'summary-json': { type: 'string' }, 'shard-bytes': { type: 'string' },
  queue: { type: 'string' }, 'run-id': { type: 'string' }, 'max-in-flight': { type: 'string' }, 'redis-timeout': { type: 'string' },
  'max-doc-bytes': { type: 'string' },
} as const;

/** Options that need an output file (--out). */
const OUT_ONLY = ['resume', 'queue', 'run-id', 'max-in-flight', 'redis-timeout'];
/** Options of corpus mode (with --out or a corpus INPUT). */
const CORPUS_ONLY = Object.keys(corpusOptionSpec).filter((k) => k !== 'out' && !OUT_ONLY.includes(k));

/** A corpus INPUT: a directory, or a file whose name says JSONL or Parquet (*.jsonl[.gz|.zst], *.json.gz|.zst, *.parquet). */
export function isCorpusInput(p: string): boolean {
  if (p === '-') return false;
  if (formatOf(p).format !== 'plain') return true;
  try { return statSync(p).isDirectory(); } catch { return false; }
}

/** Corpus mode: `--out`, or any INPUT that is a corpus (a directory, JSONL or Parquet): then
 *  every INPUT is read as a corpus (a plain file is one document). The queue and --resume need --out. */
export function wantsCorpusMode(values: Record<string, unknown>, inputs: string[] = []): boolean {
  if (values.out !== undefined) return true;
  const stray = OUT_ONLY.find((k) => values[k] !== undefined);
  if (stray) throw new UsageError(`--${stray} needs --out FILE (${stray === 'resume' ? 'the output file to resume' : 'the output file the run writes'})`);
  if (inputs.some(isCorpusInput)) return true;
  const other = CORPUS_ONLY.find((k) => values[k] !== undefined);
  if (other) throw new UsageError(`--${other} needs a corpus: --out FILE, or a directory / JSONL / Parquet INPUT`);
  return false;
}

/** --redis-timeout SECONDS → milliseconds. */
export const redisTimeoutMs = (v: string | undefined) => {
  const s = parseNumberOption('redis-timeout', v, 0.1);
  return s === undefined ? undefined : Math.round(s * 1000);
};

const fmtBytes = (n: number) => (n >= 1 << 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const fmtTime = (s: number) => (!Number.isFinite(s) ? '?' : s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`);

/** A progress bar over the input read (on a TTY only): documents, bytes, bytes/s, ETA. */
async function corpusBar(io: CommandIO): Promise<{ update(p: CorpusProgress): void; stop(): void }> {
  if (!io.stderr.isTTY) return { update() {}, stop() {} };
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar({
    stream: io.stderr as NodeJS.WritableStream, hideCursor: true, fps: 5,
    format: 'score [{bar}] {percentage}% | {docs} docs | {text} | {speed}/s | ETA {etaText}',
  }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(p) {
      const frac = p.fraction;
      const speed = p.bytesThisRun / Math.max(p.seconds, 1e-9);
      const eta = frac > 0 ? (p.seconds * (1 - frac)) / frac : Infinity;
      const payload = { docs: p.documentsScored, text: fmtBytes(p.bytes), speed: fmtBytes(Math.round(speed)), etaText: fmtTime(eta) };
      const v = Math.round(frac * 1000);
      if (!started) { bar.start(1000, v, payload); started = true; } else bar.update(v, payload);
    },
    stop() { if (started) bar.stop(); },
  };
}

export function summaryLine(s: CorpusSummary): string {
  const q = s.queue ? `; queue: ${s.queue.enqueued} jobs enqueued (${s.queue.reenqueued} again), ${s.queue.adopted} adopted from an earlier coordinator, ${s.queue.alreadyWritten} shards already written` : '';
  return `${s.documents} document${s.documents === 1 ? '' : 's'} (${s.skipped} skipped, ${s.resumedDocuments} resumed), ${s.bytes} bytes, ${s.bitsPerByte.toFixed(4)} bits/byte, `
    + (s.tokens !== undefined ? `${s.tokens} tokens, perplexity ${s.perplexity!.toFixed(3)}, ` : '')
    + `${Math.round(s.bytesPerSecond)} bytes/s in ${s.seconds.toFixed(1)} s, ${s.shards} shard${s.shards === 1 ? '' : 's'}${q} → ${s.out === '-' ? 'stdout' : s.out}`;
}

/** `retnet score --out …` (or a corpus INPUT without --out: the records on stdout): options →
 *  scoreCorpus → summary on stderr (and --summary-json). */
export async function runCorpusMode(values: Record<string, string | boolean | undefined>, inputs: string[], io: CommandIO,
  scoreCorpus: (o: ScoreCorpusOptions) => Promise<CorpusSummary>): Promise<void> {
  if (inputs.length === 0) throw new UsageError('give at least one INPUT (file, directory, JSONL, Parquet, or -)');
  if (values.jsonl !== undefined) {
    throw new UsageError(values.out !== undefined ? '--jsonl and --out cannot be combined (--out writes one record per document)'
      : `--jsonl is for plain FILEs; ${inputs.find(isCorpusInput)} is a corpus (directory, JSONL or Parquet): use --out FILE, or no --out for the records on stdout`);
  }
  const str = (k: string) => values[k] as string | undefined;
  for (const k of ['text-field', 'id-field', 'include']) if (str(k) === '') throw new UsageError(`--${k} needs a ${k === 'include' ? 'pattern' : 'field name'} (got an empty one)`);
  // what scoreCorpus would refuse with E_OPTION (exit 1, after the model has loaded): usage errors here,
  // worded as in file mode
  if (inputs.filter((p) => p === '-').length > 1) throw new UsageError("stdin ('-') can be given only once");
  if (values.resume === true && inputs.includes('-')) throw new UsageError("--resume cannot continue a run that reads stdin ('-'): what came on stdin before cannot be checked (save it to a file and score that)");
  const queue = str('queue');
  if (queue === undefined) for (const k of ['run-id', 'max-in-flight', 'redis-timeout']) if (values[k] !== undefined) throw new UsageError(`--${k} needs --queue`);
  if (queue !== undefined) queueUrlOption(queue);
  const runId = str('run-id'), backend = parseBackend(str('backend'));
  if (runId !== undefined && !RUN_ID_RE.test(runId)) throw new UsageError(`--run-id must be letters, digits, _ . - (at most 64) (got ${JSON.stringify(runId)})`);
  const opts: ScoreCorpusOptions = {
    inputs, out: str('out'), model: str('model'), backend, chunkSize: intOption('chunk-size', str('chunk-size'), { min: 1, max: MAX_PARALLEL_L }), precision: parsePrecision(str('precision'), [backend]),
    perToken: values['per-token'] === true, textField: str('text-field'), idField: str('id-field'), include: str('include'),
    strict: values.strict === true, maxDocBytes: intOption('max-doc-bytes', str('max-doc-bytes'), { min: 1, max: 2 ** 31 }), resume: values.resume === true, shardBytes: parseIntOption('shard-bytes', str('shard-bytes'), 1),
    queue, runId, maxInFlight: parseIntOption('max-in-flight', str('max-in-flight'), 1), redisTimeoutMs: redisTimeoutMs(str('redis-timeout')),
    stdin: io.stdin, log: (line) => io.stderr.write(`retnet: ${line}\n`),
  };
  checkPrecisionBackends(opts.precision, [opts.backend]);
  needTokenizer(opts.model, 'score'); // before the weights are hashed
  // the shared CLI rule (src/cli/safe-output.ts) up front: --out and --summary-json never
  // alias the model or a named input file; scoreCorpus then checks both (and the
  // partial files) against every file it will read, those inside directories too.
  // Like every command's output, an --out that is a symlink writes the file it points to.
  const named = [{ label: '--model', path: opts.model }, ...inputs.map((p) => ({ label: 'INPUT', path: p }))];
  if (opts.out !== undefined) opts.out = checkOutputTarget(opts.out, named, '--out', { kind: 'jsonl' });
  else opts.sink = (jsonl) => io.stdout.write(jsonl); // the same records as --out would write, on stdout
  const summaryJson = str('summary-json');
  const summaryTarget = summaryJson === undefined ? undefined
    : checkOutputTarget(summaryJson, [...named, ...(opts.out !== undefined ? [{ label: '--out', path: opts.out, output: true }] : [])], '--summary-json', { kind: 'summary-json' });
  const bar = await corpusBar(io);
  // SIGINT/SIGTERM: the run stops as an abort does (the shard in progress is dropped, OUT.partial keeps every
  // record written, fsynced, and the lock is removed), then exits 130/143; a second signal exits at once.
  // (Before, the default action ended the process where it stood and left OUT.partial.lock behind.)
  const ac = new AbortController();
  let caught: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (caught !== null) process.exit(sig === 'SIGINT' ? 130 : 143);
    caught = sig;
    io.stderr.write(`retnet: ${sig}: stopping${opts.out !== undefined ? ` (the records written so far stay in ${opts.out}.partial for --resume)` : ''}; again to exit at once\n`);
    ac.abort(sig);
    // a run waiting where the abort is not looked at (stdin that sends nothing, Redis not answering until
    // --redis-timeout, loading a model) stops anyway: what is written is on disk, and a lock left behind
    // names a process that is gone, which the next run takes over
    setTimeout(() => {
      io.stderr.write(`retnet: ${sig}: the run did not stop within 10 s (waiting on input, Redis or loading); exiting\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }, 10_000).unref();
  };
  process.on('SIGINT', onSignal); process.on('SIGTERM', onSignal);
  let s: CorpusSummary;
  try {
    s = await scoreCorpus({ ...opts, otherOutputs: summaryTarget === undefined ? [] : [{ label: '--summary-json', path: summaryTarget }], onProgress: (p) => bar.update(p), signal: ac.signal });
  } catch (e) {
    // stopped by the signal: exit 130/143; any other failure meanwhile (a full disk) is reported as itself
    if (caught !== null && (e as { code?: string }).code === 'E_ABORTED') { bar.stop(); io.stderr.write(`retnet: stopped by ${caught}\n`); process.exit(caught === 'SIGINT' ? 130 : 143); }
    throw asModelRefusal(opts.model, e);
  } finally { bar.stop(); process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); }
  io.stderr.write(`retnet: ${summaryLine(s)}\n`);
  if (summaryTarget !== undefined) writeFileAtomic(summaryTarget, JSON.stringify(corpusSummaryJson(s), null, 2) + '\n');
}
