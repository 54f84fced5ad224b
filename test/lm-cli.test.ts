// The `retnet score` / `retnet generate` commands, run through a tiny stand-in
// for the CLI's command registry ({ name, summary, usage, run(argv) }), with
// stdout/stderr captured: output format, --jsonl/--per-token, stdin, and bad
// input (directory, unreadable file, non-LM checkpoint, usage errors).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { score } from '../src/cli/commands/score.js';
import { generate } from '../src/cli/commands/generate.js';
import type { Command, CommandIO } from '../src/cli/lm-util.js';
import { RetNetLM } from '../src/index.js';
import { fixturePath, ROOT } from './helpers.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

const registry = new Map<string, Command>([[score.name, score], [generate.name, generate]]);

async function cli(args: string[], stdin: Uint8Array = new Uint8Array(0)): Promise<{ code: number; out: string; err: string; outBytes: Buffer }> {
  const out: Buffer[] = [], err: Buffer[] = [];
  const io: CommandIO = {
    stdout: { write: (s) => out.push(Buffer.from(s)) },
    stderr: { write: (s) => err.push(Buffer.from(s)), isTTY: false },
    stdin: Readable.from([Buffer.from(stdin)]),
  };
  const cmd = registry.get(args[0]);
  if (!cmd) throw new Error(`no command ${args[0]}`);
  const code = await cmd.run(args.slice(1), io);
  const outBytes = Buffer.concat(out);
  return { code, out: outBytes.toString(), err: Buffer.concat(err).toString(), outBytes };
}

const dir = mkdtempSync(join(tmpdir(), 'retnet-lm-cli-'));
const a = join(dir, 'a.py'), b = join(dir, 'b.py');
writeFileSync(a, readFileSync(join(ROOT, 'src', 'random.ts')).subarray(0, 600));
writeFileSync(b, 'import os\nprint(os.getcwd())\n');

test('commands have the registry shape', () => {
  for (const c of registry.values()) {
    assert.type(c.name, 'string'); assert.type(c.summary, 'string'); assert.type(c.usage, 'string'); assert.type(c.run, 'function');
    assert.ok(c.usage.startsWith(`usage: retnet ${c.name}`));
  }
});

