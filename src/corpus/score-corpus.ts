// scoreCorpus: the library entry behind `retnet score --out` — inputs →
// documents → shards → scores (here, or on queue workers) → the ordered,
// atomic output file, with a summary. corpusWorker: the entry behind
// `retnet worker`.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errors } from '../errors.js';
import { DEFAULT_LM_PATH, RetNetLM } from '../lm/retnet-lm.js';
import type { BackendName } from '../options.js';
import { inputIdentity, modelSha256, RUN_ID_RE, runIdOf, sortedDefined } from './digest.js';
import { modelFiles, modelFolderFiles, resolveModelDir } from '../model/fla.js';
import { expandInputs } from './inputs.js';
import { DEFAULT_MAX_DOC_BYTES } from './jsonl.js';
import { refuseOutputsOverInputs } from './output-safety.js';
import { coordinate, type CoordinatorStats } from './queue/coordinator.js';
import { parseRedisUrl } from './queue/redis.js';
import { runWorker, type WorkerStats } from './queue/worker.js';
import { readFiles, type ReadProgress } from './readers.js';
import { scoreDocs, type ShardScoreOptions } from './score-shard.js';
import { DEFAULT_SHARD_BYTES, planShards } from './shards.js';
import type { ReadOptions, SkippedItem } from './types.js';
import { OrderedWriter, partialMetaPath, partialPath, type RunIdentity } from './writer.js';

export const DEFAULT_REDIS_TIMEOUT_MS = 30_000;

export interface CorpusProgress {
  /** documents written (resumed ones included) */
  documents: number;
  /** text bytes written */
  bytes: number;
  /** text bytes scored in this run, and its seconds so far */
  bytesThisRun: number;
  seconds: number;
  /** input read so far / in all, on disk (for an ETA; 0 total when unknown) */
  rawBytes: number;
  totalRawBytes: number;
}

