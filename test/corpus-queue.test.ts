// Corpus scoring across processes through BullMQ on a real Redis (a
// redis-server of the test's own on a free loopback port): the distributed
// output equals the one-machine output byte for byte; a worker SIGKILLed
// mid-shard, a coordinator SIGKILLed mid-run, Redis stopped mid-run and a job
// that vanished are all recovered; Redis unreachable, a worker with the wrong
// model and a malformed job are clear errors. Skipped by name where
// redis-server is not installed (never in CI).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { DEFAULT_LM_PATH, scoreCorpus } from '../src/index.js';
import { fileSha256 } from '../src/corpus/digest.js';
import { encodeShard, jobIdOf, queueName, RUNS_KEY } from '../src/corpus/queue/jobs.js';
import { Redis } from 'ioredis';
import { canRun } from './helpers/skip.js';
import { ROOT } from './helpers.js';
import { cliChild, freePort, redisMissing, startRedis, writeCorpus, writeSmallLM, type Child } from './helpers/corpus.js';

const missing = redisMissing();
const dir = mkdtempSync(join(tmpdir(), 'retnet-corpus-queue-'));
const model = join(dir, 'lm.safetensors');
writeSmallLM(model);
// a 501-document corpus: 496 JSONL documents of 0–200 bytes (one bad line), five long plain ones up to 1 MiB
const c1 = join(dir, 'c1');
const n1 = writeCorpus(c1, { jsonl: 300, gz: 196, long: [4096, 16384, 65536, 262144, 1048576], seed: 1 });
// a smaller corpus for the failure tests: long documents of 32 KiB take a noticeable time to score
const c2 = join(dir, 'c2');
writeCorpus(c2, { jsonl: 150, gz: 50, long: [32768, 32768], seed: 2 });
const refs = new Map<string, string>();
async function reference(corpus: string, shardBytes: number): Promise<Buffer> {
  const key = `${corpus}:${shardBytes}`;
  if (!refs.has(key)) {
    const out = join(dir, `ref-${refs.size}.jsonl`);
    await scoreCorpus({ inputs: [corpus], out, model, shardBytes });
    refs.set(key, out);
  }
  return readFileSync(refs.get(key)!);
}

// A short BullMQ lock only where a worker is killed (its shard is taken over 1.5 s later); elsewhere
// 10 s, so a busy machine's slow lock renewal does not make BullMQ run a shard twice (which is
// allowed — at-least-once — but would spoil the counts of shards scored).
const worker = (url: string, extra: string[] = [], lockMs = 10_000) => cliChild(['worker', '--queue', url, '--model', model, '--lock-duration', String(lockMs), ...extra]);
const coordinator = (url: string, out: string, corpus: string, extra: string[] = []) =>
  cliChild(['score', '--queue', url, '--model', model, '--out', out, ...(extra.includes('--shard-bytes') ? [] : ['--shard-bytes', '2000']), ...extra, corpus]);
