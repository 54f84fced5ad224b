#!/usr/bin/env node
// `npm run build` (and `npm start`, `npm test`, the bench scripts, and
// `prepare` on a git install): build only what changed since the last build.
//   - WASM: each asconfig.json target is compiled by asc when its output
//     (dist/wasm/*.wasm) is missing or older than assembly/**/*.ts,
//     asconfig.json or the installed assemblyscript;
//   - TypeScript: tsc runs when dist/.tsc-stamp is missing or older than any
//     .ts file of the tsconfig's folders, tsconfig.json or package.json.
// `--force` rebuilds both. One line per step; asc's warning AS112 ("Exchange
// of 'v128' values is not supported by all embeddings": our kernels pass v128
// between their own functions, never to the host) is switched off in
// asconfig.json, so a build prints no wall of warnings.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const bin = (name) => join(ROOT, 'node_modules', '.bin', name);

/** Newest mtime (ms) of the files under `dir` whose names match `re` (0 when none). */
function newest(dir, re) {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p, re));
    else if (re.test(e.name)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

function run(label, cmd, args) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.error) { console.error(`build: ${label}: ${r.error.message}`); process.exit(1); }
  if (r.status !== 0) { console.error(`build: ${label} failed (exit ${r.status ?? r.signal})`); process.exit(r.status ?? 1); }
  console.log(`build: ${label} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------- WASM
const asconfig = JSON.parse(readFileSync(join(ROOT, 'asconfig.json'), 'utf8'));
const wasmInputs = Math.max(newest(join(ROOT, 'assembly'), /\.ts$/), mtime(join(ROOT, 'asconfig.json')),
  mtime(join(ROOT, 'node_modules', 'assemblyscript', 'package.json')));
const stale = Object.entries(asconfig.targets).filter(([, t]) => force || mtime(join(ROOT, t.outFile)) < wasmInputs);
for (const [name] of stale) run(`asc --target ${name}`, bin('asc'), ['assembly/index.ts', '--config', 'asconfig.json', '--target', name]);
if (stale.length === 0) console.log('build: wasm up to date');

// ---------------------------------------------------------------- TypeScript
const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8'));
const dirs = [...new Set(tsconfig.include.map((g) => g.split('/')[0]))];
const stamp = join(ROOT, tsconfig.compilerOptions.outDir ?? 'dist', '.tsc-stamp');
const tsInputs = Math.max(...dirs.map((d) => newest(join(ROOT, d), /\.ts$/)), mtime(join(ROOT, 'tsconfig.json')), mtime(join(ROOT, 'package.json')));
if (force || mtime(stamp) < tsInputs) {
  const started = Date.now();
  run('tsc', bin('tsc'), ['-p', 'tsconfig.json']);
  mkdirSync(dirname(stamp), { recursive: true });
  writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
  // the stamp's time is when tsc started: a file saved during the build is newer, so the next build runs tsc again
  utimesSync(stamp, new Date(started), new Date(started));
} else console.log('build: typescript up to date');
