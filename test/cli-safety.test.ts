// Data safety of the CLI's outputs (src/cli/safe-output.ts): no command
// overwrites an input or the model (same path, symlink, hard link), special
// files named as outputs survive (a FIFO, a symlink to /dev/null, a
// directory), a failed run or score leaves the previous output byte-identical
// and no temporary file behind, and drift / bench check their output places
// before any work. Every case checks the inputs are byte-identical afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ROOT, casesPath, fixturePath } from './helpers.js';
import { canRunPart } from './helpers/skip.js';
import { Tensor, readSafetensors, writeSafetensors } from '../src/index.js';
import { score } from '../src/cli/commands/score.js';
import type { CommandIO } from '../src/cli/lm-util.js';

const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const TMP = mkdtempSync(join(tmpdir(), 'retnet-safety-'));
const MODEL = join(TMP, 'model.safetensors');
const INPUT = join(TMP, 'input.safetensors');
copyFileSync(fixturePath('retnet-tiny'), MODEL);
copyFileSync(casesPath('retnet-tiny'), INPUT);

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const SHA = { model: sha(MODEL), input: sha(INPUT) };

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: TMP, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1', ...env } });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

function inputsIntact(what: string) {
  assert.is(sha(MODEL), SHA.model, `${what}: model byte-identical`);
  assert.is(sha(INPUT), SHA.input, `${what}: input byte-identical`);
}

/** No temporary output file (…tmp) left in `dir`. */
function noTemp(dir: string, what: string) {
  const left = readdirSync(dir).filter((n) => n.endsWith('.tmp'));
  assert.equal(left, [], `${what}: temporary files left`);
}

const run = (out: string, extra: string[] = []) => cli(['run', '--model', MODEL, '--input', INPUT, '--key', 'input', '--out', out, '--backend', 'js', ...extra]);

test('run: --out naming the input or the model — same path, symlink, hard link — exit 2 naming both', () => {
  symlinkSync(INPUT, join(TMP, 'input-link'));
  linkSync(INPUT, join(TMP, 'input-hard'));
  symlinkSync(MODEL, join(TMP, 'model-link'));
  linkSync(MODEL, join(TMP, 'model-hard'));
  mkdirSync(join(TMP, 'sub'));
  for (const [out, flag, real] of [
    [INPUT, '--input', INPUT], [join(TMP, 'input-link'), '--input', INPUT], [join(TMP, 'input-hard'), '--input', INPUT],
    [MODEL, '--model', MODEL], [join(TMP, 'model-link'), '--model', MODEL], [join(TMP, 'model-hard'), '--model', MODEL],
    [join(TMP, 'sub', '..', 'input.safetensors'), '--input', INPUT],
  ]) {
    const r = run(out);
    assert.is(r.code, 2, `${out}: ${r.err}`);
    assert.ok(r.err.includes(`--out ${out} is the same file as ${flag} ${real}`), `${out}: message names both paths: ${r.err}`);
    assert.match(r.err, /^usage: retnet run/m);
    inputsIntact(out);
  }
  assert.ok(lstatSync(join(TMP, 'input-link')).isSymbolicLink() && lstatSync(join(TMP, 'model-link')).isSymbolicLink(), 'links kept');
  noTemp(TMP, 'aliasing');
});

