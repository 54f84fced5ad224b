// The retnet CLI, run as a child process (node dist/src/cli/main.js): each
// command's happy path on small inputs, --help, bad command lines (exit 2
// with a usage line), missing/corrupt files (exit 1, a clear message), and
// the run command's output read back and compared with model.forward.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, casesPath, expectRel, fixturePath, loadFixtureModel } from './helpers.js';
import { Tensor, readSafetensors, writeSafetensors } from '../src/index.js';
import { engineMissing } from './helpers/engines.js';

const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const TMP = mkdtempSync(join(tmpdir(), 'retnet-cli-'));
const TINY = fixturePath('retnet-tiny');

/** Run the CLI (default backend: the worker pool with the WASM kernels). */
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd: TMP, encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function expectUsage(r: ReturnType<typeof cli>, msg: RegExp, what: string) {
  assert.is(r.code, 2, `${what}: exit code (stderr: ${r.err})`);
  assert.match(r.err, msg, `${what}: message`);
  assert.match(r.err, /^usage: retnet/m, `${what}: usage line`);
  assert.not.match(r.err, /\n\s+at /, `${what}: no stack trace`);
}

function expectFailure(r: ReturnType<typeof cli>, msg: RegExp, what: string) {
  assert.is(r.code, 1, `${what}: exit code (stderr: ${r.err})`);
  assert.match(r.err, /^retnet: /, `${what}: prefix`);
  assert.match(r.err, msg, `${what}: message`);
  assert.not.match(r.err, /\n\s+at /, `${what}: no stack trace`);
}

test('--help: the global help and every command\'s', () => {
  const g = cli('--help');
  assert.is(g.code, 0);
  for (const c of ['run', 'info', 'bench', 'drift', 'score', 'generate']) assert.match(g.out, new RegExp(`^  ${c} `, 'm'));
  for (const c of ['demo', 'run', 'info', 'bench', 'drift', 'score', 'generate']) {
    const r = cli(c, '--help');
    assert.is(r.code, 0, `${c} --help`);
    assert.match(r.out, /^usage: retnet/, `${c} --help usage line`);
  }
});

test('bad command lines exit 2 with a usage line', () => {
  expectUsage(cli('frobnicate'), /unknown command "frobnicate"/, 'unknown command');
  expectUsage(cli('run', '--bogus'), /Unknown option '--bogus'$/m, 'unknown option, nothing near it');
  // a near miss names the option meant; an ambiguous one (two prefixes) names none
  expectUsage(cli('generate', '--max-tokens', '5', '--prompt', 'x'), /Unknown option '--max-tokens' \(did you mean --max-new-tokens\?\)/, 'near miss, words');
  expectUsage(cli('score', '--ouput', 'x.jsonl', 'y'), /\(did you mean --out\?\)/, 'near miss, edits');
  expectUsage(cli('bench', '--lenghts', '10'), /\(did you mean --lengths\?\)/, 'near miss, transposed letters');
  expectUsage(cli('drift', '--out', 'x'), /\(did you mean --out-dir\?\)/, 'near miss, prefix');
  expectUsage(cli('generate', '--max', '3', '--prompt', 'x'), /Unknown option '--max' \(did you mean --max-bytes or --max-new-tokens\?\)$/m, 'two options start so: both named');
  // the message, the usage lines and where the options are; not the whole --help text under the message
  for (const c of ['score', 'generate', 'bench']) {
    const r = cli(c, '--no-such-option');
    expectUsage(r, new RegExp(`^retnet ${c}: Unknown option '--no-such-option'\\nusage: retnet ${c} `), `${c}: message first, then usage`);
    assert.match(r.err, new RegExp(`\\(\`retnet ${c} --help\` lists every option\\)\\n$`), `${c}: ends with where the options are`);
    assert.ok(r.err.split('\n').length <= 6, `${c}: a few lines, not the --help text:\n${r.err}`);
  }
  expectUsage(cli('run', '--model', TINY), /--input is required/, 'missing --input');
  expectUsage(cli('run', '--model', TINY, '--input', 'x', '--out', 'y', '--chunks', '0'), /--chunks must be a positive integer or -1/, '--chunks 0');
  expectUsage(cli('run', '--model', TINY, '--input', 'x', '--out', 'y', '--chunks', '2', '--chunk-size', '3'), /not both/, 'both chunk options');
  expectUsage(cli('run', '--model', TINY, '--input', 'x', '--out', 'y', '--backend', 'cuda'), /--backend must be one of js, wasm, tfjs/, 'bad backend');
  expectUsage(cli('info'), /give one checkpoint file/, 'info without a file');
  expectUsage(cli('bench', '--lengths', '10,abc'), /--lengths must be a positive integer/, 'bad list');
  expectUsage(cli('drift', '--length', '-5'), /--length must be a positive integer/, 'bad length');
  expectUsage(cli('--small', '--workers', '0'), /--workers must be a positive integer/, 'main job bad workers');
});