test('score: per-file lines, total, --jsonl with --per-token, agrees with the library', async () => {
  const jl = join(dir, 'out.jsonl');
  const r = await cli(['score', '--backend', 'js', '--chunk-size', '64', '--jsonl', jl, '--per-token', a, b]);
  assert.is(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.is(lines.length, 3);
  assert.match(lines[0], new RegExp(`^${a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 600 bytes, [\\d.]+ bits, \\d\\.\\d{4} bits/byte, \\d+ tokens/s$`));
  assert.match(lines[2], new RegExp(`^total: ${600 + readFileSync(b).length} bytes, `));
  const recs = readFileSync(jl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.is(recs.length, 2);
  assert.equal(Object.keys(recs[0]), ['file', 'bytes', 'bits', 'bits_per_byte', 'logprobs']);
  assert.is(recs[0].file, a); assert.is(recs[0].bytes, 600); assert.is(recs[0].logprobs.length, 599);
  const lm = await RetNetLM.load();
  const want = await lm.score(readFileSync(a), { backend: 'js', chunkSize: 64 });
  await lm.close();
  assert.ok(Math.abs(recs[0].bits - want.bits) < 1e-9);
  assert.ok(Math.abs(recs[0].bits_per_byte - want.bitsPerByte) < 1e-12);
});

test('score: stdin as -, jsonl without logprobs', async () => {
  const jl = join(dir, 'stdin.jsonl');
  const r = await cli(['score', '--backend', 'js', '--jsonl', jl, '-'], readFileSync(b));
  assert.is(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^\\(stdin\\): ${readFileSync(b).length} bytes, `));
  const rec = JSON.parse(readFileSync(jl, 'utf8'));
  assert.equal(Object.keys(rec), ['file', 'bytes', 'bits', 'bits_per_byte']);
});

test('score: bad input is a clear error, exit 1 (or 2 for usage)', async () => {
  // a directory is a corpus (issue 20 item 4): an empty one is an error, and leaves no file behind
  const empty = join(dir, 'empty-dir');
  mkdirSync(empty, { recursive: true });
  let r = await cli(['score', empty]);
  assert.is(r.code, 1); assert.match(r.err, /^retnet: empty corpus: no documents in .*empty-dir/);
  r = await cli(['score', join(dir, 'missing.py')]);
  assert.is(r.code, 1); assert.match(r.err, /^retnet: cannot read .*missing\.py: ENOENT/);
  if (process.getuid?.() !== 0) { // root reads anything: chmod cannot make a file unreadable
    const locked = join(dir, 'locked.py');
    writeFileSync(locked, 'x = 1\n'); chmodSync(locked, 0);
    r = await cli(['score', locked]);
    assert.is(r.code, 1); assert.match(r.err, /^retnet: cannot read .*locked\.py: EACCES/);
  }
  r = await cli(['score', '--model', fixturePath('retnet-tiny'), b]);
  assert.is(r.code, 1); assert.match(r.err, /^retnet: .*retnet-tiny\.safetensors: not a language-model checkpoint: missing embed\.weight\n$/);
  r = await cli(['score', '--model', join(dir, 'nope.safetensors'), b]);
  assert.is(r.code, 1); assert.match(r.err, /^retnet: .*nope\.safetensors/);
  for (const args of [[], ['--backend', 'cuda', b], ['--chunk-size', '0', b], ['--per-token', b], ['--frobnicate', b], ['-', '-']]) {
    r = await cli(['score', ...args]);
    assert.is(r.code, 2, `score ${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /usage: retnet score/);
  }
  assert.is(r.out, '');
});

test('generate: prompt + continuation on stdout, decode rate on stderr; seeded', async () => {
  const r = await cli(['generate', '--prompt', 'def main(', '--max-bytes', '40']);
  assert.is(r.code, 0, r.err);
  assert.ok(r.out.startsWith('def main('));
  assert.is(r.outBytes.length, 'def main('.length + 40 + 1);
  assert.match(r.err, /^40 bytes in [\d.]+ s: \d+ bytes\/s decode/);
  const s1 = await cli(['generate', '--prompt', 'import ', '--max-bytes', '30', '--temperature', '0.9', '--seed', '5']);
  const s2 = await cli(['generate', '--prompt', 'import ', '--max-bytes', '30', '--temperature', '0.9', '--seed', '5']);
  assert.is(s1.out, s2.out);
  for (const args of [[], ['--prompt', 'x', '--max-bytes', '-1'], ['--prompt', 'x', '--temperature', 'hot'], ['--prompt', 'x', 'extra']]) {
    const e = await cli(['generate', ...args]);
    assert.is(e.code, 2, `generate ${args.join(' ')}`);
  }
  const e = await cli(['generate', '--model', fixturePath('retnet-tiny'), '--prompt', 'x']);
  assert.is(e.code, 1); assert.match(e.err, /not a language-model checkpoint: missing embed\.weight/);
});

test('score: under a tokenized model a file that is not UTF-8 fails naming it and its first bad byte; a BOM is scored as text', async () => {
  const folder = await makeTinyFlaFolder(join(dir, 'tiny-fla'));
  const bad = join(dir, 'latin1.txt'), bom = join(dir, 'bom.txt');
  writeFileSync(bad, Buffer.concat([Buffer.from('ok '), Buffer.from([0xef, 0xbf, 0xbd]), Buffer.from(' then '), Buffer.from([0xc3]), Buffer.from(' bad')]));
  const r = await cli(['score', '--model', folder, bad]);
  assert.is(r.code, 1);
  assert.match(r.err, /latin1\.txt: not valid UTF-8 at byte 12 \(a tokenized model scores text/);
  assert.is(r.out, '');
  writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('hello world')]));
  const ok = await cli(['score', '--model', folder, bom]);
  assert.is(ok.code, 0, ok.err);
  assert.match(ok.out, /bom\.txt: 14 bytes, 5 tokens, /); // BOS, U+FEFF's token(s) and the text's: one more than without it
  // two files: the total counts tokens and gives the perplexity over every predicted token of both
  const two = await cli(['score', '--model', folder, bom, b]);
  assert.is(two.code, 0, two.err);
  const rows = two.out.trim().split('\n');
  assert.is(rows.length, 3);
  const num = (line: string, re: RegExp) => Number(re.exec(line)![1]);
  const tok = rows.slice(0, 2).map((l) => num(l, / (\d+) tokens,/)), ppl = rows.slice(0, 2).map((l) => num(l, /perplexity ([\d.]+)/));
  assert.match(rows[2], new RegExp(`^total: ${14 + readFileSync(b).length} bytes, ${tok[0] + tok[1]} tokens, [\\d.]+ bits, \\d+\\.\\d{4} bits/byte, perplexity [\\d.]+, \\d+ tokens/s$`));
  // exp(Σ nll / Σ predicted) from the per-file perplexities (printed to 3 decimals: compared to 1e-5 relative)
  const want = Math.exp(((tok[0] - 1) * Math.log(ppl[0]) + (tok[1] - 1) * Math.log(ppl[1])) / (tok[0] + tok[1] - 2));
  assert.ok(Math.abs(num(rows[2], /perplexity ([\d.]+)/) - want) <= 1e-5 * want, `${rows[2]} vs ${want}`);
});