test('run: special files named as --out are refused up front and survive', () => {
  const devnull = join(TMP, 'devnull-link');
  symlinkSync('/dev/null', devnull);
  const dir = join(TMP, 'a-dir');
  mkdirSync(dir); writeFileSync(join(dir, 'keep'), 'keep');
  const cases: [string, RegExp][] = [[devnull, /is a character device/], [dir, /is a directory/]];
  const fifo = join(TMP, 'a-fifo');
  const mk = spawnSync('mkfifo', [fifo]);
  if (canRunPart('run --out FIFO', mk.error || mk.status !== 0 ? 'mkfifo is not available' : null)) cases.push([fifo, /is a FIFO/]);
  for (const [out, msg] of cases) {
    const r = run(out);
    assert.is(r.signal, null, `${out}: killed (a hang?)`);
    assert.is(r.code, 2, `${out}: ${r.err}`);
    assert.match(r.err, msg);
    assert.match(r.err, /refusing to replace it/);
    inputsIntact(out);
  }
  assert.ok(lstatSync(devnull).isSymbolicLink() && readlinkSync(devnull) === '/dev/null', 'the symlink is kept');
  assert.ok(statSync('/dev/null').isCharacterDevice(), '/dev/null is still a character device');
  assert.ok(statSync(dir).isDirectory() && readFileSync(join(dir, 'keep'), 'utf8') === 'keep', 'the directory and its content are kept');
  if (cases.length === 3) assert.ok(statSync(fifo).isFIFO(), 'the FIFO is kept');
  noTemp(TMP, 'special files');
});

test('run: a failed run leaves an existing --out byte-identical and no temporary file', () => {
  const bad = join(TMP, 'nan-input.safetensors');
  const x = Tensor.randn([1, 40, 8], { seed: 5, dtype: 'float32' });
  (x.data as Float32Array)[8 * 30 + 2] = NaN; // found while streaming, after the output was opened
  writeSafetensors(bad, { x: { shape: x.shape, data: x.data } });
  const out = join(TMP, 'previous.safetensors');
  assert.is(run(out).code, 0, 'an earlier run\'s output'); // (only that is ever replaced)
  const previous = readFileSync(out);
  for (const backend of ['js', 'wasm']) {
    const r = cli(['run', '--model', MODEL, '--input', bad, '--out', out, '--backend', backend, '--chunks', '4', ...(backend === 'wasm' ? ['--workers', '1'] : [])]);
    assert.is(r.code, 1, `${backend}: ${r.err}`);
    assert.match(r.err, /non-finite value/);
    assert.ok(readFileSync(out).equals(previous), `${backend}: --out untouched`);
    noTemp(TMP, `failed run (${backend})`);
  }
  // a new --out is not created by a failed run
  const fresh = join(TMP, 'fresh.safetensors');
  assert.is(cli(['run', '--model', MODEL, '--input', bad, '--out', fresh, '--backend', 'js']).code, 1);
  assert.not.ok(existsSync(fresh), 'no output file after a failure');
  inputsIntact('failed run');
});

test('run: success replaces --out; through a symlink it writes the file the link points to', () => {
  const real = join(TMP, 'real-out.safetensors');
  // an output written before run marked its files (metadata model/input/key/options, no written_by)
  writeSafetensors(real, { output: { shape: [1, 1, 8], data: new Float32Array(8) } }, { model: 'm', input: 'i', key: 'input', options: '{}' });
  const link = join(TMP, 'out-link');
  symlinkSync(real, link);
  const r = run(link);
  assert.is(r.code, 0, r.err);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link stays a link');
  assert.equal(readSafetensors(real).tensors.get('output')!.shape, readSafetensors(INPUT).tensors.get('input')!.shape);
  inputsIntact('run through a symlink');
  noTemp(TMP, 'success');
});

test('run: interrupted (SIGINT) mid-run leaves no output and no temporary file', async () => {
  const dir = mkdtempSync(join(TMP, 'sig-'));
  const long = join(dir, 'long.safetensors');
  writeSafetensors(long, { x: { shape: [1, 400_000, 8], data: Tensor.randn([1, 400_000, 8], { seed: 1, dtype: 'float32' }).data as Float32Array } });
  const out = join(dir, 'y.safetensors');
  // wasm: the forward runs on worker threads, so the main thread handles the signal at once
  const child = spawn(process.execPath, [MAIN, 'run', '--model', MODEL, '--input', long, '--out', out, '--workers', '1', '--chunks', '-1'], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, s) => res(s)));
  // wait for the temporary output file to appear, then interrupt
  const t0 = Date.now();
  let sawTemp = false;
  while (Date.now() - t0 < 30_000 && child.exitCode === null) {
    if (readdirSync(dir).some((n) => n.endsWith('.tmp'))) { sawTemp = true; break; }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(sawTemp, 'the run wrote to a temporary file beside --out');
  child.kill('SIGINT');
  assert.is(await exited, 'SIGINT', 'the process ends by the signal');
  assert.not.ok(existsSync(out), 'no --out');
  noTemp(dir, 'after SIGINT');
});

