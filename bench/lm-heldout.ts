// Byte-LM checks that need data outside the repository, run by hand:
//  1. the model README's held-out bits/byte: every 20th file (offset 0) of the
//     sorted *.py files under a Python 3.11 standard library (default
//     /usr/lib/python3.11; directories named test, tests, site-packages and
//     dist-packages excluded), scored file by file, chunk 256;
//  2. peak RSS of scoring a 512 KiB and a 4 MiB file (child processes), to show
//     memory is flat in the file length.
//   npm run build && node dist/bench/lm-heldout.js [--lib DIR] [--skip-rss]
// Writes bench/results/lm-heldout.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { RetNetLM } from '../src/index.js';
import { benchArgs } from './args.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({ options: { lib: { type: 'string', default: '/usr/lib/python3.11' }, 'skip-rss': { type: 'boolean' } } });
const lib = values.lib!;
const EXCLUDED = new Set(['test', 'tests', 'site-packages', 'dist-packages']);

function pyFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) { if (!EXCLUDED.has(name)) pyFiles(p, out); } else if (name.endsWith('.py')) out.push(p);
  }
  return out;
}

// Python sorts full paths by code point; so does Array.sort on ASCII paths.
const all = pyFiles(lib).sort();
const held = all.filter((_, i) => i % 20 === 0);
const bytes = held.map((f) => new Uint8Array(readFileSync(f)));
const total = bytes.reduce((a, b) => a + b.length, 0);
console.log(`held-out: ${held.length} of ${all.length} files under ${lib}, ${total} bytes (the model README: 32 files, 367,821 bytes)`);

const lm = await RetNetLM.load();
const t0 = performance.now();
const perFile = [];
let bits = 0, scored = 0;
for (let i = 0; i < held.length; i++) {
  const r = await lm.score(bytes[i], { chunkSize: 256 });
  bits += r.bits; scored += r.bytes - 1;
  perFile.push({ file: relative(lib, held[i]), bytes: r.bytes, bitsPerByte: r.bitsPerByte });
}
const sec = (performance.now() - t0) / 1000;
await lm.close();
const overall = bits / scored;
for (const f of perFile) if (['functools.py', 'pprint.py', 'ssl.py', 'encodings/cp1125.py'].includes(f.file)) console.log(`  ${f.file}: ${f.bitsPerByte.toFixed(3)} bits/byte`);
console.log(`overall: ${overall.toFixed(3)} bits/byte (Σ bits / Σ scored bytes; the README: 1.824), ${Math.round(total / sec)} bytes/s`);

// Peak RSS of scoring one big file in a child process.
function rss(nBytes: number): { bytes: number; maxRSSMiB: number; seconds: number; bitsPerByte: number } {
  const dir = mkdtempSync(join(tmpdir(), 'retnet-lm-rss-'));
  const file = join(dir, 'big.py');
  const buf = Buffer.alloc(nBytes);
  let o = 0;
  while (o < nBytes) for (const b of bytes) { if (o >= nBytes) break; const k = Math.min(b.length, nBytes - o); buf.set(b.subarray(0, k), o); o += k; }
  writeFileSync(file, buf);
  const code = `
    import { RetNetLM } from ${JSON.stringify(join(ROOT, 'dist/src/index.js'))};
    import { readFileSync } from 'node:fs';
    const lm = await RetNetLM.load();
    const t0 = performance.now();
    const r = await lm.score(new Uint8Array(readFileSync(${JSON.stringify(file)})), { chunkSize: 256 });
    const s = (performance.now() - t0) / 1000;
    await lm.close();
    console.log(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS * 1024, s, bpb: r.bitsPerByte }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { bytes: nBytes, maxRSSMiB: j.maxRSS / 2 ** 20, seconds: j.s, bitsPerByte: j.bpb };
}
const rssRuns = values['skip-rss'] ? [] : [rss(512 * 1024), rss(4 * 1024 * 1024)];
for (const r of rssRuns) console.log(`score ${r.bytes} bytes: peak RSS ${r.maxRSSMiB.toFixed(1)} MiB (file bytes included), ${r.seconds.toFixed(1)} s, ${Math.round(r.bytes / r.seconds)} bytes/s`);

mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'lm-heldout.json'), JSON.stringify({ lib, files: held.length, bytes: total, overallBitsPerByte: overall, perFile, rss: rssRuns, node: process.version, date: new Date().toISOString() }, null, 2) + '\n');
console.log('wrote bench/results/lm-heldout.json');
