// scoreCorpus: the library entry behind `retnet score --out` — inputs →
// documents → shards → scores (here, or on queue workers) → the ordered,
// atomic output file, with a summary. corpusWorker: the entry behind
// `retnet worker`. The queue layer (BullMQ, ioredis) is imported when a queue
// run or a worker starts, never with the library.
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RetNetError, errors } from '../errors.js';
import { DEFAULT_LM_PATH, RetNetLM } from '../lm/retnet-lm.js';
import { checkKnownKeys, kernelsFromEnv, PRECISIONS, precisionFromEnv, type BackendName, type Precision } from '../options.js';
import { inputIdentity, modelSha256, RUN_ID_RE, runIdOf, sortedDefined } from './digest.js';
import { modelFiles, modelFolderFiles, resolveModelDir } from '../model/fla.js';
import { expandInputs } from './inputs.js';
import { DEFAULT_MAX_DOC_BYTES } from './jsonl.js';
import { refuseOutputsOverInputs } from './output-safety.js';
import type { CoordinatorStats } from './queue/coordinator.js';
import { parseRedisUrl } from './queue/redis-url.js';
import type { WorkerStats } from './queue/worker.js';
import { readFiles, type ReadProgress } from './readers.js';
import { scoreDocs, type ShardScoreOptions } from './score-shard.js';
import { DEFAULT_SHARD_BYTES, planShards } from './shards.js';
import type { ReadOptions, SkippedItem } from './types.js';
import { OrderedWriter, partialLockPath, partialMetaPath, partialPath, type RunIdentity } from './writer.js';

/** How long Redis may be unreachable before a queue run gives up (30 s). */
export const DEFAULT_REDIS_TIMEOUT_MS = 30_000;

/** Progress of a corpus run, passed to `onProgress`. */
export interface CorpusProgress {
  /** documents written (resumed ones included) */
  documents: number;
  /** documents scored so far: those written, and those of the shard in progress whose score is done */
  documentsScored: number;
  /** text bytes scored so far (written, and the shard in progress' share) */
  bytes: number;
  /** text bytes scored in this run, and its seconds so far */
  bytesThisRun: number;
  /** seconds since the run started */
  seconds: number;
  /** input read so far / in all, on disk (0 total when unknown) */
  rawBytes: number;
  /** input bytes in all (0 when unknown) */
  totalRawBytes: number;
  /** an estimate of the share of the run done, 0 to 1: the input read so far × the share of the text read
   *  so far that is scored (so a corpus read in one shard still moves from 0 to 1 while it is scored) */
  fraction: number;
}

/** Options of {@link scoreCorpus} (the reader options included). */
export interface ScoreCorpusOptions extends ReadOptions {
  /** files, directories, JSONL or Parquet files, '-' for stdin */
  inputs: string[];
  /** output path (.jsonl, or .jsonl.gz); without it, give `sink` */
  out?: string;
  /** no `out`: the records' JSONL lines, in input order, go to this function as they are
   *  scored (no file, so no resume and no queue); e.g. \`(t) => process.stdout.write(t)\` */
  sink?: (jsonl: string) => void;
  /** model file (default: the shipped bytes-4x128) */
  model?: string;
  /** backend (default wasm) */
  backend?: BackendName;
  /** chunk size of the forward (default 256) */
  chunkSize?: number;
  /** operand precision of the big products (default RETNET_PRECISION, else 'f32'); part of the run's identity when 'bf16' */
  precision?: Precision;
  /** add every token's log-prob to each record (`logprobs`) */
  perToken?: boolean;
  /** text bytes per shard (default 4 MiB) */
  shardBytes?: number;
  /** continue from OUT.partial of the same run (always on with `queue`) */
  resume?: boolean;
  /** redis://… → coordinate queue workers instead of scoring here */
  queue?: string;
  /** queue run id (default: a digest of inputs, model and options) */
  runId?: string;
  /** shards in flight on the queue at most (default 8) */
  maxInFlight?: number;
  /** queue: give up when Redis is unreachable this long (default 30 s) */
  redisTimeoutMs?: number;
  /** BullMQ attempts per shard job (default 5) */
  attempts?: number;
  /** queue: the coordinator lock's lifetime (default 6 s) and how often a wait is reported (default 30 s) */
  lockTtlMs?: number;
  /** queue: how often a waiting coordinator says what it waits for */
  waitReportMs?: number;
  /** other files the caller will write (e.g. --summary-json): checked like `out` against every file read */
  otherOutputs?: {
    /** name in messages, e.g. --summary-json */
    label: string;
    /** its path */
    path: string;
  }[];
  /** called as documents are written */
  onProgress?: (p: CorpusProgress) => void;
  /** skipped lines and queue events, one line each (default: none) */
  log?: (line: string) => void;
  /** abort the run (the partial output stays, for --resume) */
  signal?: AbortSignal;
}