// ---------------------------------------------------------------- score --jsonl

async function scoreIn(args: string[], stdin: Readable = Readable.from([])): Promise<{ code: number; err: string }> {
  const err: Buffer[] = [];
  const io: CommandIO = { stdout: { write: () => true }, stderr: { write: (s) => err.push(Buffer.from(s)), isTTY: false }, stdin };
  const code = await score.run(args, io);
  return { code, err: Buffer.concat(err).toString() };
}

test('score: --jsonl naming a scored file or the model (also through links) is refused; files intact', async () => {
  const a = join(TMP, 'a.txt'), b = join(TMP, 'b.txt');
  writeFileSync(a, 'def f(x):\n    return x\n'); writeFileSync(b, 'import os\n');
  symlinkSync(b, join(TMP, 'b-link')); linkSync(a, join(TMP, 'a-hard'));
  const lm = join(TMP, 'lm.safetensors');
  copyFileSync(join(ROOT, 'src', 'assets', 'bytes-4x128.safetensors'), lm);
  symlinkSync(lm, join(TMP, 'lm-link'));
  const before = [sha(a), sha(b), sha(lm)];
  for (const [jsonl, what] of [[a, 'FILE'], [join(TMP, 'b-link'), 'FILE'], [join(TMP, 'a-hard'), 'FILE'], [join(TMP, 'lm-link'), '--model']]) {
    const r = await scoreIn(['--backend', 'js', '--model', lm, '--jsonl', jsonl, a, b]);
    assert.is(r.code, 2, `${jsonl}: ${r.err}`);
    assert.match(r.err, new RegExp(`--jsonl .* is the same file as ${what} `));
  }
  assert.equal([sha(a), sha(b), sha(lm)], before, 'scored files and model byte-identical');
  noTemp(TMP, 'score aliasing');
});

test('score: --out and --summary-json naming one new file (also through a linked folder) are refused before scoring (before: the summary replaced the records, exit 0)', async () => {
  const corpus = join(TMP, 'same-corpus.jsonl');
  writeFileSync(corpus, '{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n');
  const d = join(TMP, 'same-dir'); mkdirSync(d); symlinkSync(d, join(TMP, 'same-dir-link'));
  for (const [out, summary] of [[join(d, 'x.jsonl'), join(d, 'x.jsonl')], [join(d, 'y.jsonl'), join(TMP, 'same-dir-link', 'y.jsonl')]]) {
    for (const args of [['--out', out, '--summary-json', summary], ['--summary-json', out, '--out', summary]]) {
      const r = await scoreIn(['--backend', 'js', ...args, corpus]);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /--summary-json .* names the same file as --out /);
      assert.not.ok(existsSync(out), `${out} not written`);
    }
  }
});

test('score: --summary-json naming the existing --out file says the two outputs share a file (before: "refusing to overwrite an input"); both kept', async () => {
  const dir = mkdtempSync(join(TMP, 'same-'));
  const corpus = join(dir, 'corpus.jsonl'), scores = join(dir, 'scores.jsonl');
  writeFileSync(corpus, JSON.stringify({ text: 'hello world' }) + '\n');
  assert.is(cli(['score', '--out', scores, corpus]).code, 0, 'an earlier run');
  const before = sha(scores);
  const r = cli(['score', '--out', scores, '--summary-json', scores, corpus]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /--summary-json .*scores\.jsonl is the same file as --out .*scores\.jsonl; give each output its own file/);
  assert.not.match(r.err, /input/);
  assert.is(sha(scores), before, 'the earlier records are kept');
  // an input is still called one
  const i = cli(['score', '--out', join(dir, 'o.jsonl'), '--summary-json', corpus, corpus]);
  assert.is(i.code, 2, i.err);
  assert.match(i.err, /--summary-json .*corpus\.jsonl is the same file as INPUT .*; refusing to overwrite an input/);
});