export interface ScoreCorpusOptions extends ReadOptions {
  inputs: string[];
  /** output path (.jsonl, or .jsonl.gz) */
  out: string;
  /** model file (default: the shipped bytes-4x128) */
  model?: string;
  backend?: BackendName;
  chunkSize?: number;
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
  redisTimeoutMs?: number;
  /** BullMQ attempts per shard job (default 5) */
  attempts?: number;
  /** queue: the coordinator lock's lifetime (default 6 s) and how often a wait is reported (default 30 s) */
  lockTtlMs?: number;
  waitReportMs?: number;
  /** other files the caller will write (e.g. --summary-json): checked like `out` against every file read */
  otherOutputs?: { label: string; path: string }[];
  onProgress?: (p: CorpusProgress) => void;
  /** skipped lines and queue events, one line each (default: none) */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface CorpusSummary {
  run_id: string;
  out: string;
  documents: number;
  skipped: number;
  bytes: number;
  bits: number;
  bits_per_byte: number;
  /** tokenized models: tokens over all documents, and the corpus perplexity exp(Σ nll / Σ (tokens − 1)) */
  tokens?: number;
  perplexity?: number;
  /** documents found in OUT.partial (resume) and not scored again */
  resumed_documents: number;
  shards: number;
  seconds: number;
  /** text bytes scored in this run / seconds */
  bytes_per_second: number;
  queue?: CoordinatorStats;
  /** peak resident set size of this process so far */
  peak_rss_bytes: number;
}

const modelFile = (model?: string) => (model === undefined ? fileURLToPath(DEFAULT_LM_PATH) : model);
/** The files a model is read from: the .safetensors file, or every file of a model folder (DIR or ORG/NAME). */
const modelReads = (model: string): string | string[] => (RetNetLM.isFolderSpec(model) ? modelFolderFiles(modelFiles(resolveModelDir(model))) : model);

/** Score a corpus into `out`, in input order; returns the summary. */
export async function scoreCorpus(o: ScoreCorpusOptions): Promise<CorpusSummary> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const shardBytes = o.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 1) throw errors.option('shardBytes', 'a positive integer', shardBytes);
  const maxDocBytes = o.maxDocBytes ?? DEFAULT_MAX_DOC_BYTES;
  // (a JSONL line is one Buffer of at most this size; Node's Buffer limit is 4 GiB, a string's 512 MiB)
  if (!Number.isSafeInteger(maxDocBytes) || maxDocBytes < 1 || maxDocBytes > 2 ** 31) throw errors.option('maxDocBytes', 'an integer from 1 to 2^31', maxDocBytes);
  const target = o.queue !== undefined ? parseRedisUrl(o.queue) : undefined;
  const temporaries = [partialPath(o.out), partialMetaPath(o.out), `${partialPath(o.out)}.gz`];
  const files = expandInputs(o.inputs, { include: o.include, exclude: [o.out, ...temporaries] });
  const model = modelFile(o.model);
  const reads = modelReads(model);
  refuseOutputsOverInputs({ out: o.out, temporaries, others: o.otherOutputs, inputs: files, model: reads });
  let modelSha: string;
  try { modelSha = await modelSha256(reads); } catch (e) { throw errors.weights(`cannot read ${model}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  const score: ShardScoreOptions = { backend: o.backend, chunkSize: o.chunkSize, perToken: o.perToken === true };
  const runOptions = {
    textField: o.textField ?? 'text', idField: o.idField ?? 'id', include: o.include, strict: o.strict === true, shardBytes, maxDocBytes, ...score,
  };
  const runId = o.runId ?? runIdOf(files, modelSha, runOptions);
  if (!RUN_ID_RE.test(runId)) throw errors.option('runId', 'letters, digits, _ . - (at most 64)', runId);
  const identity: RunIdentity = { runId, model: modelSha, inputs: inputIdentity(files), options: sortedDefined(runOptions) };
  // Local mode loads the model before touching the output; the queue mode only needs its digest.
  const lm = target === undefined ? await RetNetLM.load(model) : undefined;
  let writer: OrderedWriter | undefined;
  try {
    writer = await OrderedWriter.open(o.out, { identity, resume: o.resume === true || target !== undefined });
    const w = writer;
    if (w.resumed.documents > 0) log(`resuming run ${runId}: ${w.resumed.documents} documents already in ${partialPath(o.out)}`);
    const progress: ReadProgress = { rawBytes: 0, totalRawBytes: files.reduce((a, f) => a + f.size, 0) };
    let skipped = 0, shown = 0, shards = 0;
    const onSkip = (s: SkippedItem) => {
      skipped++;
      if (shown < 20) log(`${s.source}:${s.line}: skipped: ${s.reason}`);
      else if (shown === 20) log('(more skipped lines are not shown; the summary counts them)');
      shown++;
    };
    const report = () => o.onProgress?.({
      documents: w.totals.documents, bytes: w.totals.bytes, bytesThisRun: w.totals.bytes - w.resumed.bytes,
      seconds: (performance.now() - t0) / 1000, rawBytes: progress.rawBytes, totalRawBytes: progress.totalRawBytes,
    });
    const counted = (async function* () { for await (const s of planShards(readFiles(files, { ...o, maxDocBytes }, progress), shardBytes, onSkip)) { shards++; yield s; } })();
    let queueStats: CoordinatorStats | undefined;
    if (target === undefined) {
      for await (const s of counted) {
        if (o.signal?.aborted) throw errors.aborted(o.signal.reason);
        const from = Math.max(0, w.nextDoc - s.first);
        if (from >= s.docs.length) continue;
        const before = w.totals.bytes;
        const recs = await scoreDocs(lm!, s.docs.slice(from), score, (done) => o.onProgress?.({
          documents: w.totals.documents, bytes: before + done, bytesThisRun: before + done - w.resumed.bytes,
          seconds: (performance.now() - t0) / 1000, rawBytes: progress.rawBytes, totalRawBytes: progress.totalRawBytes,
        }), o.signal);
        w.put(s.first + from, recs);
        report();
      }
    } else {
      queueStats = await coordinate(counted, w, {
        target, runId, modelSha, score, fingerprint: runIdOf(files, modelSha, runOptions), lockTtlMs: o.lockTtlMs, waitReportMs: o.waitReportMs, maxInFlight: o.maxInFlight, redisTimeoutMs: o.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS,
        attempts: o.attempts, log, signal: o.signal, onShardDone: report,
      });
    }
    if (w.totals.documents === 0) {
      throw errors.corpus(`empty corpus: no documents in ${o.inputs.join(', ')}${skipped ? ` (${skipped} lines skipped)` : ''}`);
    }
    await w.finish();
    const seconds = (performance.now() - t0) / 1000;
    const t = w.totals;
    return {
      run_id: runId, out: resolve(o.out), documents: t.documents, skipped, bytes: t.bytes, bits: t.bits,
      bits_per_byte: t.scoredBytes > 0 ? t.bits / t.scoredBytes : 0,
      ...(t.tokens > 0 ? { tokens: t.tokens, perplexity: t.predicted > 0 ? Math.exp(t.nll / t.predicted) : 1 } : {}),
      resumed_documents: w.resumed.documents, shards, seconds,
      bytes_per_second: (t.bytes - w.resumed.bytes) / Math.max(seconds, 1e-9), ...(queueStats ? { queue: queueStats } : {}),
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    writer?.close();
    await lm?.close();
  }
}

export interface CorpusWorkerOptions {
  /** redis://… */
  queue: string;
  model?: string;
  runId?: string;
  lockDurationMs?: number;
  redisTimeoutMs?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Take shards from the queue and score them until `signal` aborts (or Redis is lost). */
export async function corpusWorker(o: CorpusWorkerOptions): Promise<WorkerStats> {
  const target = parseRedisUrl(o.queue);
  const model = modelFile(o.model);
  let modelSha: string;
  try { modelSha = await modelSha256(modelReads(model)); } catch (e) { throw errors.weights(`cannot read ${model}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  const lm = await RetNetLM.load(model);
  try {
    return await runWorker({
      target, lm, modelSha, modelLabel: model, runId: o.runId, lockDurationMs: o.lockDurationMs,
      redisTimeoutMs: o.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS, log: o.log ?? (() => {}), signal: o.signal,
    });
  } finally { await lm.close(); }
}