/** What scoreCorpus() returns (camelCase, like lm.score()). The `--summary-json`
 *  file of `retnet score` holds the same values under their documented
 *  snake_case names: see {@link corpusSummaryJson}. */
export interface CorpusSummary {
  /** the run id */
  runId: string;
  /** absolute path of the output file ('-' with a sink) */
  out: string;
  /** documents in the output, resumed ones included */
  documents: number;
  /** bad records skipped */
  skipped: number;
  /** text bytes of those documents */
  bytes: number;
  /** total bits */
  bits: number;
  /** bits per byte over the corpus */
  bitsPerByte: number;
  /** tokenized models: tokens over all documents, and the corpus perplexity exp(Σ nll / Σ (tokens − 1)) */
  tokens?: number;
  /** the corpus perplexity (tokenized models) */
  perplexity?: number;
  /** documents found in OUT.partial (resume) and not scored again */
  resumedDocuments: number;
  /** shards the corpus was cut into this run (those a resume found written included) */
  shards: number;
  /** wall time of this run */
  seconds: number;
  /** text bytes scored in this run / seconds */
  bytesPerSecond: number;
  /** queue runs: what the coordinator did */
  queue?: CoordinatorStats;
  /** peak resident set size of this process so far */
  peakRssBytes: number;
}

/** The summary as `retnet score --summary-json` writes it: the documented
 *  snake_case field names (run_id, bits_per_byte, resumed_documents,
 *  bytes_per_second, peak_rss_bytes; `queue` as it is). */
export function corpusSummaryJson(s: CorpusSummary): Record<string, unknown> {
  return {
    run_id: s.runId, out: s.out, documents: s.documents, skipped: s.skipped, bytes: s.bytes, bits: s.bits, bits_per_byte: s.bitsPerByte,
    ...(s.tokens !== undefined ? { tokens: s.tokens, perplexity: s.perplexity } : {}),
    resumed_documents: s.resumedDocuments, shards: s.shards, seconds: s.seconds, bytes_per_second: s.bytesPerSecond,
    ...(s.queue ? { queue: s.queue } : {}), peak_rss_bytes: s.peakRssBytes,
  };
}

const modelFile = (model?: string) => (model === undefined ? fileURLToPath(DEFAULT_LM_PATH) : model);
/** The files a model is read from: the .safetensors file, or every file of a model folder (DIR or ORG/NAME). */
const modelReads = (model: string): string | string[] => (RetNetLM.isFolderSpec(model) ? modelFolderFiles(modelFiles(resolveModelDir(model))) : model);

/** Every key of ScoreCorpusOptions (its ReadOptions included): scoreCorpus refuses others. */
const CORPUS_KEYS: readonly string[] = ['inputs', 'out', 'sink', 'model', 'backend', 'chunkSize', 'precision', 'perToken', 'shardBytes', 'resume',
  'queue', 'runId', 'maxInFlight', 'redisTimeoutMs', 'attempts', 'lockTtlMs', 'waitReportMs', 'otherOutputs', 'onProgress', 'log', 'signal',
  'textField', 'idField', 'include', 'strict', 'maxDocBytes', 'stdin', 'exclude'];