test('score: a failure leaves no --jsonl (or the previous one, byte-identical) and no temporary file', async () => {
  const a = join(TMP, 'a.txt');
  const failing = () => new Readable({ read() { this.destroy(new Error('stdin broke')); } });
  const fresh = join(TMP, 'fresh.jsonl');
  let r = await scoreIn(['--backend', 'js', '--jsonl', fresh, a, '-'], failing());
  assert.is(r.code, 1, r.err);
  assert.match(r.err, /stdin broke/);
  assert.not.ok(existsSync(fresh), 'no empty or partial --jsonl');
  const prev = join(TMP, 'prev.jsonl');
  // an earlier run's records (what --jsonl writes: an existing file of anything else is refused up front)
  const earlier = '{"file":"earlier.txt","bytes":10,"bits":31.5,"bits_per_byte":3.5}\n';
  writeFileSync(prev, earlier);
  r = await scoreIn(['--backend', 'js', '--jsonl', prev, a, '-'], failing());
  assert.is(r.code, 1, r.err);
  assert.is(readFileSync(prev, 'utf8'), earlier, 'previous --jsonl untouched');
  noTemp(TMP, 'failed score');
  // and a success replaces it
  r = await scoreIn(['--backend', 'js', '--jsonl', prev, a]);
  assert.is(r.code, 0, r.err);
  assert.is(JSON.parse(readFileSync(prev, 'utf8')).file, a);
});

// ---------------------------------------------------------------- drift, bench

test('drift: an unusable --out-dir, or one whose files alias the model, is refused before the study', () => {
  const file = join(TMP, 'plain-file');
  writeFileSync(file, 'x');
  let r = cli(['drift', '--length', '8', '--backends', 'js', '--out-dir', file]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /--out-dir .*plain-file is not a folder|is a regular file|not a folder/);
  assert.not.match(r.err, /reference/, 'refused before the study');
  r = cli(['drift', '--length', '8', '--backends', 'js', '--out-dir', join(file, 'below')]);
  assert.is(r.code, 2, r.err);
  const dir = join(TMP, 'drift-alias');
  mkdirSync(dir);
  symlinkSync(MODEL, join(dir, 'drift.json'));
  symlinkSync('/dev/null', join(dir, 'drift.svg'));
  r = cli(['drift', '--model', MODEL, '--length', '8', '--backends', 'js', '--out-dir', dir]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /drift\.json is the same file as --model/);
  assert.not.match(r.err, /reference/);
  rmSync(join(dir, 'drift.json'));
  r = cli(['drift', '--model', MODEL, '--length', '8', '--backends', 'js', '--out-dir', dir]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /drift\.svg exists and is a character device/);
  assert.ok(statSync('/dev/null').isCharacterDevice());
  inputsIntact('drift');
});

test('bench: --json naming a special file is refused before the benchmark', () => {
  const link = join(TMP, 'bench-null');
  symlinkSync('/dev/null', link);
  const r = cli(['bench', '--lengths', '8', '--chunks', '1', '--layers', '1', '--dim', '8', '--heads', '2', '--json', link]);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /--json .* is a character device/);
  assert.is(r.out, '', 'nothing measured');
  assert.ok(statSync('/dev/null').isCharacterDevice());
});