test('missing and corrupt model files exit 1 with a clear message', () => {
  expectFailure(cli('info', join(TMP, 'nope.safetensors')), /nope\.safetensors: cannot open: ENOENT/, 'missing');
  const bad = join(TMP, 'corrupt.safetensors');
  const buf = Buffer.alloc(64); buf.writeBigUInt64LE(10n ** 12n); writeFileSync(bad, buf);
  expectFailure(cli('info', bad), /header length .* (exceeds|corrupt)/, 'corrupt header');
  const trunc = join(TMP, 'truncated.safetensors');
  writeFileSync(trunc, readFileSync(TINY).subarray(0, 400));
  expectFailure(cli('info', trunc), /truncated|corrupt|outside|exceeds/, 'truncated');
  expectFailure(cli('run', '--model', trunc, '--input', casesPath('retnet-tiny'), '--key', 'input', '--out', join(TMP, 'o.st')), /truncated|corrupt|outside|exceeds/, 'run with a truncated model');
});

test('info prints the architecture of a checkpoint', () => {
  const r = cli('info', TINY);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /layers\s+1\n/);
  assert.match(r.out, /heads\s+2\n/);
  assert.match(r.out, /d\s+8\n/);
  assert.match(r.out, /MLP widths\s+8 → 32 → 8/);
  assert.match(r.out, /parameters\s+1,168/);
  const j = JSON.parse(cli('info', TINY, '--json').out);
  assert.equal([j.layers, j.heads, j.d, j.dk, j.dv], [1, 2, 8, 4, 8]);
});

test('info --json: dtypes is dtype → tensor count for a checkpoint file as for a model folder (before: ["F32"] for a file, {"F32": 25} for a folder)', () => {
  const file = JSON.parse(cli('info', TINY, '--json').out);
  const folder = JSON.parse(cli('info', join(ROOT, 'test', 'fixtures', 'fla', 'gqa'), '--json').out);
  assert.equal(folder.dtypes, { F32: folder.tensors });
  assert.equal(file.dtypes, { F32: readSafetensors(TINY).tensors.size });
  assert.match(cli('info', TINY).out, /^file +\S+retnet-tiny\.safetensors \(F32\)$/m, 'the text form names the dtypes as before');
});

test('run: the output read back equals model.forward (wasm chunkwise, js parallel, recurrent)', async () => {
  const model = await loadFixtureModel('retnet-tiny');
  const x = Tensor.randn([2, 50, 8], { seed: 3, dtype: 'float32' });
  const xPath = join(TMP, 'x.safetensors');
  writeSafetensors(xPath, { x: { shape: x.shape, data: x.data } });
  for (const [args, opts] of [
    [['--chunks', '3'], { numChunks: 3 }],
    [['--backend', 'js'], { numChunks: null }],
    [['--chunks', '-1', '--normalize-retn', '--workers', '1'], { numChunks: -1, normalizeRetn: true }],
    [['--chunk-size', '7', '--normalize-attn'], { chunkSize: 7, normalizeAttn: true }],
  ] as const) {
    const out = join(TMP, 'y.safetensors');
    const r = cli('run', '--model', TINY, '--input', xPath, '--out', out, ...args);
    assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
    assert.is(r.out + r.err, '', 'quiet when not a TTY');
    const y = readSafetensors(out).tensors.get('output')!;
    assert.is(y.dtype, 'F32');
    assert.equal(y.shape, [2, 50, 8]);
    // float64 reference; float32 arithmetic agrees to ~1e-7 of max|ref|, 2e-5 leaves room for long accumulations
    const ref = await model.forward(x, { ...opts, backend: 'js' });
    expectRel(y.data as Float32Array, ref, 2e-5, `run ${args.join(' ')}`);
  }
  await model.close();
});

