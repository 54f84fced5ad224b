// Issue #10 items 8 and 15: the design notes live in the repository and every
// citation of them resolves; the tarball holds a LICENSE, no .wat files and no
// source maps, and every relative import of a shipped file is shipped too;
// vega/vega-lite are optional peers (the drift plot says how to get them);
// require('retnet') works on the Node versions `engines` names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative } from 'node:path';
import { RetNetError } from '../src/index.js';
import { driftSvg, VEGA_PACKAGES } from '../src/cli/plot.js';
import { ROOT } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue; // e.g. bench/peers/ort's bench-only install
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|md|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

test('docs/architecture.md is in the repository and every citation of it (or of its old name docs/DESIGN.md) names a section it has', () => {
  const design = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
  const sections = new Set([...design.matchAll(/^## (\d+)\./gm)].map((m) => m[1]));
  assert.ok(sections.size >= 6, `sections found: ${[...sections].join(', ')}`);
  assert.ok(readFileSync(join(ROOT, 'docs', 'DESIGN.md'), 'utf8').includes('architecture.md'), 'docs/DESIGN.md points at architecture.md');
  const docs = readdirSync(join(ROOT, 'docs')).filter((n) => n.endsWith('.md')).map((n) => join(ROOT, 'docs', n));
  const files = [join(ROOT, 'README.md'), ...docs, ...['src', 'workers', 'assembly', 'test', 'bench'].flatMap((d) => sources(join(ROOT, d)))];
  let cites = 0;
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(\S*)(?:DESIGN|architecture)\.md\)?(?:\s*§\s*(\d+))?/g)) {
      if (f.endsWith('packaging.test.ts')) continue;
      cites++;
      const inDocs = f.startsWith(join(ROOT, 'docs') + '/');
      assert.ok(/(^|[[(`/])docs\/$/.test(m[1]) || m[1] === 'docs/' || (inDocs && /(^|[[(`])$/.test(m[1])),
        `${relative(ROOT, f)}: "${m[0]}" does not point at docs/architecture.md`);
      if (m[2]) assert.ok(sections.has(m[2]), `${relative(ROOT, f)}: cites §${m[2]}, which docs/architecture.md lacks`);
    }
  }
  assert.ok(cites > 5, `citations checked: ${cites}`);
  assert.not.match(design, /\/work\/|\]\(\.\.\//, 'no links outside the repository');
});

test('npm pack: LICENSE and docs in, no .wat or source maps, every relative import shipped', () => {
  const lic = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  assert.is(pkg.license, 'MIT');
  assert.match(lic, /^MIT License\n\nCopyright \(c\) 2026 retnet authors\n/);
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, `npm pack: ${r.stderr}`);
  const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
  const shipped = new Set(files);
  for (const need of ['LICENSE', 'README.md', 'docs/architecture.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js',
    'dist/workers/chunk-worker.js', 'dist/workers/tfjs-worker.js', 'dist/wasm/retnet.simd.wasm', 'dist/wasm/retnet.relaxed.wasm', 'src/assets/bytes-4x128.safetensors']) {
    assert.ok(shipped.has(need), `tarball lacks ${need}`);
  }
  assert.equal(files.filter((f) => /\.(wat|map)$/.test(f)), [], 'no .wat files or source maps');
  assert.equal(files.filter((f) => f.startsWith('docs/api/')), [], 'the generated API reference (npm run docs) is not shipped');
  for (const f of files.filter((p) => p.endsWith('.js'))) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    assert.not.match(text, /sourceMappingURL/, `${f}: points at a source map`);
    const specs = [...text.matchAll(/(?:from\s+|import\(\s*|new URL\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
    for (const s of specs) {
      const target = normalize(join(dirname(f), s));
      assert.ok(shipped.has(target), `${f} refers to ${s} (${target}), which is not in the tarball`);
    }
  }
});

test('vega and vega-lite: optional peers, pinned; the drift plot names them when absent', async () => {
  for (const [name, version] of Object.entries(VEGA_PACKAGES)) {
    assert.is(pkg.dependencies[name], undefined, `${name} not a dependency`);
    assert.is(pkg.peerDependencies[name], version, `${name} peer pinned`);
    assert.equal(pkg.peerDependenciesMeta[name], { optional: true }, `${name} optional`);
    assert.is(pkg.devDependencies[name], version, `${name} dev dependency for the tests`);
  }
  const row = { backend: 'wasm', precision: 'f32', stateDtype: 'float32', form: 'chunkwise', numChunks: 2, chunkSize: 8, target: 'output', maxAbsError: 1e-7, relMaxError: 1e-7, nmse: 1e-14, seconds: 0.1 } as never;
  const missing = async (name: string) => { throw Object.assign(new Error(`Cannot find package '${name}'`), { code: 'ERR_MODULE_NOT_FOUND' }); };
  try {
    await driftSvg([row], 16, missing);
    assert.unreachable('no error without vega');
  } catch (e) {
    assert.ok(e instanceof RetNetError && e.code === 'E_ENGINE', `E_ENGINE (got ${(e as Error).message})`);
    assert.match((e as Error).message, /^the drift plot \(drift\.svg\) needs the optional packages vega@5\.33\.1 vega-lite@5\.23\.0, which are not installed: npm install vega@5\.33\.1 vega-lite@5\.23\.0/);
  }
  const svg = await driftSvg([row], 16);
  assert.match(svg, /^<svg/, 'with vega installed the plot renders');
});

test("require('retnet') works on the Node versions engines names, and README says which", () => {
  assert.is(pkg.engines.node, '^20.19.0 || >=22.12.0');
  assert.ok(readme.includes('^20.19.0 || >=22.12.0'), 'README states the engines range');
  const [maj, min] = process.versions.node.split('.').map(Number);
  assert.ok((maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj > 22, `this Node (${process.versions.node}) is in the range the tests run on`);
  const dir = mkdtempSync(join(tmpdir(), 'retnet-require-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'retnet'), 'dir');
  const r = spawnSync(process.execPath, ['-e', "const r = require('retnet'); const m = r.RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8 }); console.log(typeof r.RetNet, typeof r.RetNetLM, String(m.dims.d))"],
    { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, `require failed: ${r.stderr}`);
  assert.is(r.stdout.trim(), 'function function 8');
  assert.ok(existsSync(join(dir, 'node_modules', 'retnet', 'package.json')));
});

test.run();
