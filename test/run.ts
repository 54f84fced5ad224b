// Test driver: runs every dist/test/**/*.test.js file with uvu, each in its own
// Node process (worker pools, RSS measurements and crash tests stay isolated),
// then prints one closing line `N passed, M failed` that CI reads.
//
//   node dist/test/run.js              all test files
//   node dist/test/run.js golden wasm  only files whose path contains a word
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const uvuBin = join(here, '..', '..', 'node_modules', 'uvu', 'bin.js');
const FILE_TIMEOUT_MS = Number(process.env.RETNET_TEST_TIMEOUT_MS ?? 15 * 60_000);

function listTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

interface FileResult { file: string; total: number; passed: number; ok: boolean; reason?: string; skipped: string[]; parts: string[] }

/** A test that cannot run here (a system part is missing outside CI) prints one
 *  line `SKIPPED: <test name> — <reason>` (see test/helpers/skip.ts) and
 *  returns without asserting; the runner counts and lists it by name. uvu writes
 *  a mark per finished test (`• ` passed, `✘ ` failed) with no newline, so the
 *  line of a test after the first starts with the marks of those before it. */
const SKIP_LINE = /^(?:[•✘] ?)*SKIPPED: (.+)$/gm;
/** A part of a test that asserts its other parts (test/helpers/skip.ts, canRunPart): listed, not subtracted. */
const SKIP_PART_LINE = /^(?:[•✘] ?)*SKIPPED PART: (.+)$/gm;

function runFile(file: string): Promise<FileResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [uvuBin, dirname(file), '^' + escapeRe(basename(file)) + '$'], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    const onData = (chunk: Buffer) => { text += chunk.toString(); process.stdout.write(chunk); };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c: Buffer) => { text += c.toString(); process.stderr.write(c); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
      const skipped = [...plain.matchAll(SKIP_LINE)].map((m) => m[1]!);
      const parts = [...plain.matchAll(SKIP_PART_LINE)].map((m) => m[1]!);
      const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
      if (!Number.isFinite(total) || !Number.isFinite(passed)) {
        resolve({ file, total: 1, passed: 0, ok: false, reason: `no uvu summary (exit ${code ?? signal})`, skipped, parts });
        return;
      }
      const ok = code === 0 && passed === total;
      resolve({ file, total, passed, ok, reason: ok ? undefined : `exit ${code ?? signal}`, skipped, parts });
    });
  });
}

function basename(p: string): string { return p.slice(dirname(p).length + 1); }
function escapeRe(s: string): string { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

const filters = process.argv.slice(2);
const files = listTests(here).filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)));
let passed = 0, failed = 0;
const bad: FileResult[] = [];
const skippedNames: string[] = [], partNames: string[] = [];
for (const f of files) {
  console.log(`\n# ${relative(process.cwd(), f)}`);
  const r = await runFile(f);
  // a skipped test returned without asserting: uvu counted it as passed
  const skips = Math.min(r.skipped.length, r.passed);
  skippedNames.push(...r.skipped.map((n) => `${relative(process.cwd(), r.file)}: ${n}`));
  partNames.push(...r.parts.map((n) => `${relative(process.cwd(), r.file)}: ${n}`));
  passed += r.passed - skips;
  failed += r.total - r.passed;
  if (!r.ok) {
    bad.push(r);
    if (r.total === r.passed) failed += 1; // a file that crashed after its tests counts once
  }
}
if (files.length === 0) { console.log('no test files found'); failed += 1; }
for (const r of bad) console.log(`FAILED ${relative(process.cwd(), r.file)}: ${r.reason}`);
for (const n of skippedNames) console.log(`SKIPPED ${n}`);
for (const n of partNames) console.log(`SKIPPED PART ${n}`);
console.log(`\n${passed} passed, ${failed} failed` + (skippedNames.length ? `, ${skippedNames.length} skipped` : '') +
  (partNames.length ? `, ${partNames.length} parts skipped` : ''));
process.exitCode = failed === 0 ? 0 : 1;
