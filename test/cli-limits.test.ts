// The CLI's promises and limits: --help/-h and `retnet help <command>` on
// every command (exit 0), one number parser for every numeric flag (the same
// spellings refused everywhere, exit 2 naming the flag), the --workers bound,
// a bad model size naming its flag, drift's length bound and missing-engine
// handling, control characters from files escaped in messages, a short --key
// error on a file with many tensors, and `info` on the shipped LM checkpoint.
// Usage errors run in process through main(); runs that do work spawn the CLI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, expectError, fixturePath } from './helpers.js';
import { COMMANDS, main } from '../src/cli/main.js';
import { closestOption } from '../src/cli/command.js';
import { RetNet, RetNetError, SafetensorsFile, Tensor, corpusWorker, writeSafetensors } from '../src/index.js';
import { escapeControl, quote } from '../src/errors.js';
import { canRun } from './helpers/skip.js';

const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const TMP = mkdtempSync(join(tmpdir(), 'retnet-limits-'));
const TINY = fixturePath('retnet-tiny');
const LM = join(ROOT, 'src', 'assets', 'bytes-4x128.safetensors');
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/; // all but \n

/** main() in this process with stdout/stderr captured. */
async function inproc(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const ow = process.stdout.write, ew = process.stderr.write;
  process.stdout.write = ((s: string | Uint8Array) => { out.push(String(s)); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
  try {
    return { code: await main(args), out: out.join(''), err: err.join('') };
  } finally {
    process.stdout.write = ow; process.stderr.write = ew;
  }
}

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: TMP, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1', ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--help, -h and `retnet help <command>` exit 0 with the usage on every command', async () => {
  for (const name of ['bench', 'demo', 'drift', 'generate', 'info', 'run', 'score']) assert.ok(COMMANDS.some((c) => c.name === name), name);
  for (const c of COMMANDS) {
    for (const args of [[c.name, '--help'], [c.name, '-h'], ['help', c.name], [c.name, '--backend', 'js', '--help']]) {
      const r = await inproc(args);
      assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
      assert.is(r.out, c.usage.trimEnd() + '\n', `${args.join(' ')}: prints the usage`);
      assert.is(r.err, '');
    }
  }
  // help taken as the value of the option before it (before: "argument is ambiguous", exit 2)
  for (const args of [['run', '--chunks', '--help'], ['run', '--out', '-h'], ['generate', '--prompt', '-h'], ['score', '--out', '--help', 'x.txt']]) {
    const r = await inproc(args);
    assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
    assert.is(r.out, COMMANDS.find((c) => c.name === args[0])!.usage.trimEnd() + '\n', `${args.join(' ')}: prints the usage`);
  }
  // after `--`, -h is a file name, not help
  const pos = await inproc(['score', '--', '-h']);
  assert.is(pos.code, 1, pos.err);
  assert.match(pos.err, /-h/);
  const g = await inproc(['help']);
  assert.is(g.code, 0);
  for (const c of COMMANDS) assert.match(g.out, new RegExp(`^  ${c.name} `, 'm'));
  const bad = await inproc(['help', 'nope']);
  assert.is(bad.code, 2); assert.match(bad.err, /unknown command "nope"/);
  // and as real processes (exit status of the process)
  for (const args of [['score', '--help'], ['generate', '-h']]) {
    const r = cli(args);
    assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
    assert.match(r.out, new RegExp(`^usage: retnet ${args[0]}`));
  }
});

test('an unknown option: "did you mean" prefers the options its name begins (before: --temp → --help, --top → --stop)', async () => {
  const gen = ['prompt', 'max-bytes', 'max-new-tokens', 'temperature', 'top-k', 'top-p', 'stop', 'seed', 'help', 'model', 'backend'];
  for (const [name, want] of [['temp', 'temperature'], ['top', 'top-k or --top-p'], ['max-tokens', 'max-new-tokens'], ['promt', 'prompt'],
    ['heap', 'help'], ['stops', 'stop'], ['backends', 'backend'], ['xyzzy', null]] as const) {
    assert.is(closestOption(name, gen), want, name);
  }
  assert.is(closestOption('chunk', ['chunks', 'chunk-size', 'help']), 'chunks', 'fewest edits among the begun');
  assert.is(closestOption('output', ['out', 'help']), 'out');
  for (const [args, re] of [[['generate', '--temp', '1'], /Unknown option '--temp' \(did you mean --temperature\?\)/],
    [['generate', '--top', '5'], /Unknown option '--top' \(did you mean --top-k or --top-p\?\)/]] as const) {
    const r = await inproc([...args]);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, re);
  }
});

