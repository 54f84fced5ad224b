// Issue 20 (items 4–10): what a new user runs into. A corpus input without
// --out is still a corpus (records on stdout), progress counts documents
// inside a shard, drift without the plotting packages, no files written
// outside named paths, a backend that cannot start as a clean table row,
// the package entry without the corpus/queue layer, one casing in JS results.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scoreCorpus, type CorpusProgress } from '../src/index.js';
import { writeSmallLM } from './helpers/corpus.js';
import { ROOT } from './helpers.js';

/** The corpus/queue layer's packages (as in bench/import-cost.ts): none may load with the package entry. */
const HEAVY = ['bullmq', 'ioredis', 'hyparquet', 'hyparquet-compressors', 'fzstd', 'cli-progress'];

const dir = mkdtempSync(join(tmpdir(), 'retnet-newcomer-'));
const model = join(dir, 'lm.safetensors');
writeSmallLM(model);

/** `n` JSONL documents of different lengths (ids d0, d1, …). */
function writeJsonl(path: string, n: number, scale = 40): string {
  writeFileSync(path, Array.from({ length: n }, (_, i) => JSON.stringify({ id: `d${i}`, text: `doc ${i} `.repeat(1 + ((i * 7) % 13)).padEnd(scale * (1 + (i % 5)), '.') })).join('\n') + '\n');
  return path;
}

test('item 10: scoreCorpus() returns camelCase; --summary-json keeps the documented snake_case names', async () => {
  const corpus = writeJsonl(join(dir, 'case.jsonl'), 12);
  const s = await scoreCorpus({ inputs: [corpus], out: join(dir, 'case.out.jsonl'), model, backend: 'js' });
  for (const k of ['runId', 'bitsPerByte', 'resumedDocuments', 'bytesPerSecond', 'peakRssBytes']) assert.ok(k in s, `summary has ${k}`);
  for (const k of Object.keys(s)) assert.not.match(k, /_/, `no snake_case field in the JS summary: ${k}`);
  assert.is(s.documents, 12);
  const { score } = await import('../src/cli/commands/score.js');
  const sj = join(dir, 'case.sum.json');
  const quiet = { write: () => true };
  const code = await score.run(['--model', model, '--backend', 'js', '--out', join(dir, 'case.out2.jsonl'), '--summary-json', sj, corpus], { stdout: quiet, stderr: { ...quiet, isTTY: false }, stdin: process.stdin });
  assert.is(code, 0);
  const j = JSON.parse(readFileSync(sj, 'utf8'));
  assert.equal(Object.keys(j), ['run_id', 'out', 'documents', 'skipped', 'bytes', 'bits', 'bits_per_byte', 'resumed_documents', 'shards', 'seconds', 'bytes_per_second', 'peak_rss_bytes']);
  assert.is(j.run_id, s.runId);
  assert.is(j.bits_per_byte, s.bitsPerByte);
  const rec = JSON.parse(readFileSync(join(dir, 'case.out2.jsonl'), 'utf8').split('\n')[0]);
  assert.equal(Object.keys(rec), ['id', 'source', 'bytes', 'bits', 'bits_per_byte'], 'JSONL records keep their snake_case names');
});

test('item 9: importing the package entry loads no corpus/queue package; the library works with them missing', () => {
  // 1. the modules a cold import loads (ESM load hook + the require cache): none of the corpus/queue layer's packages
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'bench', 'import-cost.js'), '--runs', '1'], { encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  const cost = JSON.parse(r.stdout);
  assert.ok(cost.modules > 10, `modules seen: ${cost.modules}`);
  assert.equal(cost.heavyLoaded, [], `loaded with the entry: ${cost.packages.join(', ')}`);
  // 2. with those packages unresolvable, a forward and an LM score still run; the corpus
  //    layer asks for them only when used (a .zst input here), and then names the package
  const hook = pathToFileURL(join(ROOT, 'dist', 'test', 'helpers', 'hide-packages.js')).href;
  const zst = join(dir, 'hidden.jsonl.zst');
  writeFileSync(zst, Buffer.from('28b52ffd2000010000', 'hex')); // an empty zstd frame
  const script = `
    const { RetNet, RetNetLM, Tensor, scoreCorpus } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'src', 'index.js')).href)});
    const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
    const y = await m.forward(Tensor.randn([1, 4, 8], { seed: 1 }), { numChunks: 2, workers: 1 });
    await m.close();
    const lm = await RetNetLM.load(${JSON.stringify(model)});
    const s = await lm.score(new TextEncoder().encode('hello'), { backend: 'js' });
    await lm.close();
    let corpusError = '';
    try { await scoreCorpus({ inputs: [${JSON.stringify(zst)}], out: ${JSON.stringify(join(dir, 'hidden.out.jsonl'))}, model: ${JSON.stringify(model)}, backend: 'js' }); } catch (e) { corpusError = e.message; }
    console.log(JSON.stringify({ shape: y.shape, bpb: s.bitsPerByte, corpusError }));`;
  const file = join(dir, 'hidden-import.mjs');
  writeFileSync(file, script); // a file, not -e: worker threads inherit the flags, and --input-type breaks them
  const c = spawnSync(process.execPath, [`--import=${hook}`, file], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, RETNET_HIDE_PACKAGES: HEAVY.join(',') },
  });
  assert.is(c.status, 0, c.stderr);
  const o = JSON.parse(c.stdout.trim().split('\n').pop()!);
  assert.equal(o.shape, [1, 4, 8]);
  assert.ok(o.bpb > 0);
  assert.match(o.corpusError, /fzstd/, 'the hook hides what it should: the zstd reader cannot load fzstd');
});