test('run: picks tensors by --key, names them when ambiguous, checks widths', async () => {
  const out = join(TMP, 'y2.safetensors');
  const amb = cli('run', '--model', TINY, '--input', casesPath('retnet-tiny'), '--out', out);
  expectFailure(amb, /has 12 tensors \("input", .*, … \(12 in all\)\); choose one with --key/, 'ambiguous input');
  assert.ok(!existsSync(out), 'no partial output');
  assert.is(cli('run', '--model', TINY, '--input', casesPath('retnet-tiny'), '--key', 'input', '--out', out, '--backend', 'js').code, 0);
  expectFailure(cli('run', '--model', TINY, '--input', casesPath('retnet-tiny'), '--key', 'layer0.q', '--out', out), /shape \[.*\]; expected \[batch, length, d\]/, 'wrong shape');
  expectFailure(cli('run', '--model', TINY, '--input', casesPath('retnet-tiny'), '--key', 'nope', '--out', out), /no tensor named "nope"/, 'missing key');
  const longX = join(TMP, 'long.safetensors');
  // a header-only check: the parallel form is refused before anything is read
  const w = await import('../src/index.js');
  const wideX = join(TMP, 'wide.safetensors');
  const ww = new w.SafetensorsWriter(wideX, [{ name: 'x', dtype: 'F32', shape: [1, 4, 5] }]); ww.write('x', 0, new Float32Array(20)); ww.close();
  expectFailure(cli('run', '--model', TINY, '--input', wideX, '--out', out), /shape \[1, 4, 5\]; expected \[batch, length, 8\] \(the model's d is 8\)/, 'wrong width');
  const sw = new w.SafetensorsWriter(longX, [{ name: 'x', dtype: 'F32', shape: [1, 20000, 8] }]); sw.close();
  // usage errors (exit 2) from the flags and the input's header, before the model loads (a model path that
  // does not exist is not reached; before: exit 1, after loading the model)
  const usage = (r: ReturnType<typeof cli>, re: RegExp, what: string) => {
    assert.is(r.code, 2, `${what}: exit code (stderr: ${r.err})`);
    assert.match(r.err, /^retnet run: /, `${what}: prefix`);
    assert.match(r.err, re, `${what}: message`);
  };
  usage(cli('run', '--model', TINY, '--input', longX, '--out', out), /L = 20000 is too long for the parallel form .*--chunk-size/, 'parallel refused');
  usage(cli('run', '--model', join(TMP, 'no-such-model.safetensors'), '--input', longX, '--out', out), /L = 20000 is too long for the parallel form/, 'before the model');
  // one chunk as long as the parallel form's limit is the same matrix (before: run on, into a 3 GiB
  // float64 matrix per head on the js backend); each refused before the input's data is read
  for (const [args, re] of [
    [['--chunks', '1'], /--chunks 1 makes chunks of 20000 tokens \(L = 20000\), over 16384/],
    [['--chunk-size', '30000'], /--chunk-size 30000 makes chunks of 20000 tokens/],
    [['--chunk-size', '16385', '--backend', 'js'], /--chunk-size 16385 makes chunks of 16385 tokens/],
  ] as const) usage(cli('run', '--model', TINY, '--input', longX, '--out', join(TMP, 'y3.safetensors'), ...args), re, args.join(' '));
  assert.ok(!existsSync(join(TMP, 'y3.safetensors')), 'no output');
});

test('main job --small prints timings and agreement', () => {
  const r = cli('--small', '--workers', '1');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /parallel\s+[\d.]+ s\s+[\d,]+ tokens\/s/);
  assert.match(r.out, /chunkwise \(8 chunks\)/);
  const rel = Number(/max\|Δ\|\/max\|parallel\| = ([\d.e+-]+)/.exec(r.out)?.[1]);
  assert.ok(rel < 1e-5, `agreement ${rel}`);
});

test('main job: --chunks beyond L says what ran (before: "chunkwise (1000 chunks)" for 128 chunks of 1 token); a demo usage error points to `retnet demo --help` (before: `retnet --help`, which does not list the demo\'s options)', () => {
  const r = cli('--small', '--workers', '1', '--chunks', '1000');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^  chunkwise \(128 chunks\) +[\d.]+ s +[\d,]+ tokens\/s  \(--chunks 1000 at L = 128: ran 128 chunks of 1 token\)$/m);
  assert.not.match(r.out, /1000 chunks\)/);
  const three = cli('--small', '--workers', '1', '--chunks', '3');
  assert.match(three.out, /^  chunkwise \(3 chunks\) +[\d.]+ s +[\d,]+ tokens\/s$/m, 'a count that ran as asked: no note');
  for (const args of [['--smal'], ['--small', '--kernels', 'foo'], ['demo', '--chunks', '0']]) {
    const u = cli(...args);
    expectUsage(u, /^retnet demo: /, args.join(' '));
    assert.match(u.err, /\(`retnet demo --help` lists every option\)\n$/, `${args.join(' ')}: the demo's own help`);
  }
  const h = cli('demo', '--help');
  assert.is(h.code, 0);
  assert.match(h.out, /--small/, '`retnet demo --help` lists the demo\'s options');
});

