// The coordinator: shards → BullMQ jobs on the run's queue, with a bounded
// number of shards in flight (enqueued, running, or finished but waiting for
// an earlier shard to be written), results → the ordered writer.
//
// The coordinator, not Redis, is the authority on which shards are done: the
// output file holds every finished shard. A shard is written exactly once,
// however often BullMQ ran it; a job that vanished (Redis restarted without
// its data, a job removed by hand) is enqueued again; a restarted coordinator
// first looks for its shards' jobs (and their results) on the queue.
import { Queue, type ConnectionOptions } from 'bullmq';
import { errors } from '../../errors.js';
import type { ShardScoreOptions } from '../score-shard.js';
import type { Shard } from '../shards.js';
import type { OrderedWriter } from '../writer.js';
import { checkResult, encodeShard, jobIdOf, queueName, RUNS_KEY } from './jobs.js';
import { connectionOptions, redact, RedisLink, type RedisTarget } from './redis.js';

export interface CoordinatorOptions {
  target: RedisTarget;
  runId: string;
  modelSha: string;
  score: ShardScoreOptions;
  /** shards in flight at most (default 8) */
  maxInFlight?: number;
  redisTimeoutMs: number;
  /** how often job states are polled (default 100 ms) */
  pollMs?: number;
  /** BullMQ attempts per job (default 5: a worker killed or stalled more often than that fails the run) */
  attempts?: number;
  log: (line: string) => void;
  signal?: AbortSignal;
  /** called when a shard's records are handed to the writer */
  onShardDone?: (shard: Shard) => void;
}

export interface CoordinatorStats {
  /** jobs this coordinator put on the queue */
  enqueued: number;
  /** of those, shards enqueued again because their job vanished */
  reenqueued: number;
  /** shards whose job an earlier coordinator of the run had enqueued */
  adopted: number;
  /** shards already in the output file (resumed) */
  alreadyWritten: number;
}

interface InFlight { shard: Shard; done: boolean }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function coordinate(shards: AsyncIterable<Shard>, writer: OrderedWriter, o: CoordinatorOptions): Promise<CoordinatorStats> {
  const stats: CoordinatorStats = { enqueued: 0, reenqueued: 0, adopted: 0, alreadyWritten: 0 };
  const maxInFlight = o.maxInFlight ?? 8, pollMs = o.pollMs ?? 100, attempts = o.attempts ?? 5;
  const link = new RedisLink(o.target, o.redisTimeoutMs, o.log, 'coordinator');
  let queue: Queue | undefined;
  try {
    await link.ready();
    const name = queueName(o.runId);
    queue = new Queue(name, { connection: connectionOptions(o.target) as ConnectionOptions });
    queue.on('error', () => { /* the link's watchdog reports connection trouble, once */ });
    const q = queue;
    await link.guard(link.client.hset(RUNS_KEY, o.runId, JSON.stringify({ queue: name, model: o.modelSha })));
    o.log(`coordinator: run ${o.runId} on queue ${name} at ${o.target.display}`);
    const perToken = o.score.perToken === true;
    const inFlight = new Map<number, InFlight>();
    const it = shards[Symbol.asyncIterator]();
    let exhausted = false;
    const jobOpts = { attempts, backoff: { type: 'fixed' as const, delay: 500 }, removeOnComplete: false, removeOnFail: false };

    const enqueue = async (s: Shard, again: boolean) => {
      await link.guard(q.add('shard', encodeShard(s, o.runId, o.modelSha, o.score), { ...jobOpts, jobId: jobIdOf(s.index) }));
      stats.enqueued++;
      if (again) { stats.reenqueued++; o.log(`coordinator: shard ${s.index}: its job vanished from the queue; enqueued again`); }
    };

    while (true) {
      if (o.signal?.aborted) throw errors.aborted(o.signal.reason);
      // Fill: take shards until the in-flight bound.
      while (!exhausted && inFlight.size < maxInFlight) {
        const n = await it.next();
        if (n.done) { exhausted = true; break; }
        const s = n.value;
        if (s.first + s.docs.length <= writer.nextDoc) { stats.alreadyWritten++; continue; }
        const state = await link.guard(q.getJobState(jobIdOf(s.index)));
        if (state === 'unknown') await enqueue(s, false);
        else {
          stats.adopted++;
          if (state === 'failed') { const job = await link.guard(q.getJob(jobIdOf(s.index))); await link.guard(job!.retry('failed')); }
        }
        inFlight.set(s.index, { shard: s, done: false });
      }
      if (inFlight.size === 0 && exhausted) break;
      // Poll the in-flight jobs.
      let progressed = false;
      for (const [idx, f] of inFlight) {
        if (f.done) continue;
        const id = jobIdOf(idx);
        const state = await link.guard(q.getJobState(id));
        if (state === 'completed') {
          const job = await link.guard(q.getJob(id));
          if (!job) { await enqueue(f.shard, true); continue; }
          const recs = checkResult(job.returnvalue, f.shard, perToken);
          if (typeof recs === 'string') {
            o.log(`coordinator: shard ${idx}: result rejected (${recs}); enqueued again`);
            await link.guard(job.remove());
            await enqueue(f.shard, false);
            continue;
          }
          writer.put(f.shard.first, recs);
          f.done = true; progressed = true;
          o.onShardDone?.(f.shard);
          await link.guard(job.remove());
        } else if (state === 'failed') {
          const job = await link.guard(q.getJob(id));
          throw errors.queue(`shard ${idx} failed on a worker: ${redact(job?.failedReason ?? 'no reason given', o.target)}`);
        } else if (state === 'unknown') {
          await enqueue(f.shard, true);
        }
      }
      // Release shards the writer has passed (written, or held results now contiguous).
      for (const [idx, f] of inFlight) if (f.done && f.shard.first + f.shard.docs.length <= writer.nextDoc) inFlight.delete(idx);
      if (!progressed) await link.guard(sleep(pollMs));
    }
    await link.guard(link.client.hdel(RUNS_KEY, o.runId));
    await link.guard(q.obliterate({ force: true }));
    return stats;
  } finally {
    // BullMQ's disconnect waits for its client's 'end'; never let a dead Redis hold the exit
    if (queue) await Promise.race([queue.disconnect().catch(() => {}), sleep(1000)]);
    link.close();
  }
}
