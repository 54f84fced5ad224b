// What `import('retnet')` costs a library user, cold: each measurement is a
// fresh Node process that imports the package entry (dist/src/index.js) once.
//   - milliseconds for the import() itself, and the process RSS after it
//     (median of --runs processes; an empty process's RSS is printed too);
//   - the modules it loaded (one extra process with a module.register load hook
//     that reports every URL): how many files, which npm packages, and whether
//     any of the corpus/queue layer's (bullmq, ioredis, hyparquet, fzstd,
//     cli-progress) is among them. ESM files are seen by the hook, CommonJS
//     files through the require cache.
// Prints one JSON object; the figures are only as quiet as the machine (the
// load average is part of the output).
//
//   npx tsc -p tsconfig.json && node dist/bench/import-cost.js [--runs 9] [--entry PATH]
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchArgs, numArg } from './args.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({ options: { runs: { type: 'string', default: '9' }, entry: { type: 'string' } } });
const runs = numArg('runs', values.runs);
const entry = pathToFileURL(values.entry ?? join(ROOT, 'dist', 'src', 'index.js')).href;

/** The corpus/queue layer's packages: none of them may load with the entry. */
const HEAVY = ['bullmq', 'ioredis', 'hyparquet', 'hyparquet-compressors', 'fzstd', 'cli-progress'];

const timed = `
const rss0 = process.memoryUsage().rss;
const t0 = performance.now();
await import(${JSON.stringify(entry)});
const ms = performance.now() - t0;
console.log(JSON.stringify({ ms, rss0, rss: process.memoryUsage().rss }));`;

const hook = `
let port;
export function initialize(data) { port = data.port; }
export async function load(url, context, next) { port.postMessage(url); return next(url, context); }`;

const listing = `
import { createRequire, register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
const { port1, port2 } = new MessageChannel();
const urls = new Set();
port1.on('message', (u) => urls.add(u));
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), { data: { port: port2 }, transferList: [port2] });
await import(${JSON.stringify(entry)});
await new Promise((r) => setTimeout(r, 200));
port1.close();
// CommonJS files (loaded by require inside packages) are not seen by the ESM hook: the require cache has them
for (const f of Object.keys(createRequire(import.meta.url).cache)) urls.add(pathToFileURL(f).href);
console.log(JSON.stringify([...urls]));`;

function node(script: string): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!;
}

/** npm package names of file URLs under node_modules (scoped names whole). */
function packagesOf(urls: string[]): string[] {
  const names = new Set<string>();
  for (const u of urls) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
    if (m) names.add(m[1]);
  }
  return [...names].sort();
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const samples = Array.from({ length: runs }, () => JSON.parse(node(timed)) as { ms: number; rss0: number; rss: number });
const urls = JSON.parse(node(listing)) as string[];
const packages = packagesOf(urls);
console.log(JSON.stringify({
  entry, node: process.version, cpu: `${cpus().length}× ${cpus()[0]?.model}`, loadavg: loadavg().map((x) => +x.toFixed(2)), runs,
  importMs: { median: +median(samples.map((s) => s.ms)).toFixed(1), min: +Math.min(...samples.map((s) => s.ms)).toFixed(1) },
  rssMiB: { beforeImport: +(median(samples.map((s) => s.rss0)) / 2 ** 20).toFixed(1), afterImport: +(median(samples.map((s) => s.rss)) / 2 ** 20).toFixed(1) },
  modules: urls.filter((u) => u.startsWith('file:')).length,
  packages, heavyLoaded: HEAVY.filter((p) => packages.includes(p)),
}, null, 2));
