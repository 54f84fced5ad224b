// A queue worker: finds the runs that have shards to score (the RUNS_KEY
// hash), takes their jobs and scores them with the local LM's worker pool,
// one shard at a time. The processor is a pure function of the job's data
// (and the local model): it checks the payload and the model digest first,
// and fails a bad job with its reason (never retried) while it keeps running.
// SIGINT/SIGTERM (the caller's `signal`): stop taking jobs and finish the
// current shard; a worker killed outright leaves its shard to BullMQ's
// stalled-job check, which hands it to another worker.
import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { RetNetLM } from '../../lm/retnet-lm.js';
import { errors, quote } from '../../errors.js';
import { RUN_ID_RE } from '../digest.js';
import { scoreDocs } from '../score-shard.js';
import type { DocRecord } from '../types.js';
import { decodeShard, queueName, RUNS_KEY } from './jobs.js';
import { connectionOptions, RedisLink, type RedisTarget } from './redis.js';
import { Turns } from '../../runtime/turns.js';

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  /** the Redis to take jobs from */
  target: RedisTarget;
  /** the model that scores */
  lm: RetNetLM;
  /** SHA-256 of the model file `lm` was loaded from */
  modelSha: string;
  /** this worker's model file, for messages */
  modelLabel: string;
  /** only this run's jobs (default: every run registered on the Redis) */
  runId?: string;
  /** BullMQ lock duration: how long a killed worker's shard waits before another takes it (default 30 s) */
  lockDurationMs?: number;
  /** give up when Redis is unreachable this long */
  redisTimeoutMs: number;
  /** how often the list of runs is read (default 500 ms) */
  discoverMs?: number;
  /** one line per event */
  log: (line: string) => void;
  /** abort = stop taking jobs, finish the current one, return */
  signal?: AbortSignal;
}

/** What a worker did. */
export interface WorkerStats {
  /** shards scored */
  scored: number;
  /** jobs failed (model mismatch, malformed, non-finite scores) */
  failed: number;
  /** whether it reached Redis (false: `signal` stopped it while it was still waiting for the connection) */
  connected: boolean;
}

/** The processor: job data (+ the local model) → records, or a failure with its reason. */
export async function processShardJob(data: unknown, lm: RetNetLM, modelSha: string, modelLabel: string): Promise<DocRecord[]> {
  if (typeof data === 'object' && data !== null && BAD_DATA in data) throw new UnrecoverableError(`malformed job: ${String((data as Record<string, unknown>)[BAD_DATA])}`);
  const d = decodeShard(data);
  if ('error' in d) throw new UnrecoverableError(`malformed job: ${d.error}`);
  if (d.job.model !== modelSha) {
    throw new UnrecoverableError(`model mismatch: the job was made for a model with SHA-256 ${d.job.model.slice(0, 16)}…, this worker's --model ${modelLabel} has ${modelSha.slice(0, 16)}…; start the worker with the coordinator's model`);
  }
  try {
    return await scoreDocs(lm, d.docs, d.job.options);
  } catch (e) {
    // a non-finite score comes out the same on every worker: failed, not retried
    if ((e as { code?: string }).code === 'E_INPUT') throw new UnrecoverableError((e as Error).message);
    throw e;
  }
}

/** A BullMQ Worker that fails a job whose stored data is not JSON (BullMQ itself
 *  throws while it builds the job, leaving it active until it stalls, forever):
 *  the job is built with a marker instead, and the processor fails it, not retried. */
const BAD_DATA = '__retnetBadData';
class CheckedWorker extends Worker {
  protected override createJob(data: Parameters<Worker['createJob']>[0], jobId: string): Job {
    try { JSON.parse(data.data || '{}'); } catch (e) {
      data = { ...data, data: JSON.stringify({ [BAD_DATA]: `data is not JSON (${(e as Error).message})` }) };
    }
    try { JSON.parse(data.opts as unknown as string || '{}'); } catch { data = { ...data, opts: '{}' as never }; }
    return super.createJob(data, jobId);
  }
}