test('generate: a fla folder without tokenizer.json is refused before loading (exit 2, as a refused folder) with nothing on stdout', async () => {
  const r = await cli(['generate', '--model', join(ROOT, 'test', 'fixtures', 'fla', 'f32'), '--prompt', 'hi', '--max-new-tokens', '2']);
  assert.is(r.code, 2);
  assert.match(r.err, /has no tokenizer\.json/);
  assert.is(r.outBytes.length, 0, `stdout: ${JSON.stringify(r.out)}`);
});

test('generate --max-bytes 9007199254740991: bytes stream until the reader stops (before: the prompt, then "Invalid typed array length")', async () => {
  // stdout that takes 300 bytes and then fails, as a pipe whose reader went away does (`| head -c 300`)
  const out: Buffer[] = [], err: Buffer[] = [];
  let n = 0;
  const io: CommandIO = {
    stdout: { write: (s) => { const b = Buffer.from(s); if (n >= 300) throw new Error('the reader went away'); n += b.length; out.push(b); } },
    stderr: { write: (s) => err.push(Buffer.from(s)), isTTY: false },
    stdin: Readable.from([]),
  };
  const code = await generate.run(['--prompt', 'def main(', '--max-bytes', String(Number.MAX_SAFE_INTEGER)], io);
  const text = Buffer.concat(err).toString();
  assert.is(code, 1, text);
  assert.is(text, 'retnet: the reader went away\n');
  assert.ok(n >= 300 && Buffer.concat(out).toString().startsWith('def main('), `${n} bytes out`);
});

test('generate on the byte LM writes UTF-8 text (bytes that are not UTF-8 become U+FFFD, as the library\'s text API gives them; before: raw bytes, invalid UTF-8 on stdout)', async () => {
  const prompt = '# -*- coding: utf-8 -*-\n# Copyright © 2001 Müller';
  let invalidBefore = 0;
  for (const [seed, T] of [['3', '1'], ['4', '1'], ['1', '2'], ['2', '2']]) {
    const r = await cli(['generate', '--prompt', prompt, '--max-bytes', '300', '--temperature', T, '--seed', seed]);
    assert.is(r.code, 0, r.err);
    assert.not.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(r.outBytes), `seed ${seed}, T ${T}: stdout is not UTF-8`);
    assert.ok(r.out.startsWith(prompt));
    if (r.out.includes('\ufffd')) invalidBefore++;
  }
  assert.ok(invalidBefore > 0, 'these seeds draw byte sequences that are not UTF-8 (the case this test is about)');
});

test('generate: --top-k / --top-p at temperature 0 are usage errors (they would do nothing); --seed there gets a note; --top-p\'s range and a too-large number named', async () => {
  for (const flag of [['--top-k', '5'], ['--top-p', '0.9']]) {
    const r = await cli(['generate', '--model', join(dir, 'no-such-model'), '--prompt', 'x', ...flag]);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`${flag[0]} acts only when sampling: give --temperature T > 0`));
  }
  // their "off" values filter nothing and stay accepted at temperature 0
  for (const off of [['--top-k', '0'], ['--top-p', '1']]) {
    const r = await cli(['generate', '--prompt', 'x', '--max-bytes', '3', ...off]);
    assert.is(r.code, 0, `${off.join(' ')}: ${r.err}`);
  }
  const z = await cli(['generate', '--prompt', 'x', '--temperature', '1', '--top-p', '0']);
  assert.is(z.code, 2);
  assert.match(z.err, /--top-p must be a number > 0 and ≤ 1 \(got "0"\)/);
  const s = await cli(['generate', '--prompt', 'x', '--max-bytes', '3', '--seed', '7']);
  assert.is(s.code, 0, s.err);
  assert.match(s.err, /note: --seed has no effect at temperature 0/);
  const p = await cli(['generate', '--prompt', 'x', '--temperature', '1', '--top-p', '1e-1']);
  assert.is(p.code, 2);
  assert.match(p.err, /--top-p must be a number > 0 and ≤ 1/);
  const t = await cli(['generate', '--prompt', 'x', '--temperature', '1' + '0'.repeat(320)]);
  assert.is(t.code, 2);
  assert.match(t.err, /too large to be a finite number/);
});

test('generate --prompt-file reads a pipe as it reads stdin (before: "not a regular file")', async () => {
  const fifo = join(dir, 'prompt.fifo');
  const { spawnSync, spawn } = await import('node:child_process');
  assert.is(spawnSync('mkfifo', [fifo]).status, 0);
  const writer = spawn('sh', ['-c', `printf 'def f(' > '${fifo}'`]);
  const r = await cli(['generate', '--prompt-file', fifo, '--max-bytes', '4']);
  writer.kill();
  assert.is(r.code, 0, r.err);
  assert.ok(r.out.startsWith('def f('), r.out);
  const d = await cli(['generate', '--prompt-file', dir, '--max-bytes', '4']);
  assert.is(d.code, 1);
  assert.match(d.err, /is a directory, not a prompt file/);
});

test.run();
