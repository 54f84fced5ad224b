// The corpus writer and queue at their edges (found by a review on 2026-12-07; each test failed before
// its fix): an --out that is a corpus file, a stale job of another run, stdin resumes, silently
// dropped links, Parquet text that is not UTF-8, permissions, a Redis database that does not exist,
// an option given twice, and a resume under another kernel engine.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { scoreCorpus } from '../src/index.js';
import { queueName } from '../src/corpus/queue/jobs.js';
import { recordToItem } from '../src/corpus/jsonl.js';
import { canRun } from './helpers/skip.js';
import { FIXTURES } from './helpers.js';
import { CLI, cliChild, redisMissing, startRedis, writeSmallLM } from './helpers/corpus.js';

const dir = mkdtempSync(join(tmpdir(), 'retnet-corpus-edges-'));
const model = join(dir, 'lm.safetensors');
writeSmallLM(model);
const cli = (args: string[], opts: { input?: string; env?: Record<string, string> } = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000, input: opts.input, env: { ...process.env, NO_COLOR: '1', ...opts.env } });
const lines = (n: number, tag: string) => Array.from({ length: n }, (_, i) => JSON.stringify({ id: `${tag}${i}`, text: `${tag} document number ${i}: some words to score.` })).join('\n') + '\n';

test('--out naming a corpus file (in an input folder, through a link, or not an input at all) is refused and the file is intact (before: replaced by the scores, exit 0)', () => {
  const c = join(dir, 'c1'); mkdirSync(c);
  writeFileSync(join(c, 'a.jsonl'), lines(5, 'a')); writeFileSync(join(c, 'b.jsonl'), lines(6, 'b'));
  symlinkSync(join(c, 'a.jsonl'), join(dir, 'a-link.jsonl'));
  const before = [readFileSync(join(c, 'a.jsonl')), readFileSync(join(c, 'b.jsonl'))];
  for (const [out, inputs] of [[join(c, 'b.jsonl'), [c]], [join(dir, 'a-link.jsonl'), [c]], [join(c, 'a.jsonl'), [join(c, 'b.jsonl')]]] as [string, string[]][]) {
    const r = cli(['score', '--model', model, '--out', out, ...inputs]);
    assert.is(r.status, 2, `${out}: ${r.stderr}`);
    assert.match(r.stderr, /exists and is not score records/);
  }
  assert.ok(readFileSync(join(c, 'a.jsonl')).equals(before[0]!) && readFileSync(join(c, 'b.jsonl')).equals(before[1]!));
  // the library has no CLI check: the walk keeps the file as an input, and the output check refuses it
  return scoreCorpus({ inputs: [c], out: join(c, 'b.jsonl'), model }).then(() => assert.unreachable('refused'), (e: Error & { code?: string }) => {
    assert.is(e.code, 'E_CORPUS'); assert.match(e.message, /refusing to overwrite a file this run reads/);
    assert.ok(readFileSync(join(c, 'b.jsonl')).equals(before[1]!));
  });
});

test('an earlier scores file in an input folder is still left out of the inputs and replaced (and keeps its permissions)', () => {
  const c = join(dir, 'c2'); mkdirSync(c);
  writeFileSync(join(c, 'a.jsonl'), lines(4, 'a'));
  const out = join(c, 'scores.jsonl');
  assert.is(cli(['score', '--model', model, '--out', out, c]).status, 0);
  const first = readFileSync(out);
  chmodSync(out, 0o600);
  const r = cli(['score', '--model', model, '--out', out, c]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /4 documents/);
  assert.ok(readFileSync(out).equals(first));
  assert.is(statSync(out).mode & 0o777, 0o600, 'mode kept (before: 644)');
});

test('stdin: --resume is refused; an option given twice is a usage error', () => {
  const r = cli(['score', '--model', model, '--out', join(dir, 's.jsonl'), '--resume', '-'], { input: lines(3, 's') });
  assert.is(r.status, 2, r.stderr); // a usage error before any work (it was exit 1, from the library, after loading the model)
  assert.match(r.stderr, /--resume cannot continue a run that reads stdin/);
  const t = cli(['score', '--model', model, '--out', join(dir, 't1.jsonl'), '--out', join(dir, 't2.jsonl'), '-'], { input: lines(2, 't') });
  assert.is(t.status, 2);
  assert.match(t.stderr, /--out is given twice/);
});