/**
 * Score a corpus into `out`, in input order: one JSONL record per document (`id`, `source`, `bytes`,
 * `bits`, `bits_per_byte`; `tokens`, `nll`, `ppl` for tokenized models), written to `out`.partial and
 * renamed when complete (or to `sink`, without resume or queue). With `queue`, shards go to `retnet worker`s through BullMQ on Redis.
 * Returns the summary.
 *
 * @example
 * ```ts
 * import { scoreCorpus } from 'retnet';
 * const summary = await scoreCorpus({ inputs: ['corpus.jsonl'], out: 'scores.jsonl' });
 * console.log(summary.documents, summary.bitsPerByte);
 * ```
 */
export async function scoreCorpus(o: ScoreCorpusOptions): Promise<CorpusSummary> {
  // a misspelt option is an error, not ignored ({ textfield: 'body' } would otherwise read the default field)
  if (o === null || typeof o !== 'object') throw new RetNetError('E_OPTION', `scoreCorpus takes an options object, e.g. { inputs: ['corpus.jsonl'], out: 'scores.jsonl' } (got ${o === null ? 'null' : typeof o})`);
  checkKnownKeys(o, CORPUS_KEYS);
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const shardBytes = o.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 1) throw errors.option('shardBytes', 'a positive integer', shardBytes);
  const maxDocBytes = o.maxDocBytes ?? DEFAULT_MAX_DOC_BYTES;
  // (a JSONL line is one Buffer of at most this size; Node's Buffer limit is 4 GiB, a string's 512 MiB)
  if (!Number.isSafeInteger(maxDocBytes) || maxDocBytes < 1 || maxDocBytes > 2 ** 31) throw errors.option('maxDocBytes', 'an integer from 1 to 2^31', maxDocBytes);
  if ((o.out === undefined) === (o.sink === undefined)) throw errors.option('out', 'an output path, or else a sink (one of the two)', o.out);
  if (o.out === undefined && (o.queue !== undefined || o.resume)) throw errors.option(o.queue !== undefined ? 'queue' : 'resume', 'used with an output file (out), not a sink', o.queue !== undefined ? '(a queue URL)' : o.resume);
  const target = o.queue !== undefined ? parseRedisUrl(o.queue) : undefined;
  const temporaries = o.out === undefined ? [] : [partialPath(o.out), partialMetaPath(o.out), `${partialPath(o.out)}.gz`, partialLockPath(o.out)];
  const files = expandInputs(o.inputs, { include: o.include, exclude: temporaries, excludeScores: o.out === undefined ? [] : [o.out], onSkip: log });
  const model = modelFile(o.model);
  const reads = modelReads(model);
  refuseOutputsOverInputs({ out: o.out, temporaries, others: o.otherOutputs, inputs: files, model: reads });
  let modelSha: string;
  try { modelSha = await modelSha256(reads); } catch (e) { throw unreadableModel(model, e); }
  const precision = o.precision ?? ((o.backend ?? 'wasm') === 'wasm' ? precisionFromEnv() : 'f32'); // RETNET_PRECISION: wasm only
  if (!PRECISIONS.includes(precision)) throw errors.option('precision', "'f32' or 'bf16'", precision);
  const score: ShardScoreOptions = { backend: o.backend, chunkSize: o.chunkSize, perToken: o.perToken === true, ...(precision === 'bf16' ? { precision } : {}) };
  // the kernel engine asked for changes the scores' last bits: a resume under another one is refused
  // (left out at 'auto', so identities made without it stay the same)
  // a queue's workers compute, each with its own; RETNET_KERNELS only where kernels run (wasm), as
  // RETNET_PRECISION (before: a bad value failed a js run)
  const kreq = target === undefined && (o.backend ?? 'wasm') === 'wasm' ? kernelsFromEnv() : 'auto';
  const runOptions = {
    textField: o.textField ?? 'text', idField: o.idField ?? 'id', include: o.include, strict: o.strict === true, shardBytes, maxDocBytes, ...score,
    ...(kreq !== 'auto' ? { kernels: kreq } : {}),
  };
  // stdin's text is not known until read, and not the same twice: a run with it can neither be resumed
  // nor adopt (or be adopted by) another run's queue jobs — its identity gets a fresh nonce (before: every
  // stdin was ['-', 0, 0], so another stdin's partial or finished jobs of the same byte lengths passed)
  const stdinRun = files.some((f) => f.path === '-');
  if (stdinRun && o.resume) throw errors.option('resume', "left out when an input is stdin ('-'): what came on stdin before cannot be checked", true);
  const idOptions: Record<string, unknown> = stdinRun ? { ...runOptions, stdinNonce: randomBytes(8).toString('hex') } : runOptions;
  const runId = o.runId ?? runIdOf(files, modelSha, idOptions);
  if (!RUN_ID_RE.test(runId)) throw errors.option('runId', 'letters, digits, _ . - (at most 64)', runId);
  const identity: RunIdentity = { runId, model: modelSha, inputs: inputIdentity(files), options: sortedDefined(idOptions) };
  // Local mode loads the model before touching the output; the queue mode only needs its digest.
  const lm = target === undefined ? await RetNetLM.load(model) : undefined;
  let writer: OrderedWriter | undefined;
  try {
    writer = o.out === undefined ? OrderedWriter.toSink(o.sink!) : await OrderedWriter.open(o.out, { identity, resume: o.resume === true || target !== undefined });
    const w = writer;
    if (w.resumed.documents > 0) log(`resuming run ${runId}: ${w.resumed.documents} documents already in ${partialPath(o.out!)}`);
    const progress: ReadProgress = { rawBytes: 0, totalRawBytes: files.reduce((a, f) => a + f.size, 0) };
    let skipped = 0, shown = 0, shards = 0;
    const onSkip = (s: SkippedItem) => {
      skipped++;
      if (shown < 20) log(`${s.source}:${s.line}: skipped: ${s.reason}`);
      else if (shown === 20) log('(more skipped lines are not shown; the summary counts them)');
      shown++;
    };
    let textRead = 0; // text bytes of the shards planned so far
    /** progress with `docs`/`bytes` more than the written ones scored in the shard in progress */
    const report = (docs = 0, bytes = 0) => {
      if (!o.onProgress) return;
      const scored = w.totals.bytes + bytes;
      const readShare = progress.totalRawBytes > 0 ? Math.min(1, progress.rawBytes / progress.totalRawBytes) : 0;
      o.onProgress({
        documents: w.totals.documents, documentsScored: w.totals.documents + docs, bytes: scored, bytesThisRun: scored - w.resumed.bytes,
        seconds: (performance.now() - t0) / 1000, rawBytes: progress.rawBytes, totalRawBytes: progress.totalRawBytes,
        fraction: readShare * (textRead > 0 ? Math.min(1, scored / textRead) : 0),
      });
    };
    const counted = (async function* () {
      let documents = 0;
      for await (const s of planShards(readFiles(files, { ...o, maxDocBytes, textOnly: RetNetLM.isFolderSpec(model) }, progress), shardBytes, onSkip)) {
        // resume: the kept records must be these documents (before any of them is scored or skipped)
        const cut = await w.checkResumed(s.first, s.docs);
        if (cut !== null) log(`resuming: ${cut}`);
        shards++; textRead += s.bytes; documents = s.first + s.docs.length;
        yield s;
      }
      const cut = await w.checkResumedEnd(documents);
      if (cut !== null) log(`resuming: ${cut}`);
    })();
    let queueStats: CoordinatorStats | undefined;
    if (target === undefined) {
      for await (const s of counted) {
        if (o.signal?.aborted) throw errors.aborted(o.signal.reason);
        const from = Math.max(0, w.nextDoc - s.first);
        if (from >= s.docs.length) continue;
        // within the shard: documents whose score is done, and the share of its text (tokens done / tokens)
        const docs = s.docs.slice(from), docBytes = docs.reduce((a, d) => a + d.bytes.length, 0);
        let docsDone = 0, share = 0;
        const recs = await scoreDocs(lm!, docs, score, {
          onProgress: (done, total) => { share = total > 0 ? done / total : 1; report(docsDone, Math.round(share * docBytes)); },
          onScored: () => { docsDone++; report(docsDone, Math.round(share * docBytes)); },
        }, o.signal);
        w.put(s.first + from, recs);
        report();
      }
    } else {
      const { coordinate } = await import('./queue/coordinator.js'); // BullMQ + ioredis: loaded only for a queue run
      queueStats = await coordinate(counted, w, {
        target, runId, modelSha, score, fingerprint: runIdOf(files, modelSha, idOptions), lockTtlMs: o.lockTtlMs, waitReportMs: o.waitReportMs, maxInFlight: o.maxInFlight, redisTimeoutMs: o.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS,
        attempts: o.attempts, log, signal: o.signal, onShardDone: () => report(),
      });
    }
    if (w.totals.documents === 0) {
      throw errors.corpus(`empty corpus: no documents in ${o.inputs.join(', ')}${skipped ? ` (${skipped} lines skipped)` : ''}`);
    }
    await w.finish();
    const seconds = (performance.now() - t0) / 1000;
    const t = w.totals;
    return {
      runId, out: o.out === undefined ? '-' : resolve(o.out), documents: t.documents, skipped, bytes: t.bytes, bits: t.bits,
      bitsPerByte: t.scoredBytes > 0 ? t.bits / t.scoredBytes : 0,
      ...(t.tokens > 0 ? { tokens: t.tokens, perplexity: t.predicted > 0 ? Math.exp(t.nll / t.predicted) : 1 } : {}),
      resumedDocuments: w.resumed.documents, shards, seconds,
      bytesPerSecond: (t.bytes - w.resumed.bytes) / Math.max(seconds, 1e-9), ...(queueStats ? { queue: queueStats } : {}),
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    writer?.close();
    await lm?.close();
  }
}

