// Model files made to hurt the loader (a read-only review's findings): sizes in config.json that would
// allocate gigabytes before a header is compared, a fla shard handed to the seed loader (read whole
// before its names were looked at), a FIFO as a checkpoint or as the hub cache's refs/main (blocked
// for ever), an index.json of many shards (quadratic), JSON nested deep enough to overflow the stack,
// an activation named after an Object.prototype member, a tensor named twice in a header, a head whose
// values overflow float32 (NaN scores), and info describing folders that the load refuses. Each case
// failed before (see the "before" notes in src/).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNet, RetNetLM, SafetensorsFile } from '../src/index.js';
import { firstDuplicateKey } from '../src/safetensors.js';
import { FIXTURES, ROOT } from './helpers.js';
import { charTokenizerJson } from './helpers/char-tokenizer.js';

/** `p` must reject with an error `ok` accepts. */
async function rejects(p: Promise<unknown>, ok: (e: Error & { code?: string }) => boolean, what = ''): Promise<void> {
  let err: unknown = null;
  try { await p; } catch (e) { err = e; }
  if (err === null) assert.unreachable(`${what}: did not reject`);
  if (!ok(err as Error & { code?: string })) throw new Error(`${what}: rejected with another error: ${(err as Error).message}`);
}

const tmp = mkdtempSync(join(tmpdir(), 'retnet-load-hostile-'));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const cli = (args: string[], env: Record<string, string> = {}, timeout = 60_000) =>
  spawnSync(process.execPath, [MAIN, ...args], { cwd: tmp, encoding: 'utf8', timeout, env: { ...process.env, NO_COLOR: '1', ...env } });
