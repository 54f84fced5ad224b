// The benchmark scripts' arguments and outputs, and the CLI's outputs made read-only, where a read-only review
// found them wrong: numbers parsed with Number() (NaN results written with exit 0, or a crash after the run),
// an unknown --backend as a stack trace, --out resolved in two places (lm.js checked ./README.md and wrote the
// checkout's README.md), any JSON file taken as a result file (--out package.json replaced it), a read-only
// earlier output discovered only after the work (drift then left a CSV that did not match its JSON), and
// drift reading RETNET_PRECISION. Each case failed before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';
import { canRun } from './helpers/skip.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-bench-scripts-'));
const script = (name: string, args: string[], cwd = tmp, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [join(ROOT, 'dist', 'bench', `${name}.js`), ...args], { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

test('benchmark scripts refuse bad numbers and an unknown backend before any work, exit 2 naming the option (before: NaN results with exit 0, or a stack trace)', () => {
  for (const [name, args, re] of [
    ['forward', ['--quick', '--max-length', '2048', '--out', join(tmp, 'f.json')], /--max-length must be an integer ≥ 4096 \(got "2048"\)/],
    ['forward', ['--quick', '--max-length', '1e3x', '--out', join(tmp, 'f.json')], /--max-length must be an integer/],
    ['forward', ['--quick', '--backend', 'bogus', '--out', join(tmp, 'f.json')], /--backend must be wasm, js or tfjs/],
    ['wasm-limit', ['--quick', '--repeat', '0', '--out', join(tmp, 'w.json')], /--repeat must be an integer ≥ 1 \(got "0"\)/],
    ['lm', ['--bytes', 'abc', '--out', join(tmp, 'l.json')], /--bytes must be an integer ≥ 1 \(got "abc"\)/],
    ['decode', ['--dir', tmp, '--tokens', '0x4'], /--tokens must be an integer/],
    ['corpus', ['--bytes', 'NaN'], /--bytes must be an integer/],
  ] as const) {
    const r = script(name, [...args]);
    assert.is(r.status, 2, `${name} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, name);
    assert.not.match(r.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
  assert.not.ok(existsSync(join(tmp, 'f.json')) || existsSync(join(tmp, 'w.json')) || existsSync(join(tmp, 'l.json')), 'nothing written');
});

test('--out: a JSON file that is not a benchmark result (package.json) is refused; lm.js writes where it checked, relative to the current folder', () => {
  const pkg = join(tmp, 'package.json');
  writeFileSync(pkg, JSON.stringify({ name: 'x', version: '1.0.0' }));
  const r = script('lm', ['--bytes', '4096', '--decode', '8', '--out', pkg]);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /is not a benchmark result file/);
  assert.equal(JSON.parse(readFileSync(pkg, 'utf8')), { name: 'x', version: '1.0.0' }, 'untouched');
  const cwd = join(tmp, 'cwd');
  mkdirSync(cwd);
  const w = script('lm', ['--bytes', '4096', '--decode', '8', '--out', 'lm-out.json'], cwd);
  assert.is(w.status, 0, w.stderr);
  assert.ok(existsSync(join(cwd, 'lm-out.json')), 'written in the current folder');
  assert.not.ok(existsSync(join(ROOT, 'lm-out.json')), 'not in the checkout');
  // and the file it wrote is a result file: a second run may replace it
  assert.is(script('lm', ['--bytes', '4096', '--decode', '8', '--out', 'lm-out.json'], cwd).status, 0);
});

test('drift ignores RETNET_PRECISION (every row names its precision; before: a bad value failed the study after loading)', () => {
  const r = spawnSync(process.execPath, [MAIN, 'drift', '--length', '16', '--backends', 'wasm', '--precisions', 'f32', '--out-dir', join(tmp, 'dp'), '--no-plot'],
    { cwd: tmp, encoding: 'utf8', timeout: 120_000, env: { ...process.env, RETNET_PRECISION: 'bogus' } });
  assert.is(r.status, 0, r.stderr);
});

test('a read-only earlier output is refused before any work, exit 2 (before: the work ran, then EACCES; drift left a CSV that no longer matched its JSON)', () => {
  const runuser = spawnSync('sh', ['-c', 'command -v runuser'], { encoding: 'utf8' }).stdout.trim();
  const name = 'read-only outputs, as another user (runuser)';
  if (!canRun(name, runuser && process.getuid?.() === 0 ? null : 'needs root and runuser, to run the CLI as a user who may not write the file')) return;
  const dir = join(tmp, 'ro');
  chmodSync(tmp, 0o755); // (mkdtemp makes it 0700: the other user must pass through)
  mkdirSync(dir, { mode: 0o777 });
  chmodSync(dir, 0o777);
  const asNobody = (args: string[]) => spawnSync(runuser, ['-u', 'nobody', '--', process.execPath, MAIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  const first = asNobody(['drift', '--length', '16', '--backends', 'js', '--out-dir', 'dd', '--no-plot']);
  assert.is(first.status, 0, first.stderr);
  const json = join(dir, 'dd', 'drift.json'), csv = join(dir, 'dd', 'drift.csv');
  const before = [readFileSync(json, 'utf8'), readFileSync(csv, 'utf8')];
  chmodSync(json, 0o444);
  const again = asNobody(['drift', '--length', '16', '--backends', 'js', '--out-dir', 'dd', '--no-plot', '--seed', '7']);
  assert.is(again.status, 2, again.stderr);
  assert.match(again.stderr, /drift\.json exists and is read-only; refusing to replace it/);
  assert.equal([readFileSync(json, 'utf8'), readFileSync(csv, 'utf8')], before, 'both files as they were');
  const benchArgs = ['bench', '--lengths', '32', '--chunks', '2', '--layers', '1', '--dim', '16', '--heads', '2', '--backend', 'js', '--json', 'b.json'];
  const b0 = asNobody(benchArgs); // an earlier output of its own
  assert.is(b0.status, 0, b0.stderr);
  chmodSync(join(dir, 'b.json'), 0o444);
  const b = asNobody(benchArgs);
  assert.is(b.status, 2, b.stderr);
  assert.match(b.stderr, /b\.json exists and is read-only/);
});

test.run();
