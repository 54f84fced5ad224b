// Command-line and library edges found by a review on 2026-12-07 (each test failed before its fix):
// a reader closing the pipe, RETNET_DEBUG, an empty backend list, Node's multi-line parse messages,
// outputs named '-' or .zst, comparisons of objects they did not understand, an async row source, and
// configurations that crashed later instead of being refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNet, readSafetensors, relMaxError, maxAbsDiff, nmse, allclose, writeSafetensors } from '../src/index.js';
import { FIXTURES, ROOT } from './helpers.js';

const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const TMP = mkdtempSync(join(tmpdir(), 'retnet-cli-edges-'));
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [MAIN, ...args], { cwd: TMP, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NO_COLOR: '1', ...env } });
const corpus = join(TMP, 'corpus.jsonl');
writeFileSync(corpus, '{"id": "a", "text": "one two three"}\n{"id": "b", "text": "four"}\n');
writeFileSync(join(TMP, 'plain.txt'), 'a plain file to score\n');

test('a reader that closes the pipe early ends the command quietly, exit 141 as SIGPIPE would (before: an unhandled EPIPE stack trace)', async () => {
  const child = spawn(process.execPath, [MAIN, 'generate', '--prompt', 'x', '--max-bytes', '20000'], { cwd: TMP, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b) => { err += String(b); });
  child.stdout.once('data', () => child.stdout.destroy()); // `| head -c5`
  const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  assert.is(code, 141, err);
  assert.not.match(err, /EPIPE|node:events|\n\s+at /);
});

test('RETNET_DEBUG=1 adds the stack on score (as on the other commands); RETNET_DEBUG=0 does not', () => {
  const on = cli(['score', join(TMP, 'missing.txt')], { RETNET_DEBUG: '1' });
  assert.is(on.status, 1);
  assert.match(on.stderr, /^retnet: cannot read .*missing\.txt/m);
  assert.match(on.stderr, /\n\s+at /, on.stderr);
  const off = cli(['info', join(TMP, 'missing.safetensors')], { RETNET_DEBUG: '0' });
  assert.is(off.status, 1);
  assert.not.match(off.stderr, /\n\s+at /, off.stderr);
});

test('RETNET_PRECISION=bf16 does not reach a js corpus run (before: E_OPTION "precision must be f32 on the js backend")', () => {
  const out = join(TMP, 'js-env.jsonl');
  const r = cli(['score', '--backend', 'js', '--out', out, corpus], { RETNET_PRECISION: 'bf16' });
  assert.is(r.status, 0, r.stderr);
  assert.ok(existsSync(out));
});

test('drift under RETNET_PRECISION=bf16: rows labelled f32 are f32 (before: computed in bf16, labelled f32)', () => {
  const dir = join(TMP, 'drift-env');
  const r = cli(['drift', '--backends', 'wasm', '--precisions', 'f32', '--length', '16', '--out-dir', dir, '--no-plot'], { RETNET_PRECISION: 'bf16' });
  assert.is(r.status, 0, r.stderr);
  const rows = (JSON.parse(readFileSync(join(dir, 'drift.json'), 'utf8')) as { rows: { precision: string; relMaxError: number }[] }).rows;
  assert.ok(rows.length > 0 && rows.every((x) => x.precision === 'f32'));
  // float32 over 16 tokens: ~1e-6 of max|ref|; bfloat16 operands give ~1e-2
  assert.ok(rows.every((x) => x.relMaxError < 1e-4), rows.map((x) => x.relMaxError).join(', '));
});

test('drift --model takes a language-model checkpoint (the shipped byte LM), fed the embeddings of random ids (before: refused, "unexpected weights")', () => {
  const dir = join(TMP, 'drift-lm');
  const r = cli(['drift', '--model', join(ROOT, 'src', 'assets', 'bytes-4x128.safetensors'), '--backends', 'wasm', '--precisions', 'f32', '--length', '16', '--out-dir', dir, '--no-plot']);
  assert.is(r.status, 0, r.stderr);
  const j = JSON.parse(readFileSync(join(dir, 'drift.json'), 'utf8')) as { input: string; rows: { relMaxError: number; error?: string }[] };
  assert.match(j.input, /^embeddings of 16 seeded random token ids \[1, 16, 128\]$/);
  assert.ok(j.rows.length > 0 && j.rows.every((x) => !x.error && x.relMaxError < 1e-4), JSON.stringify(j.rows.slice(0, 2)));
});