test('items 2 and 3: prepare builds (git installs, npm pack) once; retnet/tfjs exports createTfjsExecutor; backendInfo() is a Promise', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.scripts.prepare, /tools\/build\.mjs/);
  assert.is(pkg.scripts.prepack, undefined, 'npm pack runs prepare: no second build in prepack');
  assert.ok(existsSync(join(ROOT, 'tools', 'build.mjs')));
  assert.equal(pkg.exports['./tfjs'], { types: './dist/src/tfjs.d.ts', default: './dist/src/tfjs.js' });
  // the package's own name resolves through "exports" (self-reference), as it does for a user
  const tfjs = await import('retnet/tfjs' as string);
  assert.type(tfjs.createTfjsExecutor, 'function');
  const { RetNet, Tensor } = await import('retnet' as string);
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
  try {
    await m.forward(Tensor.randn([1, 4, 8], { seed: 1 }), { backend: 'js' });
    const info = m.backendInfo();
    assert.instance(info, Promise);
    assert.ok(Array.isArray(await info));
  } finally { await m.close(); }
});

/** `retnet score ...args` in this process, stdout and stderr collected. */
async function scoreCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { score } = await import('../src/cli/commands/score.js');
  const out: string[] = [], err: string[] = [];
  const code = await score.run(args, {
    stdout: { write: (t) => out.push(String(t)) }, stderr: { write: (t) => err.push(String(t)), isTTY: false }, stdin: process.stdin,
  });
  return { code, out: out.join(''), err: err.join('') };
}

test('item 4: a JSONL INPUT without --out is a corpus: per-document records on stdout, summary on stderr', async () => {
  const corpus = writeJsonl(join(dir, 'twenty.jsonl'), 20);
  const out = join(dir, 'twenty.out.jsonl');
  const withOut = await scoreCli(['--model', model, '--out', out, corpus]);
  assert.is(withOut.code, 0, withOut.err);
  const r = await scoreCli(['--model', model, corpus]);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, readFileSync(out, 'utf8'), 'stdout holds the records --out writes');
  assert.is(r.out.trim().split('\n').length, 20);
  assert.match(r.err, /^retnet: 20 documents \(0 skipped, 0 resumed\), .* bits\/byte, .* → stdout\n$/);
  // a directory too; and a plain file next to a corpus INPUT is one more document of the corpus
  const plain = join(dir, 'plain.txt');
  writeFileSync(plain, 'one plain document');
  const mixed = await scoreCli(['--model', model, corpus, plain]);
  assert.is(mixed.code, 0, mixed.err);
  const recs = mixed.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(recs.length, 21);
  assert.equal([recs[0].id, recs[20].id, recs[20].bytes], ['d0', plain, 18]);
  // options that need an output file, and --jsonl with a corpus: usage errors
  let u = await scoreCli(['--model', model, '--resume', corpus]);
  assert.is(u.code, 2); assert.match(u.err, /--resume needs --out FILE/);
  u = await scoreCli(['--model', model, '--jsonl', join(dir, 'x.jsonl'), corpus]);
  assert.is(u.code, 2); assert.match(u.err, /--jsonl is for plain FILEs; .*twenty\.jsonl is a corpus/);
  u = await scoreCli(['--model', model, '--text-field', 'body', plain]);
  assert.is(u.code, 2); assert.match(u.err, /--text-field needs a corpus/);
  u = await scoreCli(['--model', model, '--queue', 'redis://127.0.0.1:1', corpus]);
  assert.is(u.code, 2); assert.match(u.err, /--queue needs --out FILE \(the output file the run writes\)/);
  for (const k of ['text-field', 'id-field', 'include']) {
    u = await scoreCli(['--model', model, `--${k}`, '', corpus]);
    assert.is(u.code, 2, `--${k} ''`); assert.match(u.err, new RegExp(`--${k} needs a (field name|pattern) \\(got an empty one\\)`));
  }
});

