// Issue 20 (items 4–10): what a new user runs into. A corpus input without
// --out is still a corpus (records on stdout), progress counts documents
// inside a shard, drift without the plotting packages, no files written
// outside named paths, a backend that cannot start as a clean table row,
// the package entry without the corpus/queue layer, one casing in JS results.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scoreCorpus } from '../src/index.js';
import { writeSmallLM } from './helpers/corpus.js';

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

test.run();