const f32 = join(FIXTURES, 'fla', 'f32');
/** a copy of the f32 fixture, with a tokenizer.json (the text commands need one) unless `tokenizer` is false */
const copy = (as: string, tokenizer = true) => {
  const d = join(tmp, as);
  cpSync(f32, d, { recursive: true });
  if (tokenizer) writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(charTokenizerJson()));
  return d;
};
const mkfifo = (p: string) => { const r = spawnSync('mkfifo', [p]); if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr}`); };
const setConfig = (dir: string, patch: Record<string, unknown>) => {
  const p = join(dir, 'config.json');
  writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), ...patch }));
};
/** a safetensors file from a header object or text and data bytes */
function writeRaw(path: string, header: unknown, data: Uint8Array = new Uint8Array(0)): void {
  const hb = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(hb.length));
  writeFileSync(path, Buffer.concat([len, hb, data]));
}
/** a folder's model.safetensors with its header edited (data offsets are relative: the data is kept) */
function editHeader(dir: string, edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void): void {
  const p = join(dir, 'model.safetensors'), b = readFileSync(p), n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString());
  edit(h);
  writeRaw(p, h, b.subarray(8 + n));
}
/** one float32 value of a tensor of a folder's model.safetensors set */
function setF32(dir: string, name: string, index: number, value: number): void {
  const p = join(dir, 'model.safetensors'), b = Buffer.from(readFileSync(p)), n = Number(b.readBigUInt64LE(0));
  const t = JSON.parse(b.subarray(8, 8 + n).toString())[name];
  assert.is(t.dtype, 'F32', name);
  b.writeFloatLE(value, 8 + n + t.data_offsets[0] + 4 * index);
  writeFileSync(p, b);
}

test('config.json sizes the headers contradict: refused before anything is built from them (before: hidden_size 2^27 took 1.6 GB, 1e300 a RangeError, exit 1)', async () => {
  for (const [name, hidden] of [['huge', 2 ** 27], ['absurd', 1e300]] as const) {
    const d = copy(`hidden-${name}`);
    setConfig(d, { hidden_size: hidden });
    const rss0 = process.memoryUsage().rss;
    await rejects(RetNetLM.loadFolder(d), (e: Error & { code?: string }) =>
      e.code === 'E_WEIGHTS' && /model\.embeddings\.weight has shape \[\d+, 64\], but config\.json .* gives \[\d+, /.test(e.message));
    assert.ok(process.memoryUsage().rss - rss0 < 256 * 2 ** 20, `${name}: the refusal allocated ${(process.memoryUsage().rss - rss0) / 2 ** 20} MiB`);
    const r = cli(['info', d]);
    assert.is(r.status, 2, `${name}: info ${r.stderr}${r.stdout}`);
    assert.match(r.stderr, /E_WEIGHTS: .*model\.embeddings\.weight has shape/);
  }
});

test('a fla shard (512 MB of BF16, sparse on disk) given to the seed loaders: refused by its names before any tensor is read (before: read and widened whole)', async () => {
  const p = join(tmp, 'sparse.safetensors');
  const rows = 65536, cols = 4096, bytes = rows * cols * 2;
  const hb = Buffer.from(JSON.stringify({ 'model.layers.0.attn.q_proj.weight': { dtype: 'BF16', shape: [rows, cols], data_offsets: [0, bytes] } }));
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(hb.length));
  const fd = openSync(p, 'w');
  writeSync(fd, Buffer.concat([len, hb]));
  ftruncateSync(fd, 8 + hb.length + bytes); // a hole: nothing on disk
  closeSync(fd);
  const rss0 = process.memoryUsage().rss;
  await rejects(RetNet.load(p), (e: Error & { code?: string }) => e.code === 'E_WEIGHTS' && /no RetNet layers found.*pass its folder/.test(e.message));
  await rejects(RetNetLM.load(p), (e: Error & { code?: string }) => e.code === 'E_WEIGHTS' && /not a language-model checkpoint: missing embed\.weight.*pass its folder/.test(e.message));
  assert.ok(process.memoryUsage().rss - rss0 < 128 * 2 ** 20, `the refusals allocated ${(process.memoryUsage().rss - rss0) / 2 ** 20} MiB`);
});

test('a FIFO as a checkpoint, an input, or the hub cache\'s refs/main: an error naming it (before: blocked for ever)', () => {
  const fifo = join(tmp, 'p.safetensors');
  mkfifo(fifo);
  // (in child processes: in this one the old open blocked the test run itself)
  for (const args of [['info', fifo], ['run', '--model', join(FIXTURES, 'retnet-tiny.safetensors'), '--input', fifo, '--out', join(tmp, 'y.safetensors')]]) {
    const r = cli(args, {}, 20_000);
    assert.is(r.error, undefined, `${args[0]}: ${r.error}`); // no timeout
    assert.ok(r.status === 1 || r.status === 2, `${args[0]}: status ${r.status}`);
    assert.match(r.stderr, /is a FIFO, not a regular file/, args[0]);
  }
  const cache = join(tmp, 'hub'), repo = join(cache, 'models--org--name');
  mkdirSync(join(repo, 'refs'), { recursive: true });
  mkdirSync(join(repo, 'snapshots'));
  mkfifo(join(repo, 'refs', 'main'));
  const r = cli(['info', 'org/name'], { HF_HUB_CACHE: cache }, 20_000);
  assert.is(r.error, undefined, `hub: ${r.error}`);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /refs\/main is a FIFO, not a regular file; it names the revision to run/);
});

test('model.safetensors.index.json with 150,000 shards: refused for the missing shards at once (before: a quadratic scan, minutes)', () => {
  const d = join(tmp, 'index');
  mkdirSync(d);
  cpSync(join(f32, 'config.json'), join(d, 'config.json'));
  const wm: Record<string, string> = {};
  for (let i = 0; i < 150_000; i++) wm[`t${i}`] = `shard-${i}.safetensors`;
  writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: wm }));
  const r = cli(['info', d], {}, 30_000); // the old scan took minutes here
  assert.is(r.error, undefined, `${r.error}`);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /missing shards "?shard-0\.safetensors/);
});

test('JSON nested 100,000 deep in config.json or a checkpoint\'s metadata: a clear error (before: "Maximum call stack size exceeded", exit 1)', async () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const d = copy('deep-config');
  const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
  writeFileSync(join(d, 'config.json'), JSON.stringify(cfg).replace(/"hidden_size":\s*\d+/, `"hidden_size": ${deep(100_000)}`));
  for (const cmd of [['info', d], ['score', '--model', d, join(tmp, 'x.txt')]]) {
    writeFileSync(join(tmp, 'x.txt'), 'hello');
    const r = cli(cmd);
    assert.is(r.status, 2, `${cmd[0]}: ${r.stderr}`);
    assert.match(r.stderr, /hidden_size/, cmd[0]);
    assert.not.match(r.stderr, /call stack/, cmd[0]);
  }
  // a seed checkpoint whose metadata config has a deep "arch"
  const ck = join(tmp, 'deep-meta.safetensors');
  const tiny = readFileSync(join(FIXTURES, 'retnet-tiny.safetensors')), n = Number(tiny.readBigUInt64LE(0));
  const h = JSON.parse(tiny.subarray(8, 8 + n).toString());
  const cfg0 = (h.__metadata__?.config as string | undefined) ?? '{}';
  // "arch" last, so it is the one JSON.parse keeps
  h.__metadata__ = { ...(h.__metadata__ ?? {}), config: cfg0.replace(/\}\s*$/, `${cfg0.trim() === '{}' ? '' : ','}"arch": ${deep(100_000)}}`) };
  writeRaw(ck, h, tiny.subarray(8 + n));
  await rejects(RetNet.load(ck), (e: Error & { code?: string }) => typeof e.code === 'string' && !/call stack/.test(e.message));
});

test('hidden_act "toString" / "__proto__" / "constructor": refused as an activation (before: found on Object.prototype; info printed a function, score exit 1)', async () => {
  for (const act of ['toString', '__proto__', 'constructor']) {
    const d = copy(`act-${act}`);
    setConfig(d, { hidden_act: act });
    await rejects(RetNetLM.loadFolder(d), (e: Error & { code?: string }) => e.code === 'E_CONFIG' && /hidden_act/.test(e.message), act);
    const r = cli(['info', d]);
    assert.is(r.status, 2, `${act}: ${r.stdout}`);
    assert.match(r.stderr, /hidden_act/);
  }
});

test('info refuses what the load refuses: an unknown dtype (exit 2, was 1), tie_word_embeddings the weights contradict (was described as tied, exit 0)', () => {
  const dt = copy('dtype');
  editHeader(dt, (h) => { const t = h['model.norm.weight']!; h['model.norm.weight'] = { ...t, dtype: 'F8_E4M3', shape: [t.data_offsets[1]! - t.data_offsets[0]!] }; });
  for (const cmd of [['info', dt], ['score', '--model', dt, join(tmp, 'x.txt')]]) {
    const r = cli(cmd);
    assert.is(r.status, 2, `${cmd[0]}: ${r.stderr}`);
    assert.match(r.stderr, /F8_E4M3/, cmd[0]);
  }
  const tie = copy('tie');
  setConfig(tie, { tie_word_embeddings: true });
  let r = cli(['info', tie]);
  assert.is(r.status, 2, r.stdout);
  assert.match(r.stderr, /tie_word_embeddings is true but the folder has lm_head\.weight/);
  const vocab = copy('vocab');
  setConfig(vocab, { vocab_size: 100 });
  r = cli(['info', vocab]);
  assert.is(r.status, 2, r.stdout);
  assert.match(r.stderr, /model\.embeddings\.weight has shape \[\d+, 64\], but config\.json .* gives \[100, 64\]/);
});

test('a header naming a tensor twice is E_SAFETENSORS (before: JSON.parse kept the second, and it loaded); firstDuplicateKey looks at the top level only', () => {
  const p = join(tmp, 'dup.safetensors');
  writeRaw(p, '{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4));
  assert.throws(() => SafetensorsFile.open(p), (e: Error & { code?: string }) => e.code === 'E_SAFETENSORS' && /header names "w" twice/.test(e.message));
  assert.is(firstDuplicateKey('{"a":1,"b":{"a":2,"a":3},"c":[{"a":1},{"a":1}]}'), null, 'nested keys are not the header\'s names');
  assert.is(firstDuplicateKey('{"x\\"y":1, "x\\"y" :2}'), 'x"y');
  assert.is(firstDuplicateKey('{"\\u0061":1,"a":2}'), 'a', 'escapes decoded');
  assert.is(firstDuplicateKey('{"a":"a","b":"a"}'), null, 'values are not keys');
});

test('a head whose values overflow float32 on a worst-case input: refused at load like the layers (before: NaN scores, or perplexity Infinity with exit 0)', async () => {
  const d = copy('head-overflow');
  setF32(d, 'lm_head.weight', 320, 3e38);
  await rejects(RetNetLM.loadFolder(d), (e: Error & { code?: string }) => e.code === 'E_WEIGHTS' && /lm_head\.weight has max \|value\| 3e\+38, which can overflow float32/.test(e.message));
  // the byte LM's head the same way
  const lm = readFileSync(join(ROOT, 'src', 'assets', 'bytes-4x128.safetensors')), n = Number(lm.readBigUInt64LE(0));
  const h = JSON.parse(lm.subarray(8, 8 + n).toString()), b = Buffer.from(lm);
  assert.is(h['head.weight'].dtype, 'F32');
  b.writeFloatLE(3e38, 8 + n + h['head.weight'].data_offsets[0]);
  const p = join(tmp, 'byte-head.safetensors');
  writeFileSync(p, b);
  await rejects(RetNetLM.load(p), (e: Error & { code?: string }) => e.code === 'E_WEIGHTS' && /weight head\.weight has the value 3e\+38 at \[0, 0\], which can overflow float32/.test(e.message));
});

test('a model folder without tokenizer.json: score (files and corpus), generate and worker refuse it before loading or hashing, exit 2 (before: score --out hashed the weights, then exit 1 advising token ids)', () => {
  const d = copy('no-tokenizer', false);
  writeFileSync(join(tmp, 'x.txt'), 'hello');
  for (const args of [['score', '--model', d, join(tmp, 'x.txt')], ['score', '--model', d, '--out', join(tmp, 'nt.jsonl'), join(tmp, 'x.txt')],
    ['generate', '--model', d, '--prompt', 'hi'], ['worker', '--queue', 'redis://127.0.0.1:1', '--model', d]]) {
    const r = cli(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`has no tokenizer\\.json: \`retnet ${args[0]}\` reads and writes text`), args.join(' '));
  }
  // info still describes it
  const r = cli(['info', d]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /tokenizer\s+none/);
});

test.run();