test('bench: a kernel engine that cannot load skips its own cells only; rows name their kernels (before: the whole wasm backend was marked unavailable)', () => {
  const json = join(TMP, 'bench-kernels.json');
  const r = cli(['bench', '--layers', '1', '--dim', '32', '--heads', '2', '--lengths', '64', '--chunks', '8', '--workers', '1', '--kernels', 'dnnl,wasm', '--json', json], { RETNET_DNNL: '/nonexistent/libdnnl.so' });
  assert.is(r.status, 0, r.stderr);
  const rows = (JSON.parse(readFileSync(json, 'utf8')) as { rows: { kernels?: string; unavailable?: string; tokensPerSec: number }[] }).rows;
  assert.ok(rows.some((x) => x.kernels === 'dnnl' && typeof x.unavailable === 'string'), JSON.stringify(rows));
  assert.ok(rows.some((x) => x.kernels === 'wasm' && x.unavailable === undefined && x.tokensPerSec > 0), JSON.stringify(rows));
});

test('usage errors: an empty backend list, a value that starts with a dash (one line), an output named - or .zst — exit 2 before any work', () => {
  for (const [args, re] of [
    [['bench', '--layers', '1', '--dim', '32', '--heads', '2', '--lengths', '64', '--backend', ''], /--backend needs at least one backend/],
    [['bench', '--layers', '1', '--dim', '32', '--heads', '2', '--lengths', '64', '--backend', ','], /--backend needs at least one backend/],
    [['drift', '--backends', '', '--length', '16'], /--backends needs at least one backend/],
    [['generate', '--prompt', '-x'], /argument is ambiguous\. Did you forget/],
    [['score', '--out', '-', corpus], /--out -: an output here is a file/],
    [['bench', '--layers', '1', '--dim', '32', '--heads', '2', '--lengths', '64', '--json', '-'], /--json -: an output here is a file/],
    [['drift', '--backends', 'wasm', '--length', '16', '--out-dir', '-'], /--out-dir -: the output here is a folder/], // before: ./-/ made
    [['run', '--model', join(ROOT, 'test', 'fixtures', 'retnet-tiny.safetensors'), '--input', join(ROOT, 'test', 'fixtures', 'retnet-tiny.cases.safetensors'), '--out', '-'],
      /^retnet run: --out -: an output here is a file \(give its name\)$/], // before: "... score prints its records on stdout"
    [['score', '--out', join(TMP, 'scores.jsonl.zst'), corpus], /only gzip compression is written/],
    [['score', '--jsonl', join(TMP, 'files.jsonl.gz'), join(TMP, 'plain.txt')], /this output is written uncompressed/], // --jsonl never gzips
  ] as [string[], RegExp][]) {
    const r = cli(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    const first = r.stderr.split('\n')[0]!;
    assert.match(first, re, args.join(' '));
    assert.not.match(first, /\\u000a/);
  }
  assert.not.ok(existsSync(join(TMP, '-')), 'no file named -');
  assert.not.ok(existsSync(join(TMP, 'scores.jsonl.zst')));
});

test('an output folder that cannot be created (/proc/x, /sys/x) is refused before the work (before, as root: drift hung in mkdir, bench lost its results at the end)', () => {
  if (process.platform !== 'linux') return;
  for (const args of [['drift', '--backends', 'wasm', '--precisions', 'f32', '--length', '16', '--out-dir', '/proc/x'],
    ['bench', '--layers', '1', '--dim', '32', '--heads', '2', '--lengths', '64', '--json', '/sys/x/b.json']]) {
    const r = cli(args);
    assert.is(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr.split('\n')[0]!, /\/(proc|sys)\/x/);
    assert.is(r.stdout, '', `${args[0]}: nothing measured`);
  }
});

test('drift --no-plot into a folder with an earlier study removes its drift.svg (before: left beside the new csv/json)', () => {
  const dir = join(TMP, 'drift');
  const a = cli(['drift', '--backends', 'wasm', '--precisions', 'f32', '--length', '16', '--out-dir', dir]);
  assert.is(a.status, 0, a.stderr);
  if (existsSync(join(dir, 'drift.svg'))) { // the plot needs its optional packages
    const b = cli(['drift', '--backends', 'wasm', '--precisions', 'f32', '--length', '16', '--out-dir', dir, '--no-plot']);
    assert.is(b.status, 0, b.stderr);
    assert.not.ok(existsSync(join(dir, 'drift.svg')));
    assert.match(b.stderr, /an earlier study's drift\.svg in this folder was removed/);
  }
});

test('bench: the tfjs install advice names the package the engine lacks (before: always @tensorflow/tfjs, installed or not)', () => {
  const r = cli(['bench', '--backend', 'tfjs,wasm', '--layers', '1', '--dim', '32', '--heads', '2', '--lengths', '64', '--workers', '1'], { RETNET_TFJS_ENGINE: 'tfjs-node' });
  assert.is(r.status, 0, r.stderr);
  if (!/package @tensorflow\/tfjs-node is not installed/.test(r.stdout)) return; // the package is there: nothing to advise
  assert.match(r.stdout, /^tfjs: npm install @tensorflow\/tfjs-node \(the engine asked for\)/m);
  assert.not.match(r.stdout, /for the CPU, npm install @tensorflow\/tfjs;/);
});

test('drift run twice into one folder at L = 512 replaces its own plot (before: a plot over 64 KiB, its title near the end, was refused)', () => {
  const dir = join(TMP, 'drift512');
  const args = ['drift', '--backends', 'wasm', '--length', '512', '--out-dir', dir]; // f32 and bf16: a 96 KB plot
  const a = cli(args);
  assert.is(a.status, 0, a.stderr);
  if (!existsSync(join(dir, 'drift.svg'))) return; // the plot needs its optional packages
  assert.ok(statSync(join(dir, 'drift.svg')).size > 1 << 16, 'a plot larger than 64 KiB');
  const b = cli(args);
  assert.is(b.status, 0, b.stderr);
  const c = cli([...args, '--no-plot']);
  assert.is(c.status, 0, c.stderr);
  assert.not.ok(existsSync(join(dir, 'drift.svg')));
});

test('the comparisons take readSafetensors\' tensors and refuse what they cannot read (before: 0 — "no difference" — for any object)', () => {
  const p = join(TMP, 'cmp.safetensors');
  writeSafetensors(p, { a: { shape: [3], data: Float32Array.from([1, 2, 3]) }, b: { shape: [3], data: Float32Array.from([1, 2, 3.5]) } });
  const { tensors } = readSafetensors(p);
  const a = tensors.get('a')!, b = tensors.get('b')!;
  assert.is(relMaxError(b, a), 0.5 / 3);
  assert.is(maxAbsDiff(b, a), 0.5);
  assert.ok(nmse(b, a) > 0);
  assert.is(allclose(b, a), false);
  // any array-like still compares (an arguments object, { length, 0: … })
  assert.is(maxAbsDiff({ length: 2, 0: 1, 1: 2 } as ArrayLike<number>, [1, 2.5]), 0.5);
  for (const bad of [{}, null, { data: 'xyz' }, 5]) {
    assert.throws(() => relMaxError(bad as never, a), (e: Error & { code?: string }) => e.code === 'E_INPUT' && /cannot compare/.test(e.message));
    assert.throws(() => allclose(a, bad as never), (e: Error & { code?: string }) => e.code === 'E_INPUT');
  }
});

test('forwardStream: an async source.read, an empty source or a missing sink is E_INPUT (before: a silently wrong output, E_MEMORY, TypeError)', async () => {
  const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 16, seed: 1 });
  try {
    const sink = { write() {} };
    for (const backend of ['js', 'wasm'] as const) {
      const asyncSource = { lengths: [10], read: (_s: number, st: number, into: Float32Array) => new Promise<void>((r) => setTimeout(() => { into.fill(0.1 + st); r(); }, 1)) };
      try { await model.forwardStream(asyncSource as never, sink, { chunkSize: 4, backend }); assert.unreachable(backend); } catch (e) {
        assert.is((e as { code?: string }).code, 'E_INPUT', String(e));
        assert.match((e as Error).message, /source\.read returned a Promise/);
      }
    }
    for (const [src, snk, re] of [
      [{ lengths: [], read() {} }, sink, /non-empty array/],
      [{ lengths: [4], read() {} }, null, /sink must be an object/],
      [null, sink, /source must be an object/],
    ] as [unknown, unknown, RegExp][]) {
      try { await model.forwardStream(src as never, snk as never, { chunkSize: 4 }); assert.unreachable(String(re)); } catch (e) {
        assert.is((e as { code?: string }).code, 'E_INPUT', String(e));
        assert.match((e as Error).message, re);
      }
    }
  } finally { await model.close(); }
});

