// The benchmark scripts' arguments (bench/args.ts): every script answers --help with its usage and
// exit 0 before any work, refuses an unknown option with exit 2 and its usage (no stack trace, no run
// that overwrites bench/results), and the two scripts that write into a directory they are given
// (gpu-bundle's stage, make-fla-shape's OUT_DIR) refuse one that holds someone else's files, as every
// script refuses an --out that is not a JSON result.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const BENCH = join(ROOT, 'dist', 'bench');
/** modules other scripts import (running them does nothing) */
const MODULES = new Set(['args.js', 'bandwidth.js', 'flops.js', 'gemm-rates.js']);
const SCRIPTS = [
  ...readdirSync(BENCH).filter((n) => n.endsWith('.js') && !MODULES.has(n)).map((n) => join(BENCH, n)),
  join(BENCH, 'peers', 'peers.js'),
];
const TMP = mkdtempSync(join(tmpdir(), 'retnet-bench-args-'));

function run(script: string, args: string[]) {
  const r = spawnSync(process.execPath, [script, ...args], { cwd: TMP, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** name → mtime of every file under bench/results (a run that wrote there changes it) */
function results(): Map<string, number> {
  const m = new Map<string, number>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n), s = statSync(p);
      if (s.isDirectory()) walk(p); else m.set(p, s.mtimeMs);
    }
  };
  walk(join(ROOT, 'bench', 'results'));
  return m;
}

const noStack = (text: string, what: string) => assert.not.match(text, /^\s+at .+:\d+:\d+\)?$/m, `${what}: no stack trace`);

test('every benchmark script: --help prints its usage and exits 0, an unknown option exits 2 with the usage; nothing is written', () => {
  assert.ok(SCRIPTS.length >= 18, `found ${SCRIPTS.length} scripts`);
  const before = results();
  for (const s of SCRIPTS) {
    const name = s.slice(BENCH.length + 1);
    const h = run(s, ['--help']);
    assert.is(h.code, 0, `${name} --help: exit 0 (stderr: ${h.err.slice(0, 300)})`);
    assert.match(h.out, /usage: /, `${name} --help: prints its usage`);
    // a script on bench/args.ts names its source (one that hands over to a CLI command prints that usage)
    const source = `bench/${name.replace(/\.js$/, '.ts')}`;
    if (h.out.includes('usage: node ')) assert.ok(h.out.includes(source) && existsSync(join(ROOT, source)), `${name} --help: names its source, ${source}`);
    noStack(h.err, `${name} --help`);
    const u = run(s, ['--no-such-option']);
    assert.is(u.code, 2, `${name} --no-such-option: exit 2 (stdout: ${u.out.slice(0, 300)})`);
    assert.match(u.err, /no-such-option/, `${name}: names the option`);
    assert.match(u.err, /usage: /, `${name}: prints its usage`);
    noStack(u.err, `${name} --no-such-option`);
  }
  assert.equal([...results()], [...before], 'bench/results unchanged');
  assert.equal(readdirSync(TMP), [], 'nothing written in the working directory');
});

test('a missing required option, a bad engine, a missing or extra positional: exit 2 with what is wrong', () => {
  const cases: [string, string[], RegExp][] = [
    ['decode.js', [], /--dir is required/],
    ['step-products.js', ['--passes', '2'], /--dir is required/],
    ['decode.js', ['--dir'], /argument missing|--dir/],
    ['step-products.js', ['--dir', join(TMP, 'none'), '--precision', 'f16'], /--precision: f32 or bf16/],
    ['peers/peers.js', ['--fla-dir', join(TMP, 'none')], /--fla-dir goes with --fla/],
    ['tfjs-throughput.js', ['wasm', 'bogus'], /unknown engine "bogus"/],
    ['gpu-bundle.js', [], /one STAGE_DIR expected \(got 0\)/],
    ['gpu-bundle.js', ['--cpu'], /one STAGE_DIR expected \(got 0\)/],
    ['gpu-bundle.js', [join(TMP, 'a'), join(TMP, 'b')], /one STAGE_DIR expected \(got 2\)/],
  ];
  for (const [script, args, why] of cases) {
    const r = run(join(BENCH, script), args);
    assert.is(r.code, 2, `${script} ${args.join(' ')}: exit 2`);
    assert.match(r.err, why, `${script} ${args.join(' ')}: says why`);
    noStack(r.err, script);
  }
});

test('an --out naming something other than a JSON result (a model, a directory) is refused before the run', () => {
  const model = join(TMP, 'weights.safetensors');
  writeFileSync(model, 'not json');
  for (const out of [model, TMP]) {
    const r = run(join(BENCH, 'forward.js'), ['--quick', '--out', out]);
    assert.is(r.code, 2, `--out ${out}: exit 2`);
    assert.match(r.err, /is not a benchmark result file/);
    noStack(r.err, 'forward.js --out');
  }
  assert.is(readFileSync(model, 'utf8'), 'not json', 'the file is untouched');
  rmSync(model);
});

