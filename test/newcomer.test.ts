// Issue 20 (items 4–10): what a new user runs into. A corpus input without
// --out is still a corpus (records on stdout), progress counts documents
// inside a shard, drift without the plotting packages, no files written
// outside named paths, a backend that cannot start as a clean table row,
// the package entry without the corpus/queue layer, one casing in JS results.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scoreCorpus } from '../src/index.js';
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

test.run();