test('an existing output that is not what the command writes (a mistyped name, an input taken as the value) is refused; earlier outputs are replaced', () => {
  const notes = join(TMP, 'notes.txt'), doc = join(TMP, 'doc.txt');
  writeFileSync(notes, 'my notes\n');
  writeFileSync(doc, 'import os\n');
  const before = sha(notes);
  const tiny = ['--lengths', '8', '--chunks', '1', '--layers', '1', '--dim', '8', '--heads', '2'];
  const cases: [string, string[]][] = [
    // `score --jsonl a.txt b.txt`: the first FILE taken as --jsonl's value
    ['score records', ['score', '--jsonl', notes, doc]],
    ['score records', ['score', doc, '--out', notes]],
    ['an earlier `retnet score --summary-json` output', ['score', doc, '--out', join(TMP, 'c.jsonl'), '--summary-json', notes]],
    ['an earlier `retnet bench --json` output', ['bench', ...tiny, '--json', notes]],
    ['an earlier `retnet run` output', ['run', '--model', MODEL, '--input', INPUT, '--key', 'input', '--out', notes]],
  ];
  for (const [kind, args] of cases) {
    const r = cli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, new RegExp(`${notes.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} exists and is not ${kind}.*\\(it begins "my notes\\\\n"\\); refusing to replace it`));
    assert.is(sha(notes), before, `${args[0]}: the file is unchanged`);
    assert.is(r.out, '', `${args[0]}: refused before any work`);
  }
  assert.not.ok(existsSync(join(TMP, 'c.jsonl')), 'no --out written when --summary-json is refused');
  // an earlier run's output (and an empty file) is replaced
  const bj = join(TMP, 'b.json'), sj = join(TMP, 's.jsonl'), ry = join(TMP, 'r.safetensors'), empty = join(TMP, 'empty.jsonl');
  writeFileSync(empty, '');
  for (let i = 0; i < 2; i++) {
    assert.is(cli(['bench', ...tiny, '--json', bj]).code, 0, `bench --json, run ${i}`);
    assert.is(cli(['score', '--jsonl', sj, doc]).code, 0, `score --jsonl, run ${i}`);
    assert.is(run(ry).code, 0, `run --out, run ${i}`);
  }
  // an earlier --per-token output whose first record is longer than the 1 MiB the check reads
  const long = join(TMP, 'long.jsonl');
  writeFileSync(long, JSON.stringify({ id: 'big', source: 'big.txt', bytes: 200_001, bits: 356_000.5, bits_per_byte: 1.78, logprobs: Array.from({ length: 200_000 }, () => -1.2345678) }) + '\n');
  assert.ok(statSync(long).size > 2 ** 20);
  assert.is(cli(['score', doc, '--out', long]).code, 0, 'a long first record');
  assert.is(cli(['score', doc, '--out', empty]).code, 0, 'an empty --out');
  assert.is(readFileSync(empty, 'utf8').trim().split('\n').length, 1);
  inputsIntact('outputs of the wrong kind');
});