/** Entries of the runs hash that name a usable run: [run id, queue]; the others are reported once and skipped. */
function validRuns(hash: Record<string, string>, warned: Set<string>, log: (line: string) => void): string[] {
  const ok: string[] = [];
  for (const [id, value] of Object.entries(hash)) {
    let why = '';
    if (!RUN_ID_RE.test(id)) why = 'not a run id (letters, digits, _ . -, at most 64)';
    else {
      let v: unknown;
      try { v = JSON.parse(value); } catch { v = undefined; }
      if (typeof v !== 'object' || v === null || (v as { queue?: unknown }).queue !== queueName(id)) why = `its value is not {"queue":"${queueName(id)}",…}`;
    }
    if (why === '') { ok.push(id); continue; }
    const key = `${id}\u0000${value}`;
    if (!warned.has(key)) { warned.add(key); log(`worker: skipping the entry ${quote(id)} of ${RUNS_KEY}: ${why}`); }
  }
  return ok;
}

/** Take shard jobs from the queue and score them until `signal` aborts or Redis is lost. */
export async function runWorker(o: WorkerOptions): Promise<WorkerStats> {
  // a run id no coordinator can make would wait forever on a queue nobody fills
  if (o.runId !== undefined && !RUN_ID_RE.test(o.runId)) throw errors.option('runId', 'letters, digits, _ . - (at most 64), as retnet score makes them', o.runId);
  const stats: WorkerStats = { scored: 0, failed: 0, connected: false };
  const link = new RedisLink(o.target, o.redisTimeoutMs, o.log, 'worker');
  const workers = new Map<string, Worker>();
  const turns = new Turns(); // one shard at a time on this machine's pool, whatever run it belongs to
  const lockDuration = o.lockDurationMs ?? 30_000;
  const warned = new Set<string>();
  const processor = (job: Job) => turns.run(async () => {
    const n = Array.isArray(job.data?.ids) ? job.data.ids.length : '?';
    o.log(`worker: ${job.queueName} ${job.id}: started (${n} document${n === 1 ? '' : 's'})`);
    const t0 = performance.now();
    const out = await processShardJob(job.data, o.lm, o.modelSha, o.modelLabel);
    const bytes = out.reduce((a, r) => a + r.bytes, 0);
    const sec = (performance.now() - t0) / 1000;
    o.log(`worker: ${job.queueName} ${job.id}: scored ${out.length} documents, ${bytes} bytes in ${sec.toFixed(2)} s`);
    stats.scored++;
    return out;
  });
  const add = (runId: string) => {
    const w = new CheckedWorker(queueName(runId), processor, {
      connection: connectionOptions(o.target) as ConnectionOptions, concurrency: 1,
      lockDuration, stalledInterval: Math.max(500, Math.floor(lockDuration / 2)), maxStalledCount: 3,
    });
    w.on('error', () => { /* connection trouble: the link's watchdog reports it */ });
    w.on('failed', (job, err) => {
      stats.failed++;
      o.log(`worker: ${job ? `${job.queueName} ${job.id}` : 'a job'} failed: ${err.message}`);
    });
    workers.set(runId, w);
  };
  const stopping = new Promise<void>((res) => {
    if (o.signal?.aborted) res();
    o.signal?.addEventListener('abort', () => res(), { once: true });
  });
  try {
    await Promise.race([link.ready().then(() => { stats.connected = true; }), stopping]);
    // stopped before Redis answered (a signal while it retries an unreachable address): it never
    // connected, so it must not say so (before: "connected to …" was logged after the race either way)
    if (!stats.connected) {
      o.log(`worker: stopped while waiting for Redis at ${o.target.display} (never connected; no shards taken)`);
      return stats;
    }
    o.log(`worker: connected to ${o.target.display}; model ${o.modelLabel} (SHA-256 ${o.modelSha.slice(0, 16)}…)`);
    while (!o.signal?.aborted) {
      const runs = o.runId !== undefined ? [o.runId] : validRuns(await link.guard(link.client.hgetall(RUNS_KEY)), warned, o.log);
      for (const r of runs) if (!workers.has(r)) add(r);
      for (const [r, w] of workers) if (!runs.includes(r)) { workers.delete(r); void w.close(); }
      await link.guard(Promise.race([new Promise((res) => setTimeout(res, o.discoverMs ?? 500)), stopping]));
    }
    o.log('worker: stopping: no new shards; finishing the current one');
    await link.guard(Promise.all([...workers.values()].map((w) => w.close())));
    return stats;
  } catch (e) {
    // BullMQ's disconnect waits for its clients' 'end'; never let a dead Redis hold the exit
    await Promise.race([Promise.all([...workers.values()].map((w) => w.disconnect().catch(() => {}))), new Promise((r) => setTimeout(r, 1000))]);
    if ((e as { code?: string }).code === 'E_QUEUE') throw e;
    throw errors.queue(`worker: ${(e as Error).message}`, e);
  } finally {
    link.close();
  }
}