/** Options of {@link corpusWorker}. */
export interface CorpusWorkerOptions {
  /** redis://… */
  queue: string;
  /** the model: the coordinator's (default: the shipped byte LM) */
  model?: string;
  /** only this run's shards (default: every run on the Redis) */
  runId?: string;
  /** how long a killed worker's shard waits before another worker takes it (default 30 s) */
  lockDurationMs?: number;
  /** give up when Redis is unreachable this long (default 30 s) */
  redisTimeoutMs?: number;
  /** one line per event (default: none) */
  log?: (line: string) => void;
  /** stop taking shards; the current one is finished */
  signal?: AbortSignal;
}

/** A model that cannot be read: the loader's own error as it is, a file system's as E_WEIGHTS with its code. */
function unreadableModel(model: string, e: unknown): Error {
  if (e instanceof RetNetError) return e;
  return errors.weights(`cannot read ${model}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
}

/** Take shards from the queue and score them until `signal` aborts (or Redis is lost). */
export async function corpusWorker(o: CorpusWorkerOptions): Promise<WorkerStats> {
  const target = parseRedisUrl(o.queue);
  const model = modelFile(o.model);
  let modelSha: string;
  try { modelSha = await modelSha256(modelReads(model)); } catch (e) { throw unreadableModel(model, e); }
  const { runWorker } = await import('./queue/worker.js'); // BullMQ + ioredis: loaded only here
  const lm = await RetNetLM.load(model);
  try {
    return await runWorker({
      target, lm, modelSha, modelLabel: model, runId: o.runId, lockDurationMs: o.lockDurationMs,
      redisTimeoutMs: o.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS, log: o.log ?? (() => {}), signal: o.signal,
    });
  } finally { await lm.close(); }
}
