// Issue #19 (reliability round 3), the queue items, on a real redis-server of
// the test's own (a free loopback port; skipped by name where redis-server is
// missing, never in CI): the coordinator after Redis lost its data (item 6),
// two coordinators on one run id (6), a coordinator that is waiting says what
// for (6), a bad entry in retnet:runs (7), a job whose data is not JSON (8) and
// results rejected without end (4). Each failed (or hung) on the code before
// the fix; a hang here is bounded by the waits' deadlines, not the runner's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { scoreCorpus } from '../src/index.js';
import { fileSha256 } from '../src/corpus/digest.js';
import { encodeShard, queueName, RUNS_KEY } from '../src/corpus/queue/jobs.js';
import { canRun } from './helpers/skip.js';
import { cliChild, redisMissing, startRedis, writeCorpus, writeSmallLM, type Child } from './helpers/corpus.js';

const missing = redisMissing();
const dir = mkdtempSync(join(tmpdir(), 'retnet-rel3-queue-'));
const model = join(dir, 'lm.safetensors');
writeSmallLM(model);
// 200 short JSONL documents and two of 16 KiB: a run of a few seconds with one worker
const c1 = join(dir, 'c1');
writeCorpus(c1, { jsonl: 150, gz: 50, long: [16384, 16384], seed: 5 });
const c2 = join(dir, 'c2');
writeCorpus(c2, { jsonl: 40, gz: 10, long: [], seed: 6 });
const refs = new Map<string, Buffer>();
async function reference(corpus: string): Promise<Buffer> {
  if (!refs.has(corpus)) {
    const out = join(dir, `ref-${refs.size}.jsonl`);
    await scoreCorpus({ inputs: [corpus], out, model, shardBytes: 2000 });
    refs.set(corpus, readFileSync(out));
  }
  return refs.get(corpus)!;
}
const worker = (url: string, extra: string[] = []) => cliChild(['worker', '--queue', url, '--model', model, '--lock-duration', '3000', ...extra]);
const coordinator = (url: string, out: string, corpus: string, extra: string[] = []) =>
  cliChild(['score', '--queue', url, '--model', model, '--out', out, '--shard-bytes', '2000', ...extra, corpus]);
async function stop(w: Child): Promise<number | null> { if (w.proc.exitCode === null) w.proc.kill('SIGTERM'); return w.done; }
/** The exit code, or 'hung' after `ms` (the child is then killed): a hang fails the test instead of holding it. */
async function within(c: Child, ms: number): Promise<number | null | 'hung'> {
  const t = new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms).unref());
  const r = await Promise.race([c.done, t]);
  if (r === 'hung') { c.proc.kill('SIGKILL'); await c.done; }
  return r;
}
const noStack = (s: string) => !/\n\s+at /.test(s);

test('item 6: Redis restarted without its data mid-run: the coordinator registers the run again and completes', async () => {
  if (!canRun('item 6: run re-registered after Redis lost its data', missing)) return;
  let redis = await startRedis();
  let w: Child | undefined;
  try {
    w = worker(redis.url, ['--redis-timeout', '20']);
    const out = join(dir, 'o6.jsonl');
    const c = coordinator(redis.url, out, c1, ['--max-in-flight', '3', '--redis-timeout', '20']);
    await w.waitFor(/: scored \d+ documents/);
    await redis.stop();
    redis = await startRedis({ port: redis.port, dir: redis.dir }); // no persistence: retnet:runs and the jobs are gone
    // before the fix the coordinator re-enqueued the jobs but never registered the run again: the
    // worker dropped the run and the coordinator waited forever (60 s: ample for a 2-core machine; the run takes ~5 s)
    const code = await within(c, 60_000);
    assert.is(code, 0, c.err());
    assert.ok(readFileSync(out).equals(await reference(c1)), 'output equals the one-machine run');
  } finally { if (w) await stop(w); await redis.stop(); }
});

test('item 6: a second coordinator on the same run id with another corpus is refused up front; the first completes', async () => {
  if (!canRun('item 6: foreign coordinator refused', missing)) return;
  const redis = await startRedis();
  try {
    const a = coordinator(redis.url, join(dir, 'o6a.jsonl'), c1, ['--run-id', 'shared']);
    await a.waitFor(/coordinator: run shared on queue/);
    const b = coordinator(redis.url, join(dir, 'o6b.jsonl'), c2, ['--run-id', 'shared']);
    const codeB = await within(b, 30_000);
    assert.is(codeB, 1, b.err());
    assert.match(b.err(), /run shared is being coordinated by another coordinator .* with other inputs, model or options; refusing/);
    assert.ok(noStack(b.err()));
    const w = worker(redis.url);
    assert.is(await within(a, 60_000), 0, a.err());
    assert.ok(readFileSync(join(dir, 'o6a.jsonl')).equals(await reference(c1)));
    await stop(w);
  } finally { await redis.stop(); }
});