test('RetNet.init refuses numLayer 0, an mlpMult whose MLP has no width, and a null config, naming the key (before: a TypeError at forward, a non-finite bias, a TypeError)', () => {
  for (const [cfg, key] of [[{ numLayer: 0 }, 'numLayer'], [{ mlpMult: 0.01 }, 'mlpMult']] as [Record<string, number>, string][]) {
    assert.throws(() => RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 16, ...cfg }),
      (e: Error & { code?: string }) => e.code === 'E_OPTION' && e.message.includes(`config.${key}`), key);
  }
  assert.throws(() => RetNet.init(null as never), (e: Error & { code?: string }) => e.code === 'E_OPTION' && /options\.config must be an object/.test(e.message));
});

test('a refused model folder exits 2 with the loader\'s message in corpus mode and in worker too (before: exit 1, and worker printed only "E_WEIGHTS")', () => {
  const bad = join(TMP, 'bad-model'), empty = join(TMP, 'empty-model');
  cpSync(join(FIXTURES, 'fla', 'f32'), bad, { recursive: true }); mkdirSync(empty, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(bad, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...cfg, use_short_conv: true }));
  for (const args of [
    ['score', '--model', bad, corpus],
    ['score', '--model', bad, '--out', join(TMP, 'refused.jsonl'), join(TMP, 'plain.txt')],
    ['worker', '--queue', 'redis://127.0.0.1:1', '--redis-timeout', '1', '--model', bad],
  ]) {
    const r = cli(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /E_CONFIG: .*use_short_conv/, r.stderr);
  }
  const w = cli(['worker', '--queue', 'redis://127.0.0.1:1', '--redis-timeout', '1', '--model', empty]);
  assert.is(w.status, 2, w.stderr);
  assert.match(w.stderr, /no config\.json/, w.stderr);
});