test('item 5: progress counts documents and bytes within one shard', async () => {
  const corpus = writeJsonl(join(dir, 'sixty.jsonl'), 60, 200);
  for (const backend of ['js', 'wasm'] as const) {
    const seen: CorpusProgress[] = [];
    const s = await scoreCorpus({ inputs: [corpus], out: join(dir, `sixty.${backend}.jsonl`), model, backend, shardBytes: 1 << 30, onProgress: (p) => seen.push({ ...p }) });
    assert.is(s.shards, 1, 'one shard');
    const inside = seen.filter((p) => p.documents === 0);
    assert.ok(inside.some((p) => p.documentsScored > 0 && p.documentsScored < 60), `${backend}: documents counted before the shard ends: ${inside.map((p) => p.documentsScored).join(',')}`);
    assert.ok(inside.some((p) => p.bytes > 0 && p.bytes < s.bytes), `${backend}: bytes counted before the shard ends`);
    assert.ok(inside.some((p) => p.fraction > 0 && p.fraction < 1), `${backend}: the fraction moves inside the shard: ${inside.map((p) => p.fraction.toFixed(2)).join(',')}`);
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i].documentsScored >= seen[i - 1].documentsScored && seen[i].fraction >= seen[i - 1].fraction - 1e-12, `${backend}: monotone`);
    }
    const last = seen[seen.length - 1];
    assert.equal([last.documents, last.documentsScored, last.bytes, last.fraction], [60, 60, s.bytes, 1]);
  }
});

test('item 7: a failed corpus run (empty corpus, Redis unreachable) leaves no FILE.partial or .partial.json', async () => {
  const work = mkdtempSync(join(tmpdir(), 'retnet-newcomer-fail-'));
  const empty = join(work, 'empty.jsonl');
  writeFileSync(empty, '');
  const out = join(work, 'out.jsonl');
  let r = await scoreCli(['--model', model, '--out', out, empty]);
  assert.is(r.code, 1); assert.match(r.err, /empty corpus/);
  assert.equal(readdirSync(work).sort(), ['empty.jsonl']);
  const corpus = writeJsonl(join(work, 'c.jsonl'), 3);
  r = await scoreCli(['--model', model, '--out', out, '--queue', 'redis://127.0.0.1:1', '--redis-timeout', '0.5', corpus]);
  assert.is(r.code, 1); assert.match(r.err, /cannot reach Redis/);
  assert.equal(readdirSync(work).sort(), ['c.jsonl', 'empty.jsonl']);
  rmSync(work, { recursive: true, force: true });
});

/** The CLI as a child process in `cwd`, with `hide` unresolvable (test/helpers/hide-packages). */
function cliIn(cwd: string, args: string[], hide: string[] = []) {
  const hook = pathToFileURL(join(ROOT, 'dist', 'test', 'helpers', 'hide-packages.js')).href;
  const r = spawnSync(process.execPath, [...(hide.length ? [`--import=${hook}`] : []), join(ROOT, 'dist', 'src', 'cli', 'main.js'), ...args], {
    cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, NO_COLOR: '1', RETNET_HIDE_PACKAGES: hide.join(',') },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Every path under `root` (relative), sorted. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = join(d, e.name); out.push(p.slice(root.length + 1)); if (e.isDirectory()) walk(p); } };
  walk(root);
  return out.sort();
}

