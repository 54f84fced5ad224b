// Stage a self-contained bundle that runs one of the device checks on a Linux x86-64 machine
// with no Node and no network: bench/gpu-check.sh (a GPU and its driver), or with --cpu
// bench/cpu-check.sh (precision 'bf16' on that machine's CPU, e.g. an Intel Xeon with AMX):
//   bin/node                 this Node binary (process.execPath)
//   lib/                     (filled by bench/gpu-bundle.sh: Debian's libvulkan.so.1 for the GPU check;
//                            oneDNN, OpenBLAS and their runtime libraries for the CPU check)
//   app/                     package.json, dist/ (no .map/.d.ts/.wat), the check's script, the golden fixtures,
//                            node_modules/ with only the packages the check loads
//   run-gpu-check.sh | run-cpu-check.sh   the one command
// Packages: the bare `import` statements of dist/src, dist/workers and the check's tests, plus the
// engines' own: for the GPU check the WebGPU engine's (`@tensorflow/tfjs`, `webgpu`,
// `@tensorflow/tfjs-backend-webgpu`), for the CPU check koffi (which the native engines load with
// require) and uvu (the test runner); with their dependencies. TensorFlow.js packages are copied as
// package.json + the CommonJS `main` file Node loads (and what that file requires); `webgpu` as its
// index.js + the linux-x64 dawn.node only; koffi's platform packages for linux-x64 only.
//   node dist/bench/gpu-bundle.js [--cpu] STAGE_DIR      (called by bench/gpu-bundle.sh)
import { builtinModules } from 'node:module';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { badArg, benchArgs } from './args.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MANIFEST_HEAD = 'retnet device-check bundle, staged';
const spec = { options: { cpu: { type: 'boolean' as const, default: false } }, positionals: 'STAGE_DIR' };
const { values, positionals } = benchArgs(spec);
const CHECK = values.cpu ? 'cpu' : 'gpu';
if (positionals.length !== 1) badArg(spec, `one STAGE_DIR expected (got ${positionals.length})`);
const stage = positionals[0]!;
// The stage is emptied first: only when it is new, empty, or a bundle this script staged before (its
// MANIFEST.txt), never a directory given by mistake (the project, a home directory).
if (existsSync(stage)) {
  const isDir = statSync(stage).isDirectory();
  const manifest = join(stage, 'MANIFEST.txt');
  const ours = isDir && existsSync(manifest) && readFileSync(manifest, 'utf8').startsWith(MANIFEST_HEAD);
  if (!isDir || (!ours && readdirSync(stage).length > 0)) {
    badArg(spec, `${stage} exists and is not an earlier bundle's stage (no MANIFEST.txt of one): give a new or empty directory`);
  }
}
const app = join(stage, 'app');

/** Packages loaded only on paths the check does not take (tfjs-core's fetch; comments in bundles). */
const NOT_LOADED = new Set(['node-fetch', 'xor4096']);
/** Packages loaded by dynamic import or require (the WebGPU engine: workers/tfjs-worker.ts; koffi:
 *  src/runtime/native-lib.ts; the tests' tokenizer data: test/helpers/mistral-tokenizer-json.ts), the
 *  CLI's progress bar, and the CPU check's test runner. */
const ENGINE_PACKAGES = CHECK === 'gpu' ? ['@tensorflow/tfjs', 'webgpu', '@tensorflow/tfjs-backend-webgpu', 'cli-progress']
  : ['koffi', 'cli-progress', 'uvu', 'mistral-tokenizer-js'];
/** The check's tests and what they import (their packages go in). */
const CHECK_TESTS = CHECK === 'gpu'
  ? ['dist/test/webgpu-golden.test.js', 'dist/test/helpers.js', 'dist/test/tfjs-helpers.js', 'dist/test/helpers/skip.js']
  : ['kernels-bf16', 'dnnl', 'precision', 'fla-bf16'].map((t) => `dist/test/${t}.test.js`)
    .concat(readdirSync(join(ROOT, 'dist', 'test', 'helpers')).filter((f) => f.endsWith('.js')).map((f) => `dist/test/helpers/${f}`), ['dist/test/helpers.js', 'dist/test/run.js']);
