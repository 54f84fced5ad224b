// Corpora under a tokenized (fla-family) model: `retnet score --model DIR --out …`
// gives one record per document with tokens, nll and ppl (equal to RetNetLM.score of
// the text), a summary with the corpus perplexity; queue workers loading the same
// folder give the same bytes; the run's model digest covers every file of the folder
// (a changed tokenizer.json refuses a resume). On a small random model with Mistral's
// 32k tokenizer (test/helpers/fla-folder.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNetLM, scoreCorpus } from '../src/index.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';
import { canRun } from './helpers/skip.js';
import { cliChild, redisMissing, startRedis } from './helpers/corpus.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-fla-corpus-'));
const model = await makeTinyFlaFolder(join(tmp, 'model'));
const corpus = join(tmp, 'docs.jsonl');
const texts = Array.from({ length: 40 }, (_, i) => `Document ${i}: ${'retention keeps a decayed state; '.repeat(1 + (i % 7))}é ${i * 37}\n`);
writeFileSync(corpus, texts.map((t, i) => JSON.stringify({ id: `d${i}`, text: t })).join('\n') + '\n');

test('local: records carry tokens, nll, ppl equal to RetNetLM.score; summary has the corpus perplexity', async () => {
  const out = join(tmp, 'local.jsonl');
  const s = await scoreCorpus({ inputs: [corpus], out, model, shardBytes: 600 });
  assert.is(s.documents, 40);
  const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const lm = await RetNetLM.load(model);
  try {
    let nll = 0, predicted = 0, tokens = 0;
    for (let i = 0; i < texts.length; i++) {
      const r = await lm.score(texts[i]);
      assert.is(recs[i].id, `d${i}`);
      assert.is(recs[i].tokens, r.tokens);
      // same ragged-batch arithmetic per document as one at a time (float32, per-row independent): equal to ~1e-6 relative
      assert.ok(Math.abs(recs[i].nll - r.nll) <= 1e-6 * r.nll, `nll ${recs[i].nll} vs ${r.nll}`);
      assert.ok(Math.abs(recs[i].ppl - r.perplexity) <= 1e-6 * r.perplexity);
      assert.ok(Math.abs(recs[i].bits_per_byte - r.bitsPerByte!) <= 1e-6 * r.bitsPerByte!);
      nll += recs[i].nll; predicted += recs[i].tokens - 1; tokens += recs[i].tokens;
    }
    assert.is(s.tokens, tokens);
    assert.ok(Math.abs(s.perplexity! - Math.exp(nll / predicted)) <= 1e-9 * s.perplexity!);
  } finally { await lm.close(); }
});

test('resume: a changed tokenizer.json (same weights) is another model: the resume is refused; the same folder resumes to the uninterrupted output', async () => {
  const folder = await makeTinyFlaFolder(join(tmp, 'model-resume'));
  const out = join(tmp, 'resume.jsonl');
  const ac = new AbortController();
  let err: unknown;
  try {
    await scoreCorpus({ inputs: [corpus], out, model: folder, runId: 'fla', shardBytes: 600, signal: ac.signal, onProgress: (p) => { if (p.documents > 0) ac.abort(); } });
  } catch (e) { err = e; }
  assert.is((err as { code?: string })?.code, 'E_ABORTED');
  const partial = readFileSync(`${out}.partial`);
  assert.ok(partial.length > 0);
  const tok = join(folder, 'tokenizer.json'), original = readFileSync(tok);
  appendFileSync(tok, ' '); // still valid JSON, same ids: but not the file the partial was scored with
  let e2: unknown;
  try { await scoreCorpus({ inputs: [corpus], out, model: folder, runId: 'fla', resume: true, shardBytes: 600 }); } catch (e) { e2 = e; }
  assert.is((e2 as { code?: string })?.code, 'E_CORPUS');
  assert.match((e2 as Error).message, /model SHA-256/);
  assert.ok(readFileSync(`${out}.partial`).equals(partial), 'the partial file is untouched');
  writeFileSync(tok, original);
  await scoreCorpus({ inputs: [corpus], out, model: folder, runId: 'fla', resume: true, shardBytes: 600 });
  const ref = join(tmp, 'resume-ref.jsonl');
  await scoreCorpus({ inputs: [corpus], out: ref, model: folder, shardBytes: 600 });
  assert.ok(readFileSync(out).equals(readFileSync(ref)), 'resumed output = uninterrupted output');
});

test('plain files under a tokenized model: one that is not UTF-8 is a bad record naming its first bad byte (--strict: an error); a BOM is scored as text', async () => {
  const good = join(tmp, 'bom.txt'), bad = join(tmp, 'latin1.txt');
  writeFileSync(good, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(texts[0])]));
  writeFileSync(bad, Buffer.concat([Buffer.from('caf\u00e9 ok '), Buffer.from([0xef, 0xbf, 0xbd]), Buffer.from(' then caf'), Buffer.from([0xe9]), Buffer.from('!')]));
  const lines: string[] = [];
  const out = join(tmp, 'plain.jsonl');
  const s = await scoreCorpus({ inputs: [good, bad], out, model, log: (l) => lines.push(l) });
  assert.is(s.documents, 1); assert.is(s.skipped, 1);
  assert.ok(lines.some((l) => l === `${bad}:1: skipped: not valid UTF-8 at byte 21 (a tokenized model scores text)`), lines.join('\n'));
  const rec = JSON.parse(readFileSync(out, 'utf8'));
  assert.is(rec.bytes, Buffer.byteLength(texts[0]) + 3, 'the BOM counts as the text it is');
  const lm = await RetNetLM.load(model);
  try {
    const r = await lm.score(`\uFEFF${texts[0]}`);
    assert.ok(Math.abs(rec.nll - r.nll) <= 1e-6 * r.nll, `nll ${rec.nll} vs ${r.nll}`);
  } finally { await lm.close(); }
  let err: unknown;
  try { await scoreCorpus({ inputs: [good, bad], out: join(tmp, 'plain-strict.jsonl'), model, strict: true, log: () => {} }); } catch (e) { err = e; }
  assert.match(String((err as Error)?.message), /latin1\.txt:1: not valid UTF-8 at byte 21 .*--strict/);
  // the byte LM scores any bytes: the same file is a document
  const b = await scoreCorpus({ inputs: [bad], out: join(tmp, 'plain-bytes.jsonl'), log: () => {} });
  assert.is(b.documents, 1); assert.is(b.bytes, readFileSync(bad).length);
});

test('queue: two workers with --model DIR give the one-machine output byte for byte', async () => {
  if (!canRun('fla queue: two workers equal one machine', redisMissing())) return;
  const redis = await startRedis();
  try {
    const w1 = cliChild(['worker', '--queue', redis.url, '--model', model]), w2 = cliChild(['worker', '--queue', redis.url, '--model', model]);
    const out = join(tmp, 'queue.jsonl');
    const c = cliChild(['score', '--queue', redis.url, '--model', model, '--out', out, '--shard-bytes', '600', corpus]);
    assert.is(await c.done, 0, c.err());
    assert.match(c.err(), /40 documents .* tokens, perplexity [\d.]+, /);
    const ref = join(tmp, 'ref.jsonl');
    await scoreCorpus({ inputs: [corpus], out: ref, model, shardBytes: 600 });
    assert.ok(readFileSync(out).equals(readFileSync(ref)), 'queue output differs from the one-machine output');
    for (const w of [w1, w2]) { w.proc.kill('SIGTERM'); assert.is(await w.done, 0, w.err()); }
  } finally { await redis.stop(); }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
