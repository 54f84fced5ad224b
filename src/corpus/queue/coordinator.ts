// The coordinator: shards → BullMQ jobs on the run's queue, with a bounded
// number of shards in flight (enqueued, running, or finished but waiting for
// an earlier shard to be written), results → the ordered writer.
//
// The coordinator, not Redis, is the authority on which shards are done: the
// output file holds every finished shard. A shard is written exactly once,
// however often BullMQ ran it; a job that vanished (Redis restarted without
// its data, a job removed by hand) is enqueued again; a restarted coordinator
// first looks for its shards' jobs (and their results) on the queue.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Queue, type ConnectionOptions } from 'bullmq';
import { errors } from '../../errors.js';
import type { ShardScoreOptions } from '../score-shard.js';
import type { Shard } from '../shards.js';
import type { OrderedWriter } from '../writer.js';
import { checkResult, encodeShard, jobIdOf, queueName, RUNS_KEY } from './jobs.js';
import { connectionOptions, redact, RedisLink, type RedisTarget } from './redis.js';

/** Options of {@link coordinate}. */
export interface CoordinatorOptions {
  /** the Redis to use */
  target: RedisTarget;
  /** the run id (names the queue) */
  runId: string;
  /** the model's SHA-256 (every job carries it; workers check theirs) */
  modelSha: string;
  /** how workers score (chunk size, per-token output) */
  score: ShardScoreOptions;
  /** shards in flight at most (default 8) */
  maxInFlight?: number;
  /** give up when Redis is unreachable this long */
  redisTimeoutMs: number;
  /** how often job states are polled (default 100 ms) */
  pollMs?: number;
  /** BullMQ attempts per job (default 5: a worker killed or stalled more often than that fails the run) */
  attempts?: number;
  /** one line per event */
  log: (line: string) => void;
  /** abort the run */
  signal?: AbortSignal;
  /** digest of the model, inputs and options: a job or a coordinator of the same run id with another one is not this run's */
  fingerprint?: string;
  /** the coordinator lock's time to live (default 6 s; refreshed every second) */
  lockTtlMs?: number;
  /** how often a coordinator that is waiting says what for (default 30 s) */
  waitReportMs?: number;
  /** called when a shard's records are handed to the writer */
  onShardDone?: (shard: Shard) => void;
}

/** What a coordinator did. */
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