const FIXTURES = ['retnet-tiny', 'retnet-small', 'retnet-seedlike', 'retnet-long'];
/** The check's script, and for the CPU check the 1.3B shape's generator and the fla fixtures. */
const CHECK_FILES = CHECK === 'gpu' ? ['bench/gpu-check.sh'] : ['bench/cpu-check.sh', 'bench/make-fla-shape.mjs'];
const FIXTURE_DIRS = CHECK === 'gpu' ? [] : ['test/fixtures/fla'];

const builtins = new Set(builtinModules);
const isBare = (s: string) => !s.startsWith('.') && !s.startsWith('/') && !s.startsWith('node:') && !builtins.has(s.split('/')[0]!);
const pkgName = (spec: string) => spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;

function walk(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, out); else out.push(p);
  }
  return out;
}

function copy(from: string, to: string): number {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  return statSync(from).size;
}

/** Static imports (`import … from 'x'`, `export … from 'x'`, `import 'x'`) of a compiled file. */
function staticImports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  return [...src.matchAll(/^\s*(?:import|export)\s+(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!).filter(isBare);
}

/** Node's lookup of a package from a directory inside the repository: nearest node_modules upward. */
function resolvePkg(name: string, fromDir: string): string | undefined {
  for (let d = fromDir; ; d = dirname(d)) {
    const p = join(d, 'node_modules', name, 'package.json');
    if (existsSync(p)) return dirname(p);
    if (d === ROOT || dirname(d) === d) return undefined;
  }
}

const done = new Map<string, { name: string; version: string; bytes: number }>();
const leftOut: string[] = [];

/** Copy one package (and its dependencies) into the bundle at the same relative path. */
function addPackage(name: string, fromDir: string, why: string): void {
  const dir = resolvePkg(name, fromDir);
  if (!dir) { leftOut.push(`${name} (needed by ${why}; not installed)`); return; }
  const rel = relative(ROOT, dir);
  if (done.has(rel)) return;
  const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version: string; main?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  const entry = { name, version: pj.version, bytes: 0 };
  done.set(rel, entry);
  const put = (f: string) => { entry.bytes += copy(join(dir, f), join(app, rel, f)); };
  put('package.json');
  for (const f of readdirSync(dir)) if (/^licen[cs]e/i.test(f)) put(f);
  let deps: string[];
  if (name.startsWith('@tensorflow/')) {
    // package.json's main (CommonJS, one file) is what Node loads for these packages
    const main = pj.main ?? 'index.js';
    put(main);
    deps = [...readFileSync(join(dir, main), 'utf8').matchAll(/require\(['"]([^'"]+)['"]\)/g)].map((m) => m[1]!).filter(isBare).map(pkgName);
  } else if (name.startsWith('@koromix/koffi-')) {
    // koffi's prebuilt addon: the glibc linux-x64 build only
    for (const f of walk(dir)) {
      const r = relative(dir, f);
      if (r.startsWith('linux_x64/') || r === 'index.js') put(r);
    }
    deps = [];
  } else if (name === 'webgpu') {
    put('index.js');
    put(join('dist', 'linux-x64', 'dawn.node'));
    deps = []; // index.js loads only Node built-ins and dawn.node
  } else {
    for (const f of walk(dir)) {
      const r = relative(dir, f);
      if (r.split('/').includes('node_modules') || /\.(map|d\.ts|d\.mts|d\.cts|md|markdown)$/i.test(r) || /^(test|tests|docs|\.github)\//.test(r)) continue;
      put(r);
    }
    deps = [...Object.keys(pj.dependencies ?? {}), ...Object.keys(pj.optionalDependencies ?? {}).filter((d) => resolvePkg(d, dir))];
  }
  for (const d of new Set(deps)) {
    if (NOT_LOADED.has(d) || d === name) continue;
    addPackage(d, dir, name);
  }
}

rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, 'bin'), { recursive: true });
mkdirSync(join(stage, 'lib'), { recursive: true });

// the project
let projectBytes = copy(join(ROOT, 'package.json'), join(app, 'package.json'));
const distFiles = walk(join(ROOT, 'dist')).filter((f) => !/\.(map|d\.ts|wat|tsbuildinfo|tar\.xz)$/.test(f));
for (const f of distFiles) projectBytes += copy(f, join(app, relative(ROOT, f)));
for (const f of CHECK_FILES) projectBytes += copy(join(ROOT, f), join(app, f));
for (const d of FIXTURE_DIRS) for (const f of walk(join(ROOT, d))) projectBytes += copy(f, join(app, relative(ROOT, f)));
for (const n of FIXTURES) for (const s of ['.safetensors', '.cases.safetensors']) {
  projectBytes += copy(join(ROOT, 'test', 'fixtures', n + s), join(app, 'test', 'fixtures', n + s));
}