const TFJS = ['@tensorflow/tfjs', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-backend-webgpu', '@tensorflow/tfjs-backend-wasm', 'webgpu'];
const SMALL = ['--layers', '1', '--dim', '16', '--heads', '2'];

test('items 6 and 7: drift without vega/vega-lite (and without tfjs) exits 0 with its CSV/JSON and a note, in a temp folder it names; bench writes nothing; the cwd is untouched', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'retnet-newcomer-cwd-'));
  writeFileSync(join(cwd, 'mine.txt'), 'a file of the user');
  const before = snapshot(cwd);
  const d = cliIn(cwd, ['drift', '--length', '16', '--workers', '1'], ['vega', 'vega-lite', ...TFJS]);
  assert.is(d.code, 0, d.err);
  assert.match(d.err, /drift: L = 16, backends wasm; output folder /, 'defaults: wasm only when tfjs is not installed');
  const where = /output folder (\S+)/.exec(d.err)![1];
  assert.ok(where.startsWith(tmpdir()), `under the OS temp dir: ${where}`);
  assert.equal(readdirSync(where).sort(), ['drift.csv', 'drift.json']);
  assert.match(d.err, /drift: note: drift\.svg skipped: .*vega@5\.33\.1 vega-lite@5\.23\.0.*not installed/);
  assert.match(d.out, new RegExp(`wrote ${join(where, 'drift.csv').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, drift\.json\n`));
  const j = JSON.parse(readFileSync(join(where, 'drift.json'), 'utf8'));
  assert.ok(j.rows.length > 0 && j.rows.every((r: { error?: string }) => !r.error));
  assert.match(j.plot, /drift\.svg skipped/);
  rmSync(where, { recursive: true, force: true });
  // --no-plot: no SVG, with the plotting packages installed
  const np = cliIn(cwd, ['drift', '--length', '8', '--backends', 'js', '--no-plot', '--out-dir', join(dir, 'np')]);
  assert.is(np.code, 0, np.err);
  assert.equal(readdirSync(join(dir, 'np')).sort(), ['drift.csv', 'drift.json']);
  assert.match(np.err, /drift: note: drift\.svg not drawn \(--no-plot\)/);
  // bench without --json: the results on stdout, nothing written
  const b = cliIn(cwd, ['bench', '--lengths', '16', '--chunks', '2', '--workers', '1', ...SMALL]);
  assert.is(b.code, 0, b.err);
  assert.match(b.out, /results not saved: add --json FILE/);
  assert.equal(snapshot(cwd), before, 'nothing written into the current directory');
  rmSync(cwd, { recursive: true, force: true });
});

test('items 5 and 8: bench prints each cell as it finishes; a backend that cannot start is one clean row with the reason, exit 0, advice for WebGPU', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'retnet-newcomer-bench-'));
  const json = join(cwd, 'b.json');
  const r = cliIn(cwd, ['bench', '--backend', 'wasm,tfjs', '--lengths', '16,32', '--chunks', '2', '--workers', '1', ...SMALL, '--json', json], TFJS);
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /^bench: wasm workers=1 L=16 chunks=2: \d+ tokens\/s/m);
  assert.match(r.err, /^bench: wasm workers=1 L=32 chunks=2: \d+ tokens\/s/m);
  assert.match(r.err, /^bench: tfjs: not available, skipped: no TensorFlow\.js engine could be loaded/m);
  const lines = r.out.split('\n');
  const header = lines.find((l) => l.startsWith('backend'))!;
  const tfjsRows = lines.filter((l) => l.startsWith('tfjs '));
  assert.is(tfjsRows.length, 1, 'one row for the backend');
  const col = header.indexOf('tokens/s');
  assert.is(tfjsRows[0].slice(col, col + 8).trim(), '-', `no error text in the tokens/s column: ${tfjsRows[0]}`);
  assert.match(tfjsRows[0], /not available: no TensorFlow\.js engine could be loaded$/);
  assert.match(r.out, /^tfjs: .*use WebGPU: `npm install webgpu @tensorflow\/tfjs @tensorflow\/tfjs-backend-webgpu`.*@tensorflow\/tfjs-node-gpu is the CUDA option/m);
  const j = JSON.parse(readFileSync(json, 'utf8'));
  assert.is(j.rows.filter((x: { backend: string }) => x.backend === 'wasm').length, 2);
  assert.match(j.rows.find((x: { backend: string }) => x.backend === 'tfjs').unavailable, /no TensorFlow\.js engine/);
  // only an unavailable backend: nothing measured, exit 1
  const none = cliIn(cwd, ['bench', '--backend', 'tfjs', '--lengths', '16', '--chunks', '2', ...SMALL], TFJS);
  assert.is(none.code, 1, none.err);
  rmSync(cwd, { recursive: true, force: true });
});

test.run();