test('help --help, --resume without the sidecar, a fractional --redis-timeout, a bad RETNET_TFJS_ENGINE: each says what is so (before: exit 2, "continue it with --resume", "within 1 s", "npm install")', () => {
  const h = cli(['help', '--help']);
  assert.is(h.status, 0, h.stderr);
  assert.match(h.stdout, /commands:/);
  const out = join(TMP, 'resumed.jsonl');
  writeFileSync(`${out}.partial`, '{"id": "a", "bits_per_byte": 1}\n');
  const r = cli(['score', '--out', out, '--resume', corpus]);
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /cannot resume: .*is missing/);
  assert.not.match(r.stderr, /continue it with --resume/);
  const q = cli(['worker', '--queue', 'redis://127.0.0.1:1', '--redis-timeout', '0.5']);
  assert.is(q.status, 1, q.stderr);
  assert.match(q.stderr, /within 0\.5 s/);
  const b = cli(['bench', '--backend', 'tfjs', '--lengths', '64', '--layers', '1', '--dim', '32', '--heads', '2'], { RETNET_TFJS_ENGINE: 'bogus' });
  assert.match(b.stdout, /RETNET_TFJS_ENGINE must be one of/);
  assert.not.match(b.stdout, /npm install/);
});

test('info refuses a folder whose config says retnet but whose tensors are not a fla RetNet\'s (before: fla\'s default architecture printed, exit 0)', () => {
  const dir = join(TMP, 'not-fla');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'retnet', decoder_embed_dim: 64, decoder_layers: 2 }));
  writeSafetensors(join(dir, 'model.safetensors'), { 'model.embed_tokens.weight': { shape: [10, 4], data: new Float32Array(40) } });
  const r = cli(['info', dir]);
  assert.is(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /no tensor model\.embeddings\.weight: not a fla RetNet folder/);
  assert.not.match(r.stdout, /layers/);
});