const scoredShards = (w: Child) => (w.err().match(/: scored \d+ documents/g) ?? []).length;
const noStack = (s: string) => !/\n\s+at /.test(s);
async function stop(w: Child): Promise<number | null> { if (w.proc.exitCode === null) w.proc.kill('SIGTERM'); return w.done; }
async function linesOf(path: string, n: number, child: Child): Promise<void> {
  const t0 = Date.now();
  while (!(existsSync(path) && readFileSync(path, 'utf8').split('\n').length > n)) {
    if (child.proc.exitCode !== null || Date.now() - t0 > 60_000) throw new Error(`no progress on ${path}: ${child.err().slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('queue: 500 documents (0 B – 256 KiB) with two workers equal the one-machine output byte for byte', async () => {
  if (!canRun('queue: distributed equals one-machine', missing)) return;
  const redis = await startRedis();
  try {
    const w1 = worker(redis.url), w2 = worker(redis.url);
    const out = join(dir, 'd1.jsonl'), sj = join(dir, 'd1.json');
    const c = coordinator(redis.url, out, c1, ['--shard-bytes', '8192', '--max-in-flight', '4', '--summary-json', sj, '--run-id', 'dist1']);
    // the shards in Redis never exceed --max-in-flight
    const q = new Queue(queueName('dist1'), { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null } });
    let most = 0, polls = 0;
    while (c.proc.exitCode === null) {
      const k = await q.getJobCounts('waiting', 'active', 'completed', 'delayed', 'prioritized', 'failed');
      most = Math.max(most, Object.values(k).reduce((a, b) => a + b, 0)); polls++;
      await new Promise((r) => setTimeout(r, 30));
    }
    await q.close();
    assert.is(await c.done, 0, c.err());
    assert.ok(most >= 1 && most <= 4, `at most 4 jobs in Redis at once (saw ${most} in ${polls} polls)`);
    const s = JSON.parse(readFileSync(sj, 'utf8'));
    assert.is(s.documents, n1); assert.is(s.skipped, 1);
    assert.ok(readFileSync(out).equals(await reference(c1, 8192)), 'distributed output differs from the one-machine output');
    assert.is(await stop(w1), 0, w1.err()); assert.is(await stop(w2), 0, w2.err());
    assert.is(scoredShards(w1) + scoredShards(w2), s.shards, 'each shard scored once');
    assert.ok(scoredShards(w1) > 0 && scoredShards(w2) > 0, 'both workers took shards');
    assert.is(s.queue.enqueued, s.shards);
  } finally { await redis.stop(); }
});

test('queue: a worker SIGKILLed mid-shard: the run completes, every document once, output equals the undisturbed run', async () => {
  if (!canRun('queue: worker killed mid-shard', missing)) return;
  const redis = await startRedis();
  try {
    const a = worker(redis.url, [], 1500);
    const out = join(dir, 'd2.jsonl');
    const c = coordinator(redis.url, out, c2);
    // kill A as soon as it starts a one-document (32 KiB) shard
    await a.waitFor(/(shard-\d+): started \(1 document\)/);
    a.proc.kill('SIGKILL');
    await a.done;
    const victim = /(shard-\d+): started \(1 document\)/.exec(a.err())![1];
    assert.not.match(a.err(), new RegExp(`${victim}: scored`), 'the shard was still being scored when A died');
    const b = worker(redis.url, [], 1500);
    assert.is(await c.done, 0, c.err());
    assert.ok(readFileSync(out).equals(await reference(c2, 2000)));
    assert.match(b.err(), new RegExp(`${victim}: scored`), 'B scored the killed worker\'s shard');
    assert.is(await stop(b), 0);
  } finally { await redis.stop(); }
});

test('queue: SIGTERM on a worker mid-shard: it finishes that shard, takes no more, exits 0', async () => {
  if (!canRun('queue: worker SIGTERM mid-shard', missing)) return;
  const redis = await startRedis();
  try {
    const a = worker(redis.url);
    const out = join(dir, 'd2t.jsonl');
    const c = coordinator(redis.url, out, c2);
    await a.waitFor(/(shard-\d+): started \(1 document\)/);
    a.proc.kill('SIGTERM');
    assert.is(await a.done, 0, a.err());
    const victim = /(shard-\d+): started \(1 document\)/.exec(a.err())![1];
    assert.match(a.err(), /SIGTERM: finishing the current shard/);
    assert.match(a.err(), new RegExp(`${victim}: scored`), 'the current shard was finished');
    assert.is((a.err().match(/: started/g) ?? []).length, (a.err().match(/: scored/g) ?? []).length, 'no shard left half-done');
    const b = worker(redis.url);
    assert.is(await c.done, 0, c.err());
    assert.not.match(b.err(), new RegExp(`${victim}: started`), 'the finished shard is not scored again');
    assert.ok(readFileSync(out).equals(await reference(c2, 2000)));
    assert.is(await stop(b), 0);
  } finally { await redis.stop(); }
});

test('queue: the coordinator SIGKILLed mid-run and started again with the same run id completes without rescoring', async () => {
  if (!canRun('queue: coordinator killed and restarted', missing)) return;
  const redis = await startRedis();
  try {
    const w = worker(redis.url);
    const out = join(dir, 'd3.jsonl'), sj = join(dir, 'd3.json');
    const c = coordinator(redis.url, out, c2, ['--max-in-flight', '3']);
    await linesOf(`${out}.partial`, 40, c);
    c.proc.kill('SIGKILL');
    await c.done;
    assert.not.ok(existsSync(out));
    const again = coordinator(redis.url, out, c2, ['--max-in-flight', '3', '--summary-json', sj]);
    assert.is(await again.done, 0, again.err());
    assert.ok(readFileSync(out).equals(await reference(c2, 2000)));
    const s = JSON.parse(readFileSync(sj, 'utf8'));
    assert.ok(s.resumed_documents >= 40 && s.queue.alreadyWritten > 0, JSON.stringify(s));
    assert.is(await stop(w), 0);
    assert.is(scoredShards(w), s.shards, `every one of ${s.shards} shards scored exactly once (worker log: ${scoredShards(w)})`);
  } finally { await redis.stop(); }
});

test('queue: Redis unreachable at start is a clear error within --redis-timeout, credentials never shown', async () => {
  if (!canRun('queue: Redis unreachable', missing)) return;
  const port = await freePort(); // nothing listens there
  const url = `redis://user:hunter2@127.0.0.1:${port}`;
  const t0 = Date.now();
  const c = coordinator(url, join(dir, 'u.jsonl'), c2, ['--redis-timeout', '2']);
  const w = worker(url, ['--redis-timeout', '2']);
  assert.is(await c.done, 1); assert.is(await w.done, 1);
  assert.ok(Date.now() - t0 < 20_000);
  for (const p of [c, w]) {
    assert.match(p.err(), new RegExp(`^retnet: cannot reach Redis at redis://\\*\\*\\*@127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\) and could not connect within 2 s \\(--redis-timeout\\)\\n$`, 'm'));
    assert.not.match(p.err(), /hunter2/); assert.not.match(p.err(), /user:/); assert.ok(noStack(p.err()), p.err());
  }
});

test('queue: Redis stopped mid-run: both sides say so and exit 1; restarted on its data, the coordinator completes', async () => {
  if (!canRun('queue: Redis stopped mid-run', missing)) return;
  let redis = await startRedis({ appendonly: true });
  try {
    const w = worker(redis.url, ['--redis-timeout', '3']);
    const out = join(dir, 'd4.jsonl');
    const c = coordinator(redis.url, out, c2, ['--max-in-flight', '3', '--redis-timeout', '3']);
    await linesOf(`${out}.partial`, 30, c);
    await redis.stop();
    assert.is(await c.done, 1); assert.is(await w.done, 1);
    for (const p of [c, w]) {
      assert.match(p.err(), new RegExp(`lost the connection to Redis at ${redis.url}.*; retrying for up to 3 s`));
      assert.match(p.err(), new RegExp(`retnet: lost the connection to Redis at ${redis.url}.* and could not connect within 3 s \\(--redis-timeout\\)\\n$`));
      assert.ok(noStack(p.err()), p.err());
    }
    redis = await startRedis({ appendonly: true, port: redis.port, dir: redis.dir });
    const w2 = worker(redis.url);
    const c2run = coordinator(redis.url, out, c2, ['--max-in-flight', '3']);
    assert.is(await c2run.done, 0, c2run.err());
    assert.ok(readFileSync(out).equals(await reference(c2, 2000)));
    assert.is(await stop(w2), 0);
  } finally { await redis.stop(); }
});

test('queue: Redis frozen mid-run (SIGSTOP: the connection stays open, nothing answers): both sides exit 1 within --redis-timeout (before: both hung for ever, a worker\'s SIGTERM too)', async () => {
  if (!canRun('queue: Redis frozen mid-run', missing)) return;
  const redis = await startRedis();
  try {
    const w = worker(redis.url, ['--redis-timeout', '2']);
    const out = join(dir, 'd4f.jsonl');
    const c = coordinator(redis.url, out, c2, ['--max-in-flight', '3', '--redis-timeout', '2']);
    await linesOf(`${out}.partial`, 10, c);
    redis.proc.kill('SIGSTOP');
    const t0 = Date.now();
    const guard = setTimeout(() => { c.proc.kill('SIGKILL'); w.proc.kill('SIGKILL'); }, 30_000);
    const [cc, wc] = await Promise.all([c.done, w.done]);
    clearTimeout(guard);
    assert.is(cc, 1, c.err().slice(-800)); assert.is(wc, 1, w.err().slice(-800));
    assert.ok(Date.now() - t0 < 20_000, `exited after ${Date.now() - t0} ms`);
    for (const p of [c, w]) {
      assert.match(p.err(), new RegExp(`Redis at ${redis.url}.* stopped answering: no reply to PING in 2 s \\(--redis-timeout\\), though the connection is open`));
      assert.ok(noStack(p.err()), p.err());
    }
  } finally { redis.proc.kill('SIGCONT'); await redis.stop(); }
});

test('queue: a shard whose job vanished from Redis is enqueued again (the coordinator is the authority)', async () => {
  if (!canRun('queue: vanished job re-enqueued', missing)) return;
  const redis = await startRedis();
  const q = new Queue(queueName('vanish'), { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null } });
  try {
    const out = join(dir, 'd5.jsonl');
    const c = coordinator(redis.url, out, c2, ['--max-in-flight', '2', '--run-id', 'vanish']);
    const t0 = Date.now();
    while ((await q.getJobState(jobIdOf(1))) === 'unknown') { assert.ok(Date.now() - t0 < 30_000, c.err()); await new Promise((r) => setTimeout(r, 20)); }
    await (await q.getJob(jobIdOf(1)))!.remove();
    const w = worker(redis.url);
    assert.is(await c.done, 0, c.err());
    assert.match(c.err(), /shard 1: its job vanished from the queue; enqueued again/);
    assert.ok(readFileSync(out).equals(await reference(c2, 2000)));
    assert.is(await stop(w), 0);
  } finally { await q.close(); await redis.stop(); }
});