test('main job and bench say why the engine fell back (RETNET_BLAS naming a library that does not load)', () => {
  const env = { ...process.env, NO_COLOR: '1', RETNET_BLAS: join(TMP, 'no-such-libcblas.so') };
  const run = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { cwd: TMP, encoding: 'utf8', timeout: 60_000, env });
  const r = run(['--small', '--workers', '1']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^backend: wasm \(wasm-(relaxed-)?simd on CPU/m);
  assert.match(r.stdout, /^note: BLAS engine unavailable: .*no-such-libcblas\.so/m);
  const b = run(['bench', '--lengths', '32', '--chunks', '2', '--workers', '1', '--layers', '1', '--dim', '16', '--heads', '2']);
  assert.is(b.status, 0, b.stderr);
  assert.match(b.stdout, /^note: BLAS engine unavailable: .*no-such-libcblas\.so/m);
});

test('bench without --kernels takes RETNET_KERNELS, as the other commands do; --kernels overrides it', () => {
  const env = { ...process.env, NO_COLOR: '1', RETNET_KERNELS: 'wasm' };
  const run = (args: string[]) => spawnSync(process.execPath, [MAIN, 'bench', '--lengths', '32', '--chunks', '2', '--workers', '1', '--layers', '1', '--dim', '16', '--heads', '2', ...args], { cwd: TMP, encoding: 'utf8', timeout: 60_000, env });
  const w = run([]);
  assert.is(w.status, 0, w.stderr);
  const row = w.stdout.split('\n').find((l) => l.startsWith('wasm '));
  assert.ok(row && /^wasm\s+wasm-(relaxed-)?simd\s/.test(row), `RETNET_KERNELS=wasm ran: ${row}`);
  if (engineMissing('blas') === null) {
    const b = run(['--kernels', 'blas']);
    assert.is(b.status, 0, b.stderr);
    assert.match(b.stdout, /^wasm \(kernels blas\)\s+openblas/m); // the row names the --kernels it ran
  }
});

test('bench: a tiny matrix, table and JSON', () => {
  const json = join(TMP, 'bench.json');
  const r = cli('bench', '--backend', 'js,wasm', '--lengths', '16,32', '--chunks', '2,-1', '--workers', '1', '--layers', '1', '--dim', '16', '--heads', '2', '--json', json);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /tokens\/s/);
  const j = JSON.parse(readFileSync(json, 'utf8'));
  assert.is(j.rows.length, 8);
  assert.ok(j.rows.every((row: { tokensPerSec: number }) => row.tokensPerSec > 0));
  assert.ok(j.machine.cores >= 1 && /^v\d+/.test(j.machine.node));
});

test('drift: tiny length writes CSV, JSON and SVG', () => {
  const dir = join(TMP, 'drift');
  const r = cli('drift', '--length', '16', '--backends', 'wasm,js', '--workers', '1', '--out-dir', dir);
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(readFileSync(join(dir, 'drift.json'), 'utf8'));
  // counts: parallel, 1, 2, 4, 8, 16, -1 → 7; wasm × 2 operand precisions × 2 state precisions + js × 1; two targets
  assert.is(j.rows.length, 7 * 5 * 2);
  for (const row of j.rows) {
    assert.ok(!row.error, row.error);
    // f32: float32 arithmetic (1e-5); bf16: 8·2⁻⁹ per layer, 2 layers (test/precision.test.ts), here on the
    // retention output (one layer's projections) or the model's output
    const bound = row.backend === 'js' ? 1e-12 : row.precision === 'bf16' ? 16 * 2 ** -9 : 1e-5;
    assert.ok(row.relMaxError < bound, `${row.backend} ${row.precision} ${row.form} ${row.numChunks} ${row.target}: ${row.relMaxError}`);
    if (row.precision === 'bf16') assert.ok(row.relMaxError > 1e-5, 'bf16 rows show bfloat16-sized errors');
  }
  const csv = readFileSync(join(dir, 'drift.csv'), 'utf8').trim().split('\n');
  assert.is(csv.length, 1 + j.rows.length);
  assert.match(csv[0], /^backend,precision,stateDtype,form,numChunks,chunkSize,target,maxAbsError,relMaxError,nmse/);
  const svg = readFileSync(join(dir, 'drift.svg'), 'utf8');
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /wasm \/ state float32/);
  assert.match(svg, /wasm bf16 \/ state float64/);
});

