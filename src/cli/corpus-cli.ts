// The CLI side of corpus scoring (`retnet score --out …`, `retnet worker`):
// option parsing into the library's options, the progress bar (documents,
// bytes, bytes/s, ETA) and the summary lines. The work is in src/corpus.
import type { CorpusProgress, CorpusSummary, ScoreCorpusOptions } from '../corpus/score-corpus.js';
import { parseBackend, parseIntOption, parseNumberOption, UsageError, type CommandIO } from './lm-util.js';
import { checkOutputTarget, writeFileAtomic } from './safe-output.js';

export const corpusOptionSpec = {
  out: { type: 'string' }, resume: { type: 'boolean' }, 'text-field': { type: 'string' }, 'id-field': { type: 'string' },
  include: { type: 'string' }, strict: { type: 'boolean' }, 'summary-json': { type: 'string' }, 'shard-bytes': { type: 'string' },
  queue: { type: 'string' }, 'run-id': { type: 'string' }, 'max-in-flight': { type: 'string' }, 'redis-timeout': { type: 'string' },
  'max-doc-bytes': { type: 'string' },
} as const;

const CORPUS_ONLY = Object.keys(corpusOptionSpec).filter((k) => k !== 'out');

/** Corpus mode is `--out`; the other corpus options need it. */
export function wantsCorpusMode(values: Record<string, unknown>): boolean {
  if (values.out !== undefined) return true;
  const stray = CORPUS_ONLY.find((k) => values[k] !== undefined);
  if (stray) throw new UsageError(`--${stray} needs --out FILE (corpus mode)`);
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
      const total = Math.max(1, p.totalRawBytes), frac = Math.min(1, p.rawBytes / total);
      const speed = p.bytesThisRun / Math.max(p.seconds, 1e-9);
      const eta = frac > 0 ? (p.seconds * (1 - frac)) / frac : Infinity;
      const payload = { docs: p.documents, text: fmtBytes(p.bytes), speed: fmtBytes(Math.round(speed)), etaText: fmtTime(eta) };
      const v = Math.round(frac * 1000);
      if (!started) { bar.start(1000, v, payload); started = true; } else bar.update(v, payload);
    },
    stop() { if (started) bar.stop(); },
  };
}

export function summaryLine(s: CorpusSummary): string {
  const q = s.queue ? `; queue: ${s.queue.enqueued} jobs enqueued (${s.queue.reenqueued} again), ${s.queue.adopted} adopted from an earlier coordinator, ${s.queue.alreadyWritten} shards already written` : '';
  return `${s.documents} documents (${s.skipped} skipped, ${s.resumed_documents} resumed), ${s.bytes} bytes, ${s.bits_per_byte.toFixed(4)} bits/byte, `
    + (s.tokens !== undefined ? `${s.tokens} tokens, perplexity ${s.perplexity!.toFixed(3)}, ` : '')
    + `${Math.round(s.bytes_per_second)} bytes/s in ${s.seconds.toFixed(1)} s, ${s.shards} shards${q} → ${s.out}`;
}

/** `retnet score --out …`: options → scoreCorpus → summary on stderr (and --summary-json). */
export async function runCorpusMode(values: Record<string, string | boolean | undefined>, inputs: string[], io: CommandIO,
  scoreCorpus: (o: ScoreCorpusOptions) => Promise<CorpusSummary>): Promise<void> {
  if (inputs.length === 0) throw new UsageError('give at least one INPUT (file, directory, JSONL, Parquet, or -)');
  if (values.jsonl !== undefined) throw new UsageError('--jsonl and --out cannot be combined (--out writes one record per document)');
  const str = (k: string) => values[k] as string | undefined;
  const queue = str('queue');
  if (queue === undefined) for (const k of ['run-id', 'max-in-flight', 'redis-timeout']) if (values[k] !== undefined) throw new UsageError(`--${k} needs --queue`);
  if (queue !== undefined && !/^rediss?:\/\//.test(queue)) throw new UsageError('--queue must be a redis:// or rediss:// URL');
  const opts: ScoreCorpusOptions = {
    inputs, out: str('out')!, model: str('model'), backend: parseBackend(str('backend')), chunkSize: parseIntOption('chunk-size', str('chunk-size'), 1),
    perToken: values['per-token'] === true, textField: str('text-field'), idField: str('id-field'), include: str('include'),
    strict: values.strict === true, maxDocBytes: parseIntOption('max-doc-bytes', str('max-doc-bytes'), 1), resume: values.resume === true, shardBytes: parseIntOption('shard-bytes', str('shard-bytes'), 1),
    queue, runId: str('run-id'), maxInFlight: parseIntOption('max-in-flight', str('max-in-flight'), 1), redisTimeoutMs: redisTimeoutMs(str('redis-timeout')),
    stdin: io.stdin, log: (line) => io.stderr.write(`retnet: ${line}\n`),
  };
  // the shared CLI rule (src/cli/safe-output.ts) up front: --out and --summary-json never
  // alias the model or a named input file; scoreCorpus then checks both (and the
  // partial files) against every file it will read, those inside directories too.
  // Like every command's output, an --out that is a symlink writes the file it points to.
  const named = [{ label: '--model', path: opts.model }, ...inputs.map((p) => ({ label: 'INPUT', path: p }))];
  opts.out = checkOutputTarget(opts.out, named, '--out');
  const summaryJson = str('summary-json');
  const summaryTarget = summaryJson === undefined ? undefined
    : checkOutputTarget(summaryJson, [...named, { label: '--out', path: opts.out }], '--summary-json');
  const bar = await corpusBar(io);
  let s: CorpusSummary;
  try {
    s = await scoreCorpus({ ...opts, otherOutputs: summaryTarget === undefined ? [] : [{ label: '--summary-json', path: summaryTarget }], onProgress: (p) => bar.update(p) });
  } finally { bar.stop(); }
  io.stderr.write(`retnet: ${summaryLine(s)}\n`);
  if (summaryTarget !== undefined) writeFileAtomic(summaryTarget, JSON.stringify(s, null, 2) + '\n');
}