test('queue: a worker with another model fails the job with a clear error; the coordinator exits 1 naming it', async () => {
  if (!canRun('queue: wrong model on a worker', missing)) return;
  const redis = await startRedis();
  try {
    const w = cliChild(['worker', '--queue', redis.url]); // the shipped model, not the coordinator's
    const c = coordinator(redis.url, join(dir, 'wm.jsonl'), c2);
    assert.is(await c.done, 1);
    assert.match(c.err(), /^retnet: shard \d+ failed on a worker: model mismatch: the job was made for a model with SHA-256 [0-9a-f]{16}…, this worker's --model .*bytes-4x128\.safetensors has [0-9a-f]{16}…; start the worker with the coordinator's model\n$/m);
    await w.waitFor(/failed: model mismatch/);
    assert.is(w.proc.exitCode, null, 'the worker keeps running');
    // the failed run is no longer registered: workers stop taking its shards (before: its entry stayed)
    const r = new Redis({ host: '127.0.0.1', port: redis.port });
    try { assert.equal(await r.hgetall(RUNS_KEY), {}, 'retnet:runs after the coordinator failed'); } finally { r.disconnect(); }
    assert.is(await stop(w), 0);
  } finally { await redis.stop(); }
});

test('queue: a malformed job pushed by hand fails with its reason; the worker keeps running; passwords work and never show', async () => {
  if (!canRun('queue: malformed job', missing)) return;
  const redis = await startRedis({ args: ['--requirepass', 's3cret-pw'] });
  const url = `redis://:s3cret-pw@127.0.0.1:${redis.port}`;
  const q = new Queue(queueName('manual'), { connection: { host: '127.0.0.1', port: redis.port, password: 's3cret-pw', maxRetriesPerRequest: null } });
  try {
    const w = worker(url, ['--run-id', 'manual']);
    await w.waitFor(/connected to redis:\/\/\*\*\*@127\.0\.0\.1/);
    const bad = await q.add('shard', { v: 1, run: 'manual', shard: 0, first: 0, model: 'zz', ids: [] }, { jobId: 'bad-1' });
    const bad2 = await q.add('shard', 'just a string', { jobId: 'bad-2' });
    const sha = await fileSha256(model);
    const good = await q.add('shard', encodeShard({ index: 0, first: 0, bytes: 5, docs: [{ id: 'x', source: 's', bytes: Buffer.from('hello') }] }, 'manual', sha, {}), { jobId: 'good-1' });
    const t0 = Date.now();
    while ((await q.getJobState(good.id!)) !== 'completed') { assert.ok(Date.now() - t0 < 30_000, w.err()); await new Promise((r) => setTimeout(r, 20)); }
    assert.is(await q.getJobState(bad.id!), 'failed'); assert.is(await q.getJobState(bad2.id!), 'failed');
    assert.is((await q.getJob(bad.id!))!.failedReason, 'malformed job: model is not a SHA-256 hex digest');
    assert.is((await q.getJob(bad2.id!))!.failedReason, 'malformed job: payload is not an object');
    assert.is((await q.getJob(bad.id!))!.attemptsMade, 1, 'not retried');
    const rec = (await q.getJob(good.id!))!.returnvalue;
    assert.is(rec.length, 1); assert.is(rec[0].id, 'x'); assert.is(rec[0].bytes, 5);
    assert.is(await stop(w), 0);
    assert.not.match(w.err(), /s3cret-pw/);
  } finally { await q.close(); await redis.stop(); }
});