test('chunk counts that do not divide L: drift rows and bench cells say what ran', () => {
  const dir = join(TMP, 'drift-100');
  const r = cli('drift', '--length', '100', '--backends', 'js', '--no-plot', '--out-dir', dir);
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(readFileSync(join(dir, 'drift.json'), 'utf8'));
  const rows = j.rows.filter((x: { form: string; target: string }) => x.form === 'chunkwise' && x.target === 'output');
  // numChunks k runs chunks of ceil(100/k) tokens: k = 16, 32, 64 make 15, 25, 50 chunks, and each row says so
  assert.equal(rows.map((x: { numChunks: number }) => x.numChunks), [1, 2, 4, 8, 15, 25, 50, 100]);
  for (const x of rows) assert.is(Math.ceil(100 / x.chunkSize), x.numChunks, `${x.numChunks} chunks of ${x.chunkSize}`);
  const json = join(TMP, 'bench-100.json');
  const b = cli('bench', '--backend', 'js', '--lengths', '100', '--chunks', '64,4', '--layers', '1', '--dim', '16', '--heads', '2', '--json', json);
  assert.is(b.code, 0, b.err);
  assert.match(b.out, / 64 .* ran 50 chunks of 2 tokens/);
  const cells = JSON.parse(readFileSync(json, 'utf8')).rows;
  assert.equal(cells.map((c: { chunks: number; chunksRun: number; chunkSize: number }) => [c.chunks, c.chunksRun, c.chunkSize]), [[64, 50, 2], [4, 4, 25]]);
});

test('--version prints the package version (before: "retnet demo: Unknown option"); run says what a model folder or an LM checkpoint is; score and worker --help describe every flag of their usage line', () => {
  const v = cli('--version');
  assert.is(v.code, 0, v.err);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.is(v.out, `retnet ${pkg.version}\n`);
  const input = fixturePath('retnet-small.cases');
  expectUsage(cli('run', '--model', join(ROOT, 'test', 'fixtures', 'fla', 'f32'), '--input', input, '--key', 'input', '--out', join(TMP, 'f.safetensors')),
    /is a model folder: run takes a \.safetensors RetNet checkpoint/, 'run on a folder');
  expectFailure(cli('run', '--model', join(ROOT, 'src', 'assets', 'bytes-4x128.safetensors'), '--input', input, '--key', 'input', '--out', join(TMP, 'b.safetensors')),
    /it is a language-model checkpoint \(embedding, final norm, head\): load it with RetNetLM\.load/, 'run on the byte LM');
  // a list flag naming an item twice (before: the same rows ran and were reported twice)
  expectUsage(cli('bench', '--lengths', '64,64'), /--lengths lists 64 twice/, 'bench --lengths');
  expectUsage(cli('bench', '--backend', 'js,js'), /--backend lists js twice/, 'bench --backend');
  expectUsage(cli('drift', '--precisions', 'f32,f32'), /--precisions lists f32 twice/, 'drift --precisions');
  // a RETNET_KERNELS the wasm backend cannot take: exit 2 before any work (before: error rows, or exit 1 after starting)
  for (const args of [['bench', '--lengths', '32', '--chunks', '2', '--layers', '1', '--dim', '16', '--heads', '2'], ['--small']]) {
    const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: TMP, encoding: 'utf8', timeout: 60_000, env: { ...process.env, RETNET_KERNELS: 'bogus' } });
    assert.is(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /RETNET_KERNELS must be auto, wasm, blas or dnnl \(got "bogus"\); unset it, or pass --kernels/);
  }
  // run's output records the activations that ran (a gelu and a silu run of one checkpoint differ)
  const out = join(TMP, 'acts.safetensors');
  const ok = cli('run', '--model', fixturePath('retnet-small'), '--mlp-gate-fn', 'silu', '--input', input, '--key', 'input', '--out', out, '--chunks', '2');
  assert.is(ok.code, 0, ok.err);
  assert.equal(JSON.parse(readSafetensors(out).metadata.activations!), { msr: 'gelu', mlp: 'silu' });
  for (const [cmd, flags] of [['score', ['--model', '--backend', '--chunk-size', '--precision', '--jsonl', '--per-token']], ['worker', ['--queue', '--model', '--run-id', '--lock-duration', '--redis-timeout']]] as const) {
    const h = cli(cmd, '--help');
    assert.is(h.code, 0);
    const body = h.out.split('\n').slice(1).join('\n'); // past the usage line
    for (const f of flags) assert.match(body, new RegExp(`^\\s+${f}\\b`, 'm'), `${cmd} --help describes ${f}`);
  }
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));
test.run();