test('item 6: a coordinator with nobody to do the work says every few seconds what it waits for', async () => {
  if (!canRun('item 6: wait reports', missing)) return;
  const redis = await startRedis();
  try {
    const lines: string[] = [];
    const ac = new AbortController();
    const run = scoreCorpus({ inputs: [c2], out: join(dir, 'o6c.jsonl'), model, queue: redis.url, shardBytes: 2000, waitReportMs: 500, log: (l) => lines.push(l), signal: ac.signal });
    run.catch(() => {});
    const t0 = Date.now();
    while (!lines.some((l) => /waiting/.test(l)) && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await run.catch(() => {});
    const wait = lines.find((l) => /waiting/.test(l));
    assert.ok(wait, lines.join('\n'));
    assert.match(wait!, /coordinator: waiting \d+ s for shard\(s\) 0, .*\(\d+ waiting, 0 active, 0 delayed\); 0 worker\(s\) on the queue — start `retnet worker --queue …`/);
  } finally { await redis.stop(); }
});

test('item 7: an invalid entry in retnet:runs is skipped and logged; workers keep working', async () => {
  if (!canRun('item 7: bad runs entry skipped', missing)) return;
  const redis = await startRedis();
  const r = new Redis({ host: '127.0.0.1', port: redis.port });
  try {
    await r.hset(RUNS_KEY, 'bad:name', '{}');
    await r.hset(RUNS_KEY, 'ok-name', 'not json');
    const w = worker(redis.url);
    await w.waitFor(/connected to/);
    const out = join(dir, 'o7.jsonl');
    const c = coordinator(redis.url, out, c2);
    assert.is(await within(c, 60_000), 0, c.err() + w.err());
    assert.ok(readFileSync(out).equals(await reference(c2)));
    assert.is(w.proc.exitCode, null, 'the worker is still running');
    assert.match(w.err(), /worker: skipping the entry "bad:name" of retnet:runs: not a run id/);
    assert.match(w.err(), /worker: skipping the entry "ok-name" of retnet:runs: its value is not/);
    assert.is((w.err().match(/skipping the entry "bad:name"/g) ?? []).length, 1, 'reported once');
    assert.is(await stop(w), 0);
  } finally { r.disconnect(); await redis.stop(); }
});

test('item 8: a job whose stored data is not JSON is failed with its reason, not left active', async () => {
  if (!canRun('item 8: non-JSON job data failed', missing)) return;
  const redis = await startRedis();
  const r = new Redis({ host: '127.0.0.1', port: redis.port });
  const q = new Queue(queueName('r8'), { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null } });
  try {
    const sha = await fileSha256(model);
    const job = await q.add('shard', encodeShard({ index: 0, first: 0, bytes: 5, docs: [{ id: 'x', source: 's', bytes: Buffer.from('hello') }] }, 'r8', sha, {}), { jobId: 'shard-0', attempts: 5 });
    await r.hset(`bull:${queueName('r8')}:${job.id}`, 'data', '{not json');
    const good = await q.add('shard', encodeShard({ index: 1, first: 1, bytes: 2, docs: [{ id: 'y', source: 's', bytes: Buffer.from('hi') }] }, 'r8', sha, {}), { jobId: 'shard-1' });
    const w = worker(redis.url, ['--run-id', 'r8']);
    // before the fix the job stayed active (its stalled count grew) and was never failed; 30 s bounds the wait
    const t0 = Date.now();
    while ((await q.getJobState(job.id!)) !== 'failed' && Date.now() - t0 < 30_000) await new Promise((res) => setTimeout(res, 50));
    assert.is(await q.getJobState(job.id!), 'failed', w.err());
    // (read raw: BullMQ's own getJob throws on the job's data too)
    assert.match(String(await r.hget(`bull:${queueName('r8')}:${job.id}`, 'failedReason')), /^malformed job: data is not JSON/);
    while ((await q.getJobState(good.id!)) !== 'completed' && Date.now() - t0 < 30_000) await new Promise((res) => setTimeout(res, 50));
    assert.is(await q.getJobState(good.id!), 'completed', 'the worker keeps working');
    assert.match(w.err(), /shard-0 failed: malformed job: data is not JSON/);
    assert.is(await stop(w), 0);
  } finally { await q.close(); r.disconnect(); await redis.stop(); }
});

test('item 4: results rejected again and again fail the shard after a bounded number of attempts, with the reason', async () => {
  if (!canRun('item 4: bounded result rejection', missing)) return;
  const redis = await startRedis();
  // a worker whose every result is wrong (as a worker with a broken model's NaN scores was)
  const bad = new Worker(queueName('r4'), async (job) => (job.data.ids as string[]).map((id: string, i: number) => ({ id, source: job.data.sources[i], bytes: job.data.lengths[i], bits: null, bits_per_byte: null })),
    { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null } });
  try {
    const lines: string[] = [];
    let err: unknown;
    const t0 = Date.now();
    // before the fix: re-enqueued forever (232 re-scores in 25 s); 60 s bounds the test
    const run = scoreCorpus({ inputs: [c2], out: join(dir, 'o4.jsonl'), model, queue: redis.url, runId: 'r4', shardBytes: 2000, attempts: 3, log: (l) => lines.push(l) });
    const r = await Promise.race([run.then(() => 'done', (e) => { err = e; return 'failed'; }), new Promise((res) => setTimeout(() => res('hung'), 60_000).unref())]);
    assert.is(r, 'failed', lines.slice(-5).join('\n'));
    assert.is((err as { code?: string }).code, 'E_QUEUE');
    assert.match((err as Error).message, /shard \d+ failed: its result was rejected 3 times \(last: record 0 has non-finite bits\)/);
    assert.ok(Date.now() - t0 < 60_000);
  } finally { await bad.close(); await redis.stop(); }
});

test.run();