test('queue: rediss:// (TLS) works end to end', async () => {
  if (!canRun('queue: rediss:// (TLS)', missing)) return;
  const tls = join(ROOT, 'test', 'fixtures', 'corpus', 'tls');
  const tlsPort = await freePort();
  const redis = await startRedis({ args: ['--port', '0', '--tls-port', String(tlsPort), '--tls-cert-file', join(tls, 'server.pem'), '--tls-key-file', join(tls, 'server.key'), '--tls-ca-cert-file', join(tls, 'ca.pem'), '--tls-auth-clients', 'no'] });
  try {
    const url = `rediss://127.0.0.1:${tlsPort}`, env = { NODE_EXTRA_CA_CERTS: join(tls, 'ca.pem') };
    const corpus = join(ROOT, 'test', 'fixtures', 'corpus', 'docs.jsonl.zst');
    const w = cliChild(['worker', '--queue', url, '--model', model], env);
    const out = join(dir, 'tls.jsonl'), ref = join(dir, 'tls.ref.jsonl');
    const c = cliChild(['score', '--queue', url, '--model', model, '--out', out, '--shard-bytes', '300', corpus], env);
    assert.is(await c.done, 0, c.err());
    await scoreCorpus({ inputs: [corpus], out: ref, model, shardBytes: 300 });
    assert.ok(readFileSync(out).equals(readFileSync(ref)));
    assert.match(w.err(), new RegExp(`connected to rediss://127\\.0\\.0\\.1:${tlsPort}`));
    assert.is(await stop(w), 0);
  } finally { await redis.stop(); }
});

test('queue: the shipped model path resolves (worker default)', () => {
  assert.ok(existsSync(fileURLToPath(DEFAULT_LM_PATH)));
});

test.run();