test('worker interrupted (SIGINT) before Redis answers says it stopped while waiting, never "connected", exit 0 as documented (before: "connected to redis://127.0.0.1:1")', async () => {
  const child = spawn(process.execPath, [MAIN, 'worker', '--queue', 'redis://127.0.0.1:1'], { cwd: TMP, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (b) => { out += String(b); });
  child.stderr.on('data', (b) => { err += String(b); });
  const closed = new Promise<[number | null, NodeJS.Signals | null]>((res) => child.on('close', (c, s) => res([c, s])));
  await new Promise((r) => setTimeout(r, 2000)); // the model loaded; nothing listens on port 1
  child.kill('SIGINT');
  const [code, signal] = await closed;
  assert.is(signal, null, err);
  assert.is(code, 0, err);
  assert.not.match(out + err, /connected to/);
  assert.match(err, /worker: stopped while waiting for Redis at redis:\/\/127\.0\.0\.1:1 \(never connected; no shards taken\)/);
  assert.not.match(err, /stopped after \d+ shards/);
});

test('impossible flag combinations are usage errors (exit 2) naming the flag, before any work (before: the library\'s E_OPTION, exit 1, some after the model loaded; or the flag silently ignored, exit 0)', () => {
  const fla = join(FIXTURES, 'fla', 'f32');
  const tiny = ['--lengths', '16', '--chunks', '2', '--layers', '1', '--dim', '16', '--heads', '2'];
  const plain = join(TMP, 'plain.txt');
  const cases: [string[], RegExp][] = [
    [['score', '--backend', 'js', '--precision', 'bf16', plain], /--precision bf16 needs --backend wasm .*js computes in float64/],
    [['score', '--backend', 'tfjs', '--precision', 'bf16', plain], /--precision bf16 needs --backend wasm .*tfjs computes in float32/],
    [['score', '--backend', 'js', '--precision', 'bf16', '--out', join(TMP, 'p.jsonl'), corpus], /--precision bf16 needs --backend wasm/],
    [['score', '--out', join(TMP, 's.jsonl'), '--resume', '-'], /--resume cannot continue a run that reads stdin \('-'\)/],
    [['score', '--out', join(TMP, 'x.jsonl'), '-', '-'], /stdin \('-'\) can be given only once/],
    [['drift', '--model', fla, '--normalize-attn', '--length', '16', '--backends', 'js'], /--normalize-attn is for the seed's checkpoints; .*f32 is a fla-family model folder/],
    [['drift', '--model', fla, '--normalize-retn', '--length', '16', '--backends', 'js'], /--normalize-retn is for the seed's checkpoints/],
    [['bench', '--backend', 'js', '--precision', 'bf16', ...tiny], /--precision bf16 needs --backend wasm/],
    [['bench', '--backend', 'wasm,tfjs', '--precision', 'bf16', ...tiny], /--precision bf16 needs --backend wasm .*tfjs/],
    // options that were accepted and ignored
    [['drift', '--length', '16', '--backends', 'js', '--precisions', 'bf16'], /--precisions bf16 needs the wasm backend in --backends .*got --backends js/],
    [['drift', '--model', fla, '--msr-gate-fn', 'silu', '--length', '16', '--backends', 'js'], /--msr-gate-fn is for a checkpoint file; .*f32 is a model folder/],
    [['drift', '--model', fla, '--mlp-gate-fn', 'gelu', '--length', '16', '--backends', 'js'], /--mlp-gate-fn is for a checkpoint file/],
    [['info', fla, '--msr-gate-fn', 'silu'], /--msr-gate-fn is for a checkpoint file; .*f32 is a model folder/],
    // a chunk past the parallel form's limit (before: --lengths 40000 --chunks 1 on js ran on past 120 s)
    [['bench', '--backend', 'js', '--lengths', '40000', '--chunks', '1', '--layers', '1', '--dim', '16', '--heads', '2'], /--lengths 40000 with --chunks 1 makes chunks of 40000 tokens, over 16384 .*use at least 3 chunks/],
    [['bench', '--lengths', '64,20000', '--chunks', '-1,2,1', '--layers', '1', '--dim', '16', '--heads', '2'], /--lengths 20000 with --chunks 1 makes chunks of 20000 tokens/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: TMP, encoding: 'utf8', timeout: 120_000, input: 'some text on stdin\n', env: { ...process.env, NO_COLOR: '1' } });
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.not.match(r.stderr, /options\.|E_OPTION/, 'the CLI\'s words, not the library\'s');
    assert.is(r.stdout, '', `${args.join(' ')}: nothing done`);
  }
  assert.not.ok(existsSync(join(TMP, 's.jsonl.partial')) || existsSync(join(TMP, 'x.jsonl.partial')) || existsSync(join(TMP, 'p.jsonl.partial')), 'no partial output');
  // what stays allowed: --precisions bf16 with wasm among the backends, the default list without wasm, f32 anywhere
  const ok = cli(['drift', '--length', '8', '--backends', 'js', '--out-dir', join(TMP, 'drift-js'), '--no-plot']);
  assert.is(ok.status, 0, ok.stderr);
});

test('flags a run cannot use are refused, not ignored: --workers/--kernels off the wasm backend, drift\'s activations without --model', () => {
  const small = join(FIXTURES, 'retnet-small.safetensors');
  const input = join(TMP, 'wasm-only-x.safetensors');
  writeSafetensors(input, { x: { shape: [1, 4, 32], data: new Float32Array(128).fill(0.5) } });
  const out = join(TMP, 'wasm-only-y.safetensors');
  const cases: [string[], RegExp][] = [
    // before: exit 0, the float64 reference run, and kernels "dnnl" / 7 workers recorded in the output's metadata
    [['run', '--model', small, '--input', input, '--out', out, '--backend', 'js', '--kernels', 'dnnl'], /--kernels is for the wasm backend.*--backend js/],
    [['run', '--model', small, '--input', input, '--out', out, '--backend', 'js', '--workers', '7'], /--workers is for the wasm backend/],
    [['run', '--model', small, '--input', input, '--out', out, '--backend', 'tfjs', '--kernels', 'blas'], /--kernels is for the wasm backend.*--backend tfjs/],
    [['demo', '--small', '--backend', 'js', '--workers', '2'], /--workers is for the wasm backend/],
    [['drift', '--length', '8', '--backends', 'js', '--workers', '1'], /--workers is for the wasm backend.*--backends js/],
    // before: exit 0 and drift.json's model said gelu (the seeded model's) with --msr-gate-fn silu given
    [['drift', '--length', '8', '--backends', 'js', '--msr-gate-fn', 'silu'], /--msr-gate-fn is for a --model checkpoint file/],
    [['drift', '--length', '8', '--backends', 'js', '--mlp-gate-fn', 'relu'], /--mlp-gate-fn is for a --model checkpoint file/],
  ];
  for (const [args, message] of cases) {
    const r = cli(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.is(r.stdout, '', `${args.join(' ')}: nothing done`);
  }
  assert.not.ok(existsSync(out), 'no output written');
  // still accepted: the same flags on the wasm backend, and the activations with --model
  const ok = cli(['run', '--model', small, '--input', input, '--out', out, '--backend', 'wasm', '--kernels', 'wasm', '--workers', '1']);
  assert.is(ok.status, 0, ok.stderr);
  const d = cli(['drift', '--model', small, '--mlp-gate-fn', 'silu', '--length', '8', '--backends', 'js', '--no-plot', '--out-dir', join(TMP, 'drift-acts')]);
  assert.is(d.status, 0, d.stderr);
  // and drift.json says which activations ran (before: only the path; the silu given here was nowhere)
  const dj = JSON.parse(readFileSync(join(TMP, 'drift-acts', 'drift.json'), 'utf8'));
  assert.equal(dj.activations, { msrGateFn: 'gelu', mlpGateFn: 'silu' });
});

test.run();
