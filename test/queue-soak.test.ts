// Issue #19: a bounded soak test of the corpus queue on a real redis-server
// (skipped by name where it is missing, never in CI). 2,000 small documents in
// shards of ~1 KB, one coordinator and 3 workers; every 1–2 s (and after
// every eighth of the output at the latest) a random worker is SIGKILLed and
// started again, and once, a third of the way in,
// Redis itself is stopped and started again on its append-only file. The run
// must end (bounded: 150 s; it takes ~25–40 s on a 2-core machine) with the
// output byte-identical to the one-machine run: every document exactly once,
// in order.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scoreCorpus } from '../src/index.js';
import { Rng } from '../src/random.js';
import { canRun } from './helpers/skip.js';
import { cliChild, redisMissing, startRedis, writeCorpus, writeSmallLM, type Child } from './helpers/corpus.js';

const missing = redisMissing();

test('queue soak: 2,000 documents, 3 workers killed at random, one Redis restart on its AOF: exactly-once output, the run ends', async () => {
  if (!canRun('queue soak', missing)) return;
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'retnet-soak-'));
  const model = join(dir, 'lm.safetensors');
  writeSmallLM(model);
  const corpus = join(dir, 'c');
  const docs = writeCorpus(corpus, { jsonl: 1500, gz: 500, long: [], seed: 9 });
  const ref = join(dir, 'ref.jsonl');
  await scoreCorpus({ inputs: [corpus], out: ref, model, shardBytes: 1000 });
  let redis = await startRedis({ appendonly: true });
  const url = redis.url;
  const rng = new Rng(19);
  // --lock-duration 1500: a killed worker's shard is taken over after ~1.5 s (BullMQ's stalled check);
  // --redis-timeout 30: the Redis restart (well under a second here) is ridden out by every process
  const worker = () => cliChild(['worker', '--queue', url, '--model', model, '--lock-duration', '1500', '--redis-timeout', '30']);
  const workers: Child[] = [worker(), worker(), worker()];
  const out = join(dir, 'out.jsonl');
  const c = cliChild(['score', '--queue', url, '--model', model, '--out', out, '--shard-bytes', '1000', '--max-in-flight', '6', '--redis-timeout', '30', corpus]);
  let kills = 0, restarted = false;
  try {
    const deadline = Date.now() + 150_000;
    let nextKill = Date.now() + 1000 + rng.uniform() * 1000;
    let killedAt = 0; // records written at the last kill
    while (c.proc.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const written = existsSync(`${out}.partial`) ? readFileSync(`${out}.partial`, 'utf8').split('\n').length - 1 : 0;
      if (!restarted && written > docs / 3) {
        restarted = true;
        await redis.stop();
        redis = await startRedis({ appendonly: true, port: redis.port, dir: redis.dir });
      }
      // a kill every 1–2 s, and at the latest after every eighth of the output: a fast machine still
      // sees ≥ 5 kills (one run here finished in ~6 s with only 4 timed ones)
      if (Date.now() >= nextKill || written - killedAt >= docs / 8) {
        killedAt = written;
        const i = Math.floor(rng.uniform() * workers.length);
        workers[i].proc.kill('SIGKILL');
        await workers[i].done;
        workers[i] = worker();
        kills++;
        nextKill = Date.now() + 1000 + rng.uniform() * 1000;
      }
    }
    if (c.proc.exitCode === null) { c.proc.kill('SIGKILL'); assert.unreachable(`the run did not end in 150 s: ${c.err().slice(-2000)}`); }
    assert.is(await c.done, 0, c.err().slice(-3000));
    assert.ok(restarted, 'Redis was restarted mid-run');
    assert.ok(kills >= 5, `workers were killed (${kills})`);
    const got = readFileSync(out);
    assert.is(got.toString().trim().split('\n').length, docs, 'one record per document (the bad JSONL line is skipped)');
    assert.ok(got.equals(readFileSync(ref)), 'the output equals the one-machine run byte for byte (each document once, in order)');
    console.log(`queue soak: ${docs} documents, ${kills} worker kills, one Redis restart, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
    await redis.stop();
  }
});

test.run();
