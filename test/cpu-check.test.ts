// bench/cpu-check.sh (the CPU check of precision 'bf16' that the device bundle runs, bench/gpu-bundle.sh
// --cpu): its cheap steps here, its logs in a temporary folder. The `cpu` step reports what oneDNN's
// bf16 matmul dispatches to, and says AMX exactly when the ISA it names is an AMX one and this CPU has
// AMX-BF16 (oneDNN 2.6 dispatches to AMX where the CPU and kernel allow it); a oneDNN that does not
// load, or a scoring step without the 1.3B shape, fails the check (exit 1) with the reason; an unknown step is
// a usage error (exit 2).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dnnlBf16Missing, dnnlMissing } from '../src/runtime/dnnl.js';
import { canRun } from './helpers/skip.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const SCRIPT = join(ROOT, 'bench', 'cpu-check.sh');

function check(env: Record<string, string>): { code: number; out: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'retnet-cpu-check-'));
  const r = spawnSync('bash', [SCRIPT], {
    cwd: ROOT, encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, NODE: process.execPath, CPU_CHECK_LOG_DIR: dir, ...env },
  });
  return { code: r.status ?? -1, out: r.stdout + r.stderr, dir };
}

test('cpu-check: the cpu step names oneDNN\'s bf16 dispatch, and AMX exactly where this CPU has it', () => {
  if (!canRun('cpu-check cpu step', dnnlMissing())) return;
  const r = check({ CPU_CHECK_STEPS: 'cpu' });
  try {
    assert.is(r.code, 0, r.out);
    const noBf16 = dnnlBf16Missing();
    // a CPU where oneDNN has no bf16 matmul (below AVX-512 for oneDNN 2.6) says so, with no AMX
    const isa = noBf16 ? (r.out.includes(`bf16 matmul, 256 x 5632 x 2048: none (${noBf16})`) ? 'none' : undefined)
      : /^bf16 matmul, 256 x 5632 x 2048: (\S+)$/m.exec(r.out)?.[1];
    assert.ok(isa && /^(brg|gemm|ref|none$)/.test(isa), `an implementation named: ${r.out}`);
    const amxSaid = /^AMX in the bf16 dispatch: (yes|no)$/m.exec(r.out)?.[1];
    const cpuHasAmx = /\bamx_bf16\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
    assert.is(amxSaid, /amx/.test(isa!) ? 'yes' : 'no', 'the AMX line follows the implementation named');
    if (!cpuHasAmx) assert.is(amxSaid, 'no', 'no AMX claimed on a CPU without amx_bf16');
    assert.match(r.out, /^ok {4}cpu \(\d+ s\)$/m);
    assert.equal(readdirSync(r.dir), ['cpu.log'], 'the step\'s log in CPU_CHECK_LOG_DIR, nothing else');
  } finally { rmSync(r.dir, { recursive: true, force: true }); }
});

test('cpu-check: a oneDNN that does not load, or scoring without the 1.3B shape, fails the check with why', () => {
  const a = check({ CPU_CHECK_STEPS: 'cpu', RETNET_DNNL: '/nonexistent/libdnnl.so.2' });
  try {
    assert.is(a.code, 1, a.out);
    assert.match(a.out, /^FAIL {2}cpu \(exit 1, \d+ s\): .*oneDNN did not load/m);
  } finally { rmSync(a.dir, { recursive: true, force: true }); }
  const b = check({ CPU_CHECK_STEPS: 'fla decode' });
  try {
    assert.is(b.code, 1, b.out);
    assert.match(b.out, /^FAIL {2}fla: no 1\.3B shape/m);
    assert.match(b.out, /^FAIL {2}decode: no 1\.3B shape/m);
  } finally { rmSync(b.dir, { recursive: true, force: true }); }
});

test('cpu-check: an unknown step is a usage error (exit 2) naming it and the steps, before any work', () => {
  const r = check({ CPU_CHECK_STEPS: 'cpu fal' });
  try {
    assert.is(r.code, 2, r.out);
    assert.match(r.out, /unknown step 'fal' \(the steps: cpu tests shape fla decode seed\)/);
    assert.equal(readdirSync(r.dir), [], 'nothing written');
  } finally { rmSync(r.dir, { recursive: true, force: true }); }
});

test('cpu-check: a log folder holding other files (or a file given as the folder) is refused (exit 2), left as it was', () => {
  const dir = mkdtempSync(join(tmpdir(), 'retnet-cpu-check-mine-'));
  try {
    writeFileSync(join(dir, 'notes.txt'), 'keep me');
    const r = spawnSync('bash', [SCRIPT], { cwd: ROOT, encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, NODE: process.execPath, CPU_CHECK_LOG_DIR: dir, CPU_CHECK_STEPS: 'cpu' } });
    assert.is(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /holds notes\.txt, which this check did not write/);
    assert.equal(readdirSync(dir), ['notes.txt']);
    assert.is(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'keep me');
    const f = spawnSync('bash', [SCRIPT], { cwd: ROOT, encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, NODE: process.execPath, CPU_CHECK_LOG_DIR: join(dir, 'notes.txt'), CPU_CHECK_STEPS: 'cpu' } });
    assert.is(f.status, 2);
    assert.match(f.stderr, /exists and is not a folder/);
    assert.is(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'keep me');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