interface InFlight { shard: Shard; done: boolean; rejected: number }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The key of a run's coordinator lock: one coordinator per run id at a time. */
export const lockKeyOf = (runId: string) => `retnet:coordinator:${runId}`;
// Refresh our lock, or take it again if it vanished (Redis restarted without its data); 0 when another holds it.
const REFRESH = `local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const UNREGISTER = `local v = redis.call('HGET', KEYS[1], ARGV[1])
if v == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0`;

/** Put shards on the queue (at most `maxInFlight` at a time) and hand the results to the writer in order. */
export async function coordinate(shards: AsyncIterable<Shard>, writer: OrderedWriter, o: CoordinatorOptions): Promise<CoordinatorStats> {
  const stats: CoordinatorStats = { enqueued: 0, reenqueued: 0, adopted: 0, alreadyWritten: 0 };
  const maxInFlight = o.maxInFlight ?? 8, pollMs = o.pollMs ?? 100, attempts = o.attempts ?? 5;
  const link = new RedisLink(o.target, o.redisTimeoutMs, o.log, 'coordinator');
  let queue: Queue | undefined;
  const fingerprint = o.fingerprint ?? o.modelSha;
  const lockTtl = o.lockTtlMs ?? 6000, waitReportMs = o.waitReportMs ?? 30_000;
  const lockKey = lockKeyOf(o.runId);
  const lockValue = JSON.stringify({ fingerprint, host: hostname(), pid: process.pid, token: randomBytes(8).toString('hex') });
  let holding = false;
  const name = queueName(o.runId);
  const entry = JSON.stringify({ queue: name, model: o.modelSha, fingerprint });
  try {
    await link.ready();
    // One coordinator per run id: another one with other inputs, model or options is refused at
    // once; one of the same run is waited for until its lock expires (a coordinator that was
    // killed stops refreshing it), at most twice the lock's lifetime, then refused.
    const lockDeadline = Date.now() + 2 * lockTtl + 1000;
    let told = false;
    for (;;) {
      if (await link.guard(link.client.set(lockKey, lockValue, 'PX', lockTtl, 'NX')) === 'OK') { holding = true; break; }
      const cur = await link.guard(link.client.get(lockKey));
      if (cur === null) continue;
      let other: { fingerprint?: string; host?: string; pid?: number } = {};
      try { other = JSON.parse(cur); } catch { /* a foreign value: treated as another run */ }
      const who = `${other.host ?? '?'} pid ${other.pid ?? '?'}`;
      if (other.fingerprint !== fingerprint) {
        throw errors.queue(`run ${o.runId} is being coordinated by another coordinator (${who}) with other inputs, model or options; refusing to share its queue (give another --run-id)`);
      }
      if (Date.now() > lockDeadline) {
        throw errors.queue(`run ${o.runId} is being coordinated by another live coordinator (${who}); refusing to run two coordinators on one run`);
      }
      if (!told) { told = true; o.log(`coordinator: run ${o.runId} is locked by an earlier coordinator (${who}); waiting up to ${Math.round((2 * lockTtl + 1000) / 1000)} s for its lock to expire`); }
      await link.guard(sleep(250));
    }
    queue = new Queue(name, { connection: connectionOptions(o.target) as ConnectionOptions });
    queue.on('error', () => { /* the link's watchdog reports connection trouble, once */ });
    const q = queue;
    let lastBeat = 0;
    // The lock refreshed and the run (re-)registered: a Redis restarted without its data gets both back.
    const heartbeat = async (force = false) => {
      if (!force && Date.now() - lastBeat < 1000) return;
      lastBeat = Date.now();
      const ok = await link.guard(link.client.eval(REFRESH, 1, lockKey, lockValue, String(lockTtl)) as Promise<number>);
      if (ok !== 1) { holding = false; throw errors.queue(`run ${o.runId}: another coordinator took this run's lock; stopping (the output's partial file is kept for --resume)`); }
      await link.guard(link.client.hset(RUNS_KEY, o.runId, entry));
    };
    await heartbeat(true);
    o.log(`coordinator: run ${o.runId} on queue ${name} at ${o.target.display}`);
    const perToken = o.score.perToken === true;
    const inFlight = new Map<number, InFlight>();
    const it = shards[Symbol.asyncIterator]();
    let exhausted = false;
    const jobOpts = { attempts, backoff: { type: 'fixed' as const, delay: 500 }, removeOnComplete: false, removeOnFail: false };

    const enqueue = async (s: Shard, again: boolean) => {
      if (again) await heartbeat(true); // the job vanished: so may have the run's entry
      await link.guard(q.add('shard', { ...encodeShard(s, o.runId, o.modelSha, o.score), fingerprint }, { ...jobOpts, jobId: jobIdOf(s.index) }));
      stats.enqueued++;
      if (again) { stats.reenqueued++; o.log(`coordinator: shard ${s.index}: its job vanished from the queue; enqueued again`); }
    };

    let lastProgress = Date.now(), lastReport = Date.now();
    while (true) {
      if (o.signal?.aborted) throw errors.aborted(o.signal.reason);
      await heartbeat();
      // Fill: take shards until the in-flight bound.
      while (!exhausted && inFlight.size < maxInFlight) {
        const n = await it.next();
        if (n.done) { exhausted = true; break; }
        const s = n.value;
        if (s.first + s.docs.length <= writer.nextDoc) { stats.alreadyWritten++; continue; }
        let state = await link.guard(q.getJobState(jobIdOf(s.index)));
        if (state !== 'unknown') {
          // a job left by a coordinator of another run under this id (other inputs, model or options) is not adopted
          const old = await link.guard(q.getJob(jobIdOf(s.index)));
          if (old && (old.data as { fingerprint?: unknown })?.fingerprint !== fingerprint) {
            o.log(`coordinator: shard ${s.index}: the job on the queue was made for other inputs, model or options; replacing it`);
            await link.guard(old.remove().catch(() => {}));
            state = 'unknown';
          }
        }
        if (state === 'unknown') await enqueue(s, false);
        else {
          stats.adopted++;
          if (state === 'failed') { const job = await link.guard(q.getJob(jobIdOf(s.index))); await link.guard(job!.retry('failed')); }
        }
        inFlight.set(s.index, { shard: s, done: false, rejected: 0 });
      }
      if (inFlight.size === 0 && exhausted) break;
      // Poll the in-flight jobs.
      let progressed = false;
      for (const [idx, f] of inFlight) {
        if (f.done) continue;
        const id = jobIdOf(idx);
        const state = await link.guard(q.getJobState(id));
        if (state === 'completed' || state === 'failed') {
          // a job of another run under this id that could not be replaced when this shard was taken (a
          // worker held it): its result is for other inputs, model or options — never taken (before: taken
          // when its ids and byte lengths matched, stale scores with exit 0)
          const job = await link.guard(q.getJob(id));
          if (job && (job.data as { fingerprint?: unknown })?.fingerprint !== fingerprint) {
            // bounded as a rejected result is: a job that cannot be removed must not make this loop forever
            if (++f.rejected >= attempts) throw errors.queue(`shard ${idx}: a job of another run under this run id could not be replaced ${f.rejected} times; remove the run's queue (${queueName(o.runId)}) or use another --run-id`);
            o.log(`coordinator: shard ${idx}: the job on the queue was made for other inputs, model or options; scoring it again`);
            await link.guard(job.remove().catch(() => {}));
            await enqueue(f.shard, false);
            continue;
          }
        }
        if (state === 'completed') {
          const job = await link.guard(q.getJob(id));
          if (!job) { await enqueue(f.shard, true); continue; }
          const recs = checkResult(job.returnvalue, f.shard, perToken);
          if (typeof recs === 'string') {
            // bounded: a shard whose result is rejected `attempts` times fails the run with the reason
            if (++f.rejected >= attempts) throw errors.queue(`shard ${idx} failed: its result was rejected ${f.rejected} times (last: ${recs})`);
            o.log(`coordinator: shard ${idx}: result rejected (${recs}); enqueued again (${f.rejected} of ${attempts})`);
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
      if (progressed) lastProgress = lastReport = Date.now();
      else if (Date.now() - Math.max(lastProgress, lastReport) >= waitReportMs) {
        // never a silent wait: say what for, and whether anyone can do the work
        lastReport = Date.now();
        const open = [...inFlight.entries()].filter(([, f]) => !f.done).map(([i]) => i);
        const counts = await link.guard(q.getJobCounts('waiting', 'active', 'delayed', 'prioritized'));
        const workers = await link.guard(q.getWorkersCount().catch(() => -1));
        o.log(`coordinator: waiting ${Math.round((Date.now() - lastProgress) / 1000)} s for shard(s) ${open.slice(0, 8).join(', ')}${open.length > 8 ? ', …' : ''} ` +
          `(${counts.waiting + counts.prioritized} waiting, ${counts.active} active, ${counts.delayed} delayed); ` +
          `${workers < 0 ? 'workers on the queue unknown' : `${workers} worker(s) on the queue`}${workers === 0 ? ' — start `retnet worker --queue …`' : ''}; run registered in ${RUNS_KEY}`);
      }
      if (!progressed) await link.guard(sleep(pollMs));
    }
    await link.guard(link.client.eval(UNREGISTER, 1, RUNS_KEY, o.runId, entry) as Promise<number>);
    await link.guard(q.obliterate({ force: true }));
    return stats;
  } finally {
    // our lock goes (a coordinator started again need not wait for it), and, after a failure, the run's
    // entry in RUNS_KEY too: workers stop taking its waiting shards, whose results no one would collect
    // (its jobs stay: a coordinator started again on the run registers it again and adopts them); best
    // effort with a dead Redis
    if (holding) {
      await Promise.race([link.client.eval(UNREGISTER, 1, RUNS_KEY, o.runId, entry).catch(() => {}), sleep(1000)]);
      await Promise.race([link.client.eval(RELEASE, 1, lockKey, lockValue).catch(() => {}), sleep(1000)]);
    }
    // BullMQ's disconnect waits for its client's 'end'; never let a dead Redis hold the exit
    if (queue) await Promise.race([queue.disconnect().catch(() => {}), sleep(1000)]);
    link.close();
  }
}