// the packages
const roots = new Set<string>();
for (const f of [...walk(join(ROOT, 'dist', 'src')), ...walk(join(ROOT, 'dist', 'workers')), ...CHECK_TESTS.map((g) => join(ROOT, g))]) {
  if (f.endsWith('.js')) for (const s of staticImports(f)) roots.add(pkgName(s));
}
for (const p of ENGINE_PACKAGES) roots.add(p);
for (const p of [...roots].sort()) addPackage(p, ROOT, 'dist/');

// Node
const nodeBytes = copy(process.execPath, join(stage, 'bin', 'node'));
chmodSync(join(stage, 'bin', 'node'), 0o755);

// the one command
const gpuRun = `#!/bin/sh
# Runs bench/gpu-check.sh from this bundle: its own Node, the system's Vulkan loader or the
# bundled one (lib/), the NVIDIA driver's Vulkan ICD when it is installed. Arguments and
# GPU_CHECK_* variables pass through (see app/bench/gpu-check.sh). Results: app/bench/results/.
HERE=$(cd "$(dirname "$0")" && pwd)
export PATH="$HERE/bin:$PATH" NODE="$HERE/bin/node"
# GPU_CHECK_BUNDLED_VULKAN=1 uses the bundled loader even where the system has one (to test it).
if { [ "\${GPU_CHECK_BUNDLED_VULKAN:-}" = 1 ] || ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libvulkan\\.so\\.1 '; } && [ -e "$HERE/lib/libvulkan.so.1" ]; then
  export LD_LIBRARY_PATH="$HERE/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "using the bundled Vulkan loader ($HERE/lib/libvulkan.so.1)"
fi
if [ -z "\${VK_DRIVER_FILES:-}\${VK_ICD_FILENAMES:-}" ]; then
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json /etc/vulkan/icd.d/nvidia_icd.x86_64.json; do
    if [ -f "$f" ]; then export VK_DRIVER_FILES="$f" VK_ICD_FILENAMES="$f"; echo "Vulkan driver: $f"; break; fi
  done
fi
cd "$HERE/app" && exec bash bench/gpu-check.sh "$@"
`;
const cpuRun = `#!/bin/sh
# Runs bench/cpu-check.sh from this bundle: its own Node, and the bundled oneDNN, OpenBLAS and
# their runtime libraries (lib/: Debian 12's, needing glibc 2.34 or later) ahead of the system's.
# Arguments and CPU_CHECK_* variables pass through (see app/bench/cpu-check.sh). Results:
# app/bench/results/cpu-check/.
HERE=$(cd "$(dirname "$0")" && pwd)
export PATH="$HERE/bin:$PATH" NODE="$HERE/bin/node"
export LD_LIBRARY_PATH="$HERE/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec bash "$HERE/app/bench/cpu-check.sh" "$@"
`;
const runName = `run-${CHECK}-check.sh`;
writeFileSync(join(stage, runName), CHECK === 'gpu' ? gpuRun : cpuRun);
chmodSync(join(stage, runName), 0o755);

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const pkgs = [...done.entries()].sort((a, b) => b[1].bytes - a[1].bytes);
const manifest = [
  `${MANIFEST_HEAD} ${new Date().toISOString()} from ${ROOT}`,
  `node ${process.version} (${process.platform}-${process.arch}): ${mib(nodeBytes)} MiB`,
  `check: ${CHECK}; project (dist, package.json, ${CHECK_FILES.join(', ')}, fixtures): ${mib(projectBytes)} MiB`,
  `packages (${pkgs.length}):`,
  ...pkgs.map(([rel, p]) => `  ${p.name}@${p.version}  ${mib(p.bytes)} MiB  (${rel})`),
  ...(leftOut.length ? ['left out:', ...leftOut.map((l) => `  ${l}`)] : []),
];
writeFileSync(join(stage, 'MANIFEST.txt'), manifest.join('\n') + '\n');
console.log(manifest.join('\n'));
if (leftOut.length) process.exitCode = 1;