test('score (corpus mode) and worker: --max-doc-bytes, --run-id and --queue checked as usage errors naming the flag, the URL\'s password never shown (before: exit 1 in the library\'s words)', async () => {
  const c = join(TMP, 'qc.jsonl'); writeFileSync(c, '{"text": "a"}\n');
  for (const [args, re] of [
    [['score', '--out', join(TMP, 'q.jsonl'), '--max-doc-bytes', '99999999999', c], /--max-doc-bytes must be a positive integer ≤ 2147483648/],
    [['score', '--out', join(TMP, 'q.jsonl'), '--queue', 'redis://127.0.0.1:6390', '--run-id', 'bad id', c], /--run-id must be letters, digits/],
    [['score', '--out', join(TMP, 'q.jsonl'), '--queue', 'redis://127.0.0.1:6390/abc', c], /--queue must be a URL whose path is a database number/],
    [['score', '--out', join(TMP, 'q.jsonl'), '--queue', 'redis://u:hunter2pw@127.0.0.1:99999', c], /--queue must be a redis:\/\/.* URL \(this one does not parse/],
    [['worker', '--queue', 'redis://u:hunter2pw@127.0.0.1:99999'], /--queue must be a redis:\/\/.* URL \(this one does not parse/],
    [['worker', '--queue', 'redis://u:hunter2pw%zz@127.0.0.1:6390'], /--queue must be a redis:\/\/.* URL \(this one does not parse.*%-escape/], // before: "URIError: URI malformed"
  ] as const) {
    const r = await inproc([...args]);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.not.match(r.err, /hunter2pw/);
  }
});

test('one number parser: every numeric flag refuses the same spellings, exit 2 naming the flag', async () => {
  const file = join(TMP, 'a.txt'); writeFileSync(file, 'abc');
  const run = ['--model', TINY, '--input', TINY, '--out', join(TMP, 'o')];
  const intFlags: [string, string[], string][] = [
    ['run', run, '--workers'], ['run', run, '--chunks'], ['run', run, '--chunk-size'],
    ['demo', [], '--workers'], ['demo', [], '--chunks'],
    ['bench', [], '--lengths'], ['bench', [], '--chunks'], ['bench', [], '--workers'], ['bench', [], '--batch'],
    ['bench', [], '--layers'], ['bench', [], '--dim'], ['bench', [], '--heads'], ['bench', [], '--repeat'],
    ['drift', [], '--length'], ['drift', [], '--seed'], ['drift', [], '--workers'],
    ['score', [file], '--chunk-size'],
    ['generate', ['--prompt', 'x'], '--max-bytes'], ['generate', ['--prompt', 'x'], '--seed'],
    // before the model loads: a model that does not exist is not reached (before: ENOENT, exit 1; on the byte LM
    // "are for tokenized models", not naming the value)
    ['generate', ['--prompt', 'x', '--model', join(TMP, 'no-such-model.safetensors')], '--max-new-tokens'], ['generate', ['--prompt', 'x'], '--top-k'],
  ];
  const badInts = ['1e1', '0x4', ' 4 ', '4 ', '12345678901234567890', '', '+4', '4.0', 'Infinity', 'NaN', 'four', '-2'];
  let n = 0;
  for (const [cmd, base, flag] of intFlags) {
    for (const v of badInts) {
      const r = await inproc([cmd, ...base, flag, v]);
      assert.is(r.code, 2, `${cmd} ${flag} ${JSON.stringify(v)}: exit ${r.code} ${r.err}`);
      assert.ok(r.err.includes(`${flag} must be`) || r.err.includes(`${flag} needs`), `${cmd} ${flag} ${JSON.stringify(v)}: names the flag: ${r.err}`);
      assert.match(r.err, new RegExp(`usage: retnet ${cmd === 'demo' ? '\\[demo\\]' : cmd}`));
      n++;
    }
  }
  for (const v of ['1e1', '0x4', ' 4 ', '', '+4', 'Infinity', 'NaN', '-1', '.']) {
    const r = await inproc(['generate', '--prompt', 'x', '--temperature', v]);
    assert.is(r.code, 2, `--temperature ${JSON.stringify(v)}`);
    assert.match(r.err, /--temperature must be a number/);
    n++;
  }
  console.log(`  ${n} refused values, each exit 2 naming its flag`);
});

test('accepted: drift --seed 0, demo --chunks -1, bench --dim 7 refused naming --dim', async () => {
  const d = cli(['drift', '--length', '8', '--backends', 'js', '--seed', '0', '--out-dir', join(TMP, 'drift0')]);
  assert.is(d.code, 0, d.err);
  assert.is(JSON.parse(readFileSync(join(TMP, 'drift0', 'drift.json'), 'utf8')).seed, 0);
  const m = cli(['--small', '--chunks', '-1', '--backend', 'js']);
  assert.is(m.code, 0, m.err);
  assert.match(m.out, /recurrent \(chunks -1\)/);
  const rel = Number(/max\|Δ\|\/max\|parallel\| = ([\d.e+-]+)/.exec(m.out)?.[1]);
  assert.ok(rel < 1e-12, `js recurrent vs parallel: ${rel} (float64: both forms agree to rounding)`);
  const b = await inproc(['bench', '--dim', '7']);
  assert.is(b.code, 2, b.err);
  assert.match(b.err, /--dim must be divisible by --heads=8 \(got 7\)/);
  assert.not.match(b.err, /config\./);
});

test('--workers is at most 256 on every command and in the library', async () => {
  for (const args of [['run', '--model', TINY, '--input', TINY, '--out', 'o'], ['demo'], ['drift'], ['bench']]) {
    const r = await inproc([...args, '--workers', '257']);
    assert.is(r.code, 2, args[0]);
    assert.match(r.err, /--workers must be a positive integer ≤ 256 \(got "257"\)/);
  }
  const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
  try {
    await model.forward(Tensor.randn([1, 4, 8], { seed: 1 }), { workers: 1000 });
    assert.unreachable('workers: 1000 accepted');
  } catch (e) {
    assert.instance(e, RetNetError);
    assert.is((e as RetNetError).code, 'E_OPTION');
    assert.match((e as Error).message, /options\.workers must be a positive integer ≤ 256 \(got 1000\)/);
  } finally {
    await model.close();
  }
});

test('drift: --length beyond memory is a clear usage error, not an engine message', async () => {
  for (const v of ['1000000000000', '9007199254740991']) {
    const r = await inproc(['drift', '--length', v, '--backends', 'js', '--out-dir', join(TMP, 'dl')]);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, /--length \d+ needs about [\d.]+ TiB .* more than this machine's/);
    assert.not.match(r.err, /Invalid typed array length|RangeError/);
  }
});

test('drift: a backend whose engine is missing is reported once and skipped', () => {
  const req = createRequire(import.meta.url);
  const missing = ['tfjs-node', 'tfjs-node-gpu'].find((p) => { try { req.resolve(`@tensorflow/${p}`); return false; } catch { return true; } });
  if (!canRun('drift skips a missing engine', missing ? null : 'both tfjs-node and tfjs-node-gpu are installed: no missing engine to ask for')) return;
  const dir = join(TMP, 'drift-missing');
  const r = cli(['drift', '--length', '8', '--backends', 'wasm,tfjs', '--workers', '1', '--out-dir', dir], { RETNET_TFJS_ENGINE: missing! });
  assert.is(r.code, 0, r.err);
  assert.is(r.err.split(`'${missing}' is not available`).length - 1, 1, `reported once: ${r.err}`);
  assert.match(r.err, /drift: backend tfjs skipped: /);
  const j = JSON.parse(readFileSync(join(dir, 'drift.json'), 'utf8'));
  assert.equal(j.skipped.map((s: { backend: string }) => s.backend), ['tfjs']);
  assert.ok(j.rows.length > 0 && j.rows.every((row: { backend: string; error?: string }) => row.backend === 'wasm' && !row.error));
  const none = cli(['drift', '--length', '8', '--backends', 'tfjs', '--out-dir', join(TMP, 'drift-none')], { RETNET_TFJS_ENGINE: missing! });
  assert.is(none.code, 1, none.err);
  assert.match(none.err, /none of the backends \(tfjs\) could start/);
});

// ---------------------------------------------------------------- file text in messages

function rawSafetensors(path: string, header: string, dataBytes = 0) {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
}

test('control characters from a file are escaped in every message', async () => {
  assert.is(escapeControl('a\u001b[2Jb\u0000c\u009bd\u202ee\nf'), 'a\\u001b[2Jb\\u0000c\\u009bd\\u202ee\\u000af');
  assert.is(quote('x'.repeat(500)).length < 200, true, 'long text is cut');
  assert.is(new RetNetError('E_INPUT', 'bad \u001b]0;title\u0007').message, 'bad \\u001b]0;title\\u0007');
  const cases: [string, string, RegExp][] = [
    ['dtype', JSON.stringify({ w: { dtype: '\u001b[31mF32\u0000', shape: [1], data_offsets: [0, 4] } }), /has dtype "\\u001b\[31mF32\\u0000"/],
    ['name', JSON.stringify({ 'w\u001b[2J': { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }), /tensor "w\\u001b\[2J"/],
    ['metadata', JSON.stringify({ __metadata__: { 'k\u0007': 5 } }), /__metadata__ entry "k\\u0007" must be a string/],
    ['JSON', '{"w\u001b[31m": ', /header is not valid UTF-8 JSON/],
    ['C1', JSON.stringify({ w: { dtype: 'F\u009b2J', shape: [1], data_offsets: [0, 4] } }), /\\u009b/],
  ];
  for (const [what, header, msg] of cases) {
    const p = join(TMP, `hostile-${what}.safetensors`);
    rawSafetensors(p, header, 8);
    try { SafetensorsFile.open(p).close(); assert.unreachable(what); } catch (e) {
      assert.instance(e, RetNetError, what);
      assert.not.ok(CONTROL.test((e as Error).message) || (e as Error).message.includes('\n'), `${what}: ${JSON.stringify((e as Error).message)}`);
    }
    const r = cli(['info', p]);
    assert.is(r.code, 1, `${what}: ${r.err}`);
    assert.match(r.err, msg, what);
    assert.not.ok(CONTROL.test(r.err), `${what}: raw control characters on stderr: ${JSON.stringify(r.err)}`);
    assert.is(r.err.split('\n').length, 2, `${what}: one line`);
  }
});

test('run: the --key error lists the first names and the count, not all of them', async () => {
  const many = join(TMP, 'many.safetensors');
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (let i = 0; i < 500; i++) tensors[`tensor_${String(i).padStart(3, '0')}_${'n'.repeat(40)}`] = { shape: [1], data: new Float32Array(1) };
  writeSafetensors(many, tensors);
  for (const extra of [[], ['--key', 'nope']]) {
    const r = await inproc(['run', '--model', TINY, '--input', many, '--out', join(TMP, 'o.safetensors'), '--backend', 'js', ...extra]);
    assert.is(r.code, 1, r.err);
    assert.match(r.err, /"tensor_000_n+", "tensor_001_n+", "tensor_002_n+", "tensor_003_n+", "tensor_004_n+", … \(500 in all\)/);
    assert.ok(r.err.length < 600, `message is ${r.err.length} characters`);
  }
});

test('a checkpoint with many unexpected tensors: the first names and the count', async () => {
  const { readSafetensors } = await import('../src/index.js');
  const { tensors } = readSafetensors(TINY);
  const all: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [k, t] of tensors) all[k] = { shape: t.shape, data: t.data as Float32Array };
  for (let i = 0; i < 300; i++) all[`extra_${i}\u001b[1m`] = { shape: [1], data: new Float32Array(1) };
  const p = join(TMP, 'many-extra.safetensors');
  writeSafetensors(p, all);
  try { await RetNet.load(p); assert.unreachable(); } catch (e) {
    assert.instance(e, RetNetError);
    assert.match((e as Error).message, /unexpected weights not used by the model: extra_0\\u001b\[1m, extra_1\\u001b\[1m, .*, … \(300 in all\)$/);
    assert.ok((e as Error).message.length < 400, `${(e as Error).message.length} characters`);
  }
});

test('worker --run-id must be a run id score can make (before: "../x" waited forever on a queue nobody fills), exit 2', async () => {
  for (const id of ['../x', 'a b', '', 'x'.repeat(65)]) {
    const r = await inproc(['worker', '--queue', 'redis://127.0.0.1:1', '--run-id', id]);
    assert.is(r.code, 2, `${JSON.stringify(id)}: ${r.err}`);
    assert.match(r.err, /--run-id must be letters, digits, _ \. - \(at most 64\)/);
  }
  await expectError(() => corpusWorker({ queue: 'redis://127.0.0.1:1', runId: '../x', log: () => {} }), /^options\.runId must be letters, digits/, 'library');
});

test('info describes the shipped LM checkpoint', () => {
  const r = cli(['info', LM, '--json']);
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.is(j.kind, 'language model');
  assert.equal([j.layers, j.heads, j.d, j.vocab, j.mlpWidths], [4, 4, 128, 256, [128, 512, 128]]);
  // independent count: every tensor in the file except the decay/angle buffers
  const f = SafetensorsFile.open(LM);
  let params = 0, buffers = 0;
  for (const [name, t] of f.tensors) { const n = t.shape.reduce((a, b) => a * b, 1); if (/\.(angle|decay)$/.test(name)) buffers += n; else params += n; }
  f.close();
  assert.is(j.parameters, params);
  assert.is(j.buffers, buffers);
  const text = cli(['info', LM]);
  assert.is(text.code, 0, text.err);
  assert.match(text.out, /kind\s+byte-level language model: embedding \[256, 128\]/);
  assert.match(text.out, new RegExp(`parameters\\s+${params.toLocaleString('en-US')} `));
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));
test.run();