test('a lock whose pid now belongs to another process (pid reuse) is stale and taken over; one of a live run is still refused', () => {
  if (process.platform !== 'linux') return;
  const c = join(dir, 'lk.jsonl'); writeFileSync(c, lines(2, 'l'));
  const out = join(dir, 'lk-out.jsonl');
  // this test process is alive, but the lock says it was started in another boot: not the process that wrote it
  writeFileSync(`${out}.partial.lock`, JSON.stringify({ pid: process.pid, host: hostname(), started: '2026-01-01T00:00:00.000Z', pstart: 'another-boot:12345' }) + '\n');
  const r = cli(['score', '--model', model, '--out', out, c]);
  assert.is(r.status, 0, r.stderr);
  assert.ok(existsSync(out));
  // the same pid with no start recorded (an older lock) or with this process's own start: refused as live
  const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
  const start = `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  for (const held of [{ pid: process.pid, host: hostname() }, { pid: process.pid, host: hostname(), pstart: start }]) {
    writeFileSync(`${out}.partial.lock`, JSON.stringify(held) + '\n');
    const again = cli(['score', '--model', model, '--out', out, c]);
    assert.is(again.status, 1, again.stderr);
    assert.match(again.stderr, new RegExp(`being written by another run \\(pid ${process.pid}`));
  }
  rmSync(`${out}.partial.lock`);
});

test('a --resume under another RETNET_KERNELS is refused (the engine changes the last bits)', async () => {
  const c = join(dir, 'c3.jsonl'); writeFileSync(c, lines(30, 'k'));
  const out = join(dir, 'k.jsonl');
  const ac = new AbortController();
  const run = scoreCorpus({ inputs: [c], out, model, shardBytes: 200, onProgress: () => ac.abort(), signal: ac.signal });
  await run.then(() => {}, () => {});
  const r = cli(['score', '--model', model, '--out', out, '--shard-bytes', '200', '--resume', c], { env: { RETNET_KERNELS: 'wasm' } });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /kernels/);
});

test('links in an input folder that lead nowhere or to a folder are reported, not dropped without a word', () => {
  const c = join(dir, 'c4'); mkdirSync(c); mkdirSync(join(dir, 'elsewhere'));
  writeFileSync(join(c, 'a.jsonl'), lines(2, 'a'));
  writeFileSync(join(dir, 'elsewhere', 'x.jsonl'), lines(2, 'x'));
  symlinkSync(join(dir, 'missing.jsonl'), join(c, 'gone.jsonl'));
  symlinkSync(join(dir, 'elsewhere'), join(c, 'sub'));
  const r = cli(['score', '--model', model, '--out', join(dir, 'l.jsonl'), c]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /gone\.jsonl: a symbolic link that leads nowhere \(ENOENT\); skipped/);
  assert.match(r.stderr, /sub: a symbolic link to a folder .*skipped/);
});

test('a Parquet text that is not valid UTF-8 is a bad record, as in JSONL (before: scored with U+FFFD)', async () => {
  const require = createRequire(import.meta.url);
  const { parquetWriteFile } = await import(require.resolve('hyparquet-writer')) as { parquetWriteFile: (o: unknown) => void };
  const p = join(dir, 'bad.parquet');
  parquetWriteFile({ filename: p, columnData: [{ name: 'id', data: ['b0', 'b1'], type: 'STRING' }, { name: 'text', data: [new Uint8Array([0x61, 0xff, 0x62]), new TextEncoder().encode('good text')], type: 'STRING' }] });
  const r = cli(['score', '--model', model, '--out', join(dir, 'pq.jsonl'), p]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /bad\.parquet:1: skipped: column "text" is not valid UTF-8/);
  const recs = readFileSync(join(dir, 'pq.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; bytes: number });
  assert.equal(recs.map((x) => [x.id, x.bytes]), [['b1', 9]]);
  assert.is(cli(['score', '--model', model, '--strict', '--out', join(dir, 'pq2.jsonl'), p]).status, 1);
});

test('Parquet: a footer whose row counts the column chunks contradict is an error naming the file (before: 1e9 claimed rows ran out of memory, 0 dropped the rows, exit 0)', async () => {
  const require = createRequire(import.meta.url);
  const wdir = dirname(require.resolve('hyparquet-writer')), rdir = dirname(require.resolve('hyparquet'));
  const { parquetMetadata } = await import(pathToFileURL(join(rdir, 'index.js')).href) as { parquetMetadata: (b: ArrayBuffer) => { num_rows: bigint; row_groups: { num_rows: bigint }[] } };
  const { writeMetadata } = await import(pathToFileURL(join(wdir, 'metadata.js')).href) as { writeMetadata: (w: unknown, m: unknown) => void };
  const { ByteWriter } = await import(pathToFileURL(join(wdir, 'bytewriter.js')).href) as { ByteWriter: new () => { getBuffer(): ArrayBuffer } };
  const src = readFileSync(join(FIXTURES, 'corpus', 'docs.parquet'));
  const md = parquetMetadata(src.buffer.slice(src.byteOffset, src.byteOffset + src.length) as ArrayBuffer);
  const body = src.subarray(0, src.length - 8 - src.readUInt32LE(src.length - 8));
  const withFooter = (edit: (m: typeof md) => void): Buffer => {
    const m = structuredClone(md);
    edit(m);
    const w = new ByteWriter();
    writeMetadata(w, m);
    const meta = Buffer.from(w.getBuffer()), tail = Buffer.alloc(8);
    tail.writeUInt32LE(meta.length, 0); tail.write('PAR1', 4);
    return Buffer.concat([body, meta, tail]);
  };
  const cases: [string, (m: typeof md) => void, RegExp][] = [
    ['claims 1e9 rows', (m) => { m.row_groups[0]!.num_rows = 1_000_000_000n; m.num_rows = 1_000_000_000n; }, /the footer says 1000000000 rows but its row groups hold \d+: a corrupt file/],
    ['a row group of 0 rows', (m) => { m.num_rows -= m.row_groups[0]!.num_rows; m.row_groups[0]!.num_rows = 0n; }, /row group 0 says 0 rows, but its column "(text|id)" holds \d+ values: a corrupt file/],
  ];
  for (const [what, edit, re] of cases) {
    const p = join(dir, `footer-${what.replace(/\W+/g, '-')}.parquet`);
    writeFileSync(p, withFooter(edit));
    const r = cli(['score', '--model', model, '--out', join(dir, 'footer.jsonl'), p]);
    assert.is(r.status, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, re, what);
  }
});

test('Parquet: a text column that is not BYTE_ARRAY (UUID, FIXED_LEN_BYTE_ARRAY) is refused naming its type; bytes that are not UTF-8 are a bad record; a JSONL id -0 stays "-0"', async () => {
  const require = createRequire(import.meta.url);
  const { parquetWriteFile } = await import(require.resolve('hyparquet-writer')) as { parquetWriteFile: (o: unknown) => void };
  const flba = join(dir, 'flba.parquet');
  parquetWriteFile({ filename: flba, schema: [{ name: 'root', num_children: 2 }, { name: 'id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
    { name: 'text', type: 'FIXED_LEN_BYTE_ARRAY', type_length: 4, repetition_type: 'REQUIRED' }],
  columnData: [{ name: 'id', data: ['f0', 'f1'] }, { name: 'text', data: [new Uint8Array([0x61, 0x62, 0x63, 0x64]), new Uint8Array([0xff, 0xfe, 0, 1])] }] });
  let r = cli(['score', '--model', model, '--out', join(dir, 'flba.jsonl'), flba]);
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /column "text" is FIXED_LEN_BYTE_ARRAY, not text/);
  // a plain BYTE_ARRAY column (no string annotation) holding bytes that are not UTF-8
  const bin = join(dir, 'bin.parquet');
  parquetWriteFile({ filename: bin, schema: [{ name: 'root', num_children: 2 }, { name: 'id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
    { name: 'text', type: 'BYTE_ARRAY', repetition_type: 'REQUIRED' }],
  columnData: [{ name: 'id', data: ['b0', 'b1'] }, { name: 'text', data: [new Uint8Array([0x61, 0xff, 0x62]), new TextEncoder().encode('fine')] }] });
  r = cli(['score', '--model', model, '--out', join(dir, 'bin.jsonl'), bin]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /bin\.parquet:1: skipped: column "text" is not valid UTF-8/);
  // bytes reaching a record as bytes are held to UTF-8 there too (the path a FIXED_LEN_BYTE_ARRAY column took)
  const item = recordToItem({ text: new Uint8Array([0x61, 0xff]) }, 'x.parquet', 3, { textField: 'text', idField: 'id' });
  assert.equal(item, { skip: { source: 'x.parquet', line: 3, reason: 'field "text" holds bytes that are not valid UTF-8' } });
  const jl = join(dir, 'neg0.jsonl');
  writeFileSync(jl, '{"id": 0, "text": "one"}\n{"id": -0, "text": "two"}\n');
  r = cli(['score', '--model', model, '--out', join(dir, 'neg0-out.jsonl'), jl]);
  assert.is(r.status, 0, r.stderr);
  const ids = readFileSync(join(dir, 'neg0-out.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id);
  assert.equal(ids, ['0', '-0']);
});

test('queue: a Redis database the server lacks is an error (before: the run went on in db 0)', async () => {
  if (!canRun('queue: missing Redis database refused', redisMissing())) return;
  const redis = await startRedis();
  try {
    const c = join(dir, 'q.jsonl'); writeFileSync(c, lines(2, 'q'));
    for (const args of [['score', '--model', model, '--out', join(dir, 'qo.jsonl'), '--queue', `${redis.url}/99`, '--redis-timeout', '5', c], ['worker', '--model', model, '--queue', `${redis.url}/99`, '--redis-timeout', '5']]) {
      const r = cli(args);
      assert.is(r.status, 1, r.stderr);
      assert.match(r.stderr, /database 99 cannot be used/);
    }
  } finally { await redis.stop(); }
});

test('queue: a job of another run that a worker held when the coordinator took its shard is never taken (before: its stale scores, exit 0)', async () => {
  if (!canRun('queue: stale job of another run scored again', redisMissing())) return;
  const redis = await startRedis();
  const c = join(dir, 'stale.jsonl'); writeFileSync(c, lines(3, 'n'));
  const ref = join(dir, 'stale-ref.jsonl');
  await scoreCorpus({ inputs: [c], out: ref, model });
  const conn = { host: '127.0.0.1', port: redis.port };
  const q = new Queue(queueName('myrun'), { connection: conn });
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  let taken!: () => void;
  const active = new Promise<void>((r) => { taken = r; });
  // a worker of an earlier run under the same id, on shard-0 when the new coordinator starts: it returns
  // well-formed records for the same documents (ids, sources, byte lengths) with made-up bits
  const docs = readFileSync(c, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; text: string });
  const stale = docs.map((d) => { const bytes = Buffer.byteLength(d.text); return { id: d.id, source: c, bytes, bits: 1, bits_per_byte: 1 / bytes }; });
  const fake = new Worker(queueName('myrun'), async () => { taken(); await held; return stale; }, { connection: conn, autorun: false });
  try {
    await q.add('shard', { fingerprint: 'an earlier run' }, { jobId: 'shard-0' });
    void fake.run();
    await active;
    const out = join(dir, 'stale-out.jsonl');
    const coord = cliChild(['score', '--model', model, '--out', out, '--queue', redis.url, '--run-id', 'myrun', c]);
    await coord.waitFor(/made for other inputs, model or options; replacing it/, 30_000);
    release();
    await fake.close(); // finishes the held job, then takes no more
    const real = cliChild(['worker', '--model', model, '--queue', redis.url, '--run-id', 'myrun']);
    const code = await Promise.race([coord.done, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000).unref())]);
    real.proc.kill('SIGTERM'); await real.done;
    if (code === 'hung') coord.proc.kill('SIGKILL');
    assert.is(code, 0, coord.err());
    assert.match(coord.err(), /scoring it again/);
    assert.ok(readFileSync(out).equals(readFileSync(ref)), 'the one-machine scores, not the stale ones');
  } finally { await fake.close().catch(() => {}); await q.close(); await redis.stop(); }
});

test.run();