test('a user\'s own JSON or safetensors file is never taken for an earlier output: bench --json, --summary-json and run --out refuse it (before: any JSON / any safetensors file was replaced, exit 0)', () => {
  const pkg = join(TMP, 'pkg.json'), tsc = join(TMP, 'tsc.json'), ckpt = join(TMP, 'mymodel.safetensors');
  copyFileSync(join(ROOT, 'package.json'), pkg);
  copyFileSync(join(ROOT, 'tsconfig.json'), tsc);
  copyFileSync(fixturePath('retnet-tiny'), ckpt);
  // JSON that looks close to an output: an object with rows but another suite, a summary without run_id
  const near = join(TMP, 'near.json'), nearSum = join(TMP, 'near-sum.json');
  writeFileSync(near, JSON.stringify({ suite: 'my bench', rows: [] }));
  writeFileSync(nearSum, JSON.stringify({ documents: 1, bits_per_byte: 2 }));
  // a safetensors file with one tensor named "output" but no run metadata (someone else's)
  const other = join(TMP, 'other-output.safetensors');
  writeSafetensors(other, { output: { shape: [1, 2, 8], data: new Float32Array(16) } });
  const doc = join(TMP, 'doc2.txt');
  writeFileSync(doc, 'import os\n');
  const corpus = join(TMP, 'corpus2.jsonl');
  writeFileSync(corpus, JSON.stringify({ text: 'hello world' }) + '\n');
  const tiny = ['--lengths', '16', '--chunks', '2', '--layers', '1', '--dim', '16', '--heads', '2', '--workers', '1'];
  const small = ['--model', fixturePath('retnet-small'), '--mlp-gate-fn', 'silu', '--input', casesPath('retnet-small'), '--key', 'input'];
  const cases: [string, string[], RegExp][] = [
    [pkg, ['bench', ...tiny, '--json', pkg], /--json .*pkg\.json exists and is not an earlier `retnet bench --json` output/],
    [near, ['bench', ...tiny, '--json', near], /is not an earlier `retnet bench --json` output/],
    [tsc, ['score', '--summary-json', tsc, corpus], /--summary-json .*tsc\.json exists and is not an earlier `retnet score --summary-json` output/],
    [nearSum, ['score', '--summary-json', nearSum, corpus], /is not an earlier `retnet score --summary-json` output/],
    [ckpt, ['run', ...small, '--out', ckpt], /--out .*mymodel\.safetensors exists and is not an earlier `retnet run` output/],
    [other, ['run', ...small, '--out', other], /is not an earlier `retnet run` output/],
  ];
  for (const [file, args, message] of cases) {
    const before = sha(file);
    const r = cli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
    assert.is(sha(file), before, `${file}: byte-identical`);
    assert.is(r.out, '', `${args[0]}: refused before any work`);
  }
  // each command's own earlier output is still replaced: bench, score --summary-json, run --out
  const bj = join(TMP, 'own-bench.json'), sj = join(TMP, 'own-sum.json'), ry = join(TMP, 'own-run.safetensors');
  for (let i = 0; i < 2; i++) {
    let r = cli(['bench', ...tiny, '--json', bj]);
    assert.is(r.code, 0, `bench, run ${i}: ${r.err}`);
    r = cli(['score', '--summary-json', sj, corpus]);
    assert.is(r.code, 0, `score --summary-json, run ${i}: ${r.err}`);
    r = cli(['run', ...small, '--out', ry]);
    assert.is(r.code, 0, `run --out, run ${i}: ${r.err}`);
  }
  assert.is(JSON.parse(readFileSync(bj, 'utf8')).suite, 'retnet bench');
  assert.is(typeof JSON.parse(readFileSync(sj, 'utf8')).run_id, 'string');
  const st = readSafetensors(ry);
  assert.equal([...st.tensors.keys()], ['output']);
  assert.is(st.metadata.written_by, 'retnet run', 'run marks its output');
  inputsIntact('own files');
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));
test('drift --out-dir: files of that name that are not an earlier drift run\'s are refused (or, drift.svg with --no-plot, left)', () => {
  // before: only the folder and the model were checked; a user's drift.json in the folder was replaced, and
  // with --no-plot any regular file named drift.svg was removed
  const dd = mkdtempSync(join(tmpdir(), 'retnet-driftdir-'));
  writeFileSync(join(dd, 'drift.json'), 'my notes\n');
  writeFileSync(join(dd, 'drift.svg'), '<svg>mine</svg>\n');
  const args = ['drift', '--backends', 'js', '--length', '16', '--out-dir', dd, '--no-plot'];
  let r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /drift\.json exists and is not an earlier `retnet drift` output/);
  assert.is(readFileSync(join(dd, 'drift.json'), 'utf8'), 'my notes\n');
  rmSync(join(dd, 'drift.json'));
  r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(readFileSync(join(dd, 'drift.svg'), 'utf8'), '<svg>mine</svg>\n', 'a user\'s drift.svg is left');
  assert.match(r.stderr, /drift\.svg is not an earlier study's plot and was left as it is/);
  // a second run replaces the first one's files
  r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
});

test.run();