test('an --out inside the run\'s own input folder (a model folder\'s config.json is JSON too), or a hard link to an input, is refused before the run', () => {
  const dir = join(TMP, 'model-folder');
  mkdirSync(dir);
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, '{"hidden_size": 8}');
  const link = join(TMP, 'link.json');
  linkSync(cfg, link);
  for (const out of [cfg, link]) {
    const r = run(join(BENCH, 'prefill.js'), ['--dir', dir, '--out', out]);
    assert.is(r.code, 2, `--out ${out}: exit 2`);
    assert.match(r.err, /is, or is inside, the --dir input/);
    noStack(r.err, 'prefill.js --out');
  }
  assert.is(readFileSync(cfg, 'utf8'), '{"hidden_size": 8}', 'the model folder\'s file is untouched');
  rmSync(link); rmSync(dir, { recursive: true });
});

test('gpu-bundle.sh: an unknown option or a second output is a usage error (exit 2) before any work, no file made', () => {
  for (const args of [['--CPU'], ['--cpu', 'a.tar.xz', 'b.tar.xz'], ['a.tar.xz', '--cpu']]) {
    const r = spawnSync('bash', [join(ROOT, 'bench', 'gpu-bundle.sh'), ...args], { cwd: TMP, encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 2, `${args.join(' ')}: exit 2`);
    assert.match(r.stderr, /^error: (unknown option --CPU|at most one OUT\.tar\.xz)/, `${args.join(' ')}: says why`);
    assert.match(r.stderr, /usage: bash bench\/gpu-bundle\.sh \[--cpu\] \[OUT\.tar\.xz\]/);
  }
  assert.equal(readdirSync(TMP), [], 'no file made (a mistyped option is not an output name)');
});

test('gpu-bundle.sh: an OUT that is not a .tar.xz name, or an existing file that is not an earlier bundle (a symlink too), is refused (exit 2) and left as it was', () => {
  const sh = join(ROOT, 'bench', 'gpu-bundle.sh');
  const dir = mkdtempSync(join(tmpdir(), 'retnet-bundle-out-'));
  try {
    writeFileSync(join(dir, 'input.txt'), 'keep me');
    writeFileSync(join(dir, 'mine.tar.xz'), 'not a bundle');
    linkSync(join(dir, 'input.txt'), join(dir, 'hard.tar.xz'));
    for (const [args, why] of [[['input.txt'], /OUT must end in \.tar\.xz/], [['--cpu', 'mine.tar.xz'], /mine\.tar\.xz exists and is not an earlier bundle/],
      [['hard.tar.xz'], /hard\.tar\.xz exists and is not an earlier bundle/]] as const) {
      const r = spawnSync('bash', [sh, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      assert.is(r.status, 2, `${args.join(' ')}: exit 2`);
      assert.match(r.stderr, why);
    }
    assert.is(readFileSync(join(dir, 'input.txt'), 'utf8'), 'keep me');
    assert.is(readFileSync(join(dir, 'mine.tar.xz'), 'utf8'), 'not a bundle');
    assert.equal(readdirSync(dir).sort(), ['hard.tar.xz', 'input.txt', 'mine.tar.xz']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('gpu-bundle refuses a stage directory that is not an earlier stage, and leaves it as it was', () => {
  const dir = join(TMP, 'mine');
  mkdirSync(dir);
  writeFileSync(join(dir, 'notes.txt'), 'keep me');
  const r = run(join(BENCH, 'gpu-bundle.js'), [dir]);
  assert.is(r.code, 2, 'exit 2');
  assert.match(r.err, /not an earlier bundle's stage/);
  assert.equal(readdirSync(dir), ['notes.txt'], 'nothing removed or added');
  assert.is(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'keep me');
  // a manifest someone else wrote is not a mark of an earlier stage
  writeFileSync(join(dir, 'MANIFEST.txt'), 'a list of my things\n');
  assert.is(run(join(BENCH, 'gpu-bundle.js'), [dir]).code, 2, 'a foreign MANIFEST.txt: exit 2');
  assert.equal(readdirSync(dir).sort(), ['MANIFEST.txt', 'notes.txt']);
  const file = join(TMP, 'a-file');
  writeFileSync(file, 'x');
  assert.is(run(join(BENCH, 'gpu-bundle.js'), [file]).code, 2, 'a file: exit 2');
  assert.is(readFileSync(file, 'utf8'), 'x');
});

test('make-fla-shape refuses a folder holding a model it did not write; --help exits 0', () => {
  const script = join(ROOT, 'bench', 'make-fla-shape.mjs');
  const dir = join(TMP, 'model');
  mkdirSync(dir);
  const config = JSON.stringify({ model_type: 'retnet', hidden_size: 2048 });
  writeFileSync(join(dir, 'config.json'), config);
  writeFileSync(join(dir, 'model.safetensors'), 'weights');
  const r = run(script, [dir, '--layers', '1']);
  assert.is(r.code, 2, 'exit 2');
  assert.match(r.err, /holds a model .* this script did not write/);
  assert.is(readFileSync(join(dir, 'config.json'), 'utf8'), config, 'config.json untouched');
  assert.is(readFileSync(join(dir, 'model.safetensors'), 'utf8'), 'weights', 'weights untouched');
  const h = run(script, ['--help']);
  assert.is(h.code, 0);
  assert.match(h.out, /usage: /);
});

test.after(() => rmSync(TMP, { recursive: true, force: true }));

test.run();
