// Issue #10 item 7: Node started with flags a Worker refuses (--max-old-space-size,
// --expose-gc, --stack-size, --title) still runs the tfjs worker and the
// Piscina chunk workers: each backend is run in a child process with the flags.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './helpers.js';
import { canRunPart } from './helpers/skip.js';

const dir = mkdtempSync(join(tmpdir(), 'retnet-flags-'));
const script = join(dir, 'forward.mjs');
const index = pathToFileURL(join(ROOT, 'dist', 'src', 'index.js')).href;
writeFileSync(script, `
import { RetNet, Tensor } from ${JSON.stringify(index)};
const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
const x = Tensor.randn([1, 5, 8], { seed: 2 });
const ref = await m.forward(x, { backend: 'js' });
for (const backend of process.env.BACKENDS.split(',')) {
  const y = await m.forward(x, { backend });
  let e = 0; for (let i = 0; i < y.size; i++) e = Math.max(e, Math.abs(y.data[i] - ref.data[i]));
  console.log(backend + ' ok ' + e);
}
await m.close();
`);

const tfjsMissing = await import('@tensorflow/tfjs').then(() => null, () => '@tensorflow/tfjs is not installed');
const FLAG_SETS = [
  ['--max-old-space-size=2048'], ['--expose-gc'], ['--stack-size=2000'], ['--title=retnet-test'],
  ['--title', 'retnet test', '--expose-gc', '--stack-size=1500', '--max-old-space-size=3000', '--no-warnings'],
];

test('tfjs and wasm backends run when node has flags a Worker refuses', () => {
  const backends = ['wasm', ...(canRunPart('tfjs worker with node flags', tfjsMissing) ? ['tfjs'] : [])];
  for (const flags of FLAG_SETS) {
    const r = spawnSync(process.execPath, [...flags, script], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, RETNET_TFJS_ENGINE: 'cpu', BACKENDS: backends.join(',') } });
    const what = flags.join(' ');
    assert.is(r.status, 0, `${what}: exit code (stderr: ${r.stderr})`);
    assert.not.match(r.stderr + r.stdout, /ERR_WORKER_INVALID_EXEC_ARGV/, `${what}: no raw worker error`);
    for (const b of backends) {
      const m = new RegExp(`^${b} ok (\\S+)$`, 'm').exec(r.stdout);
      assert.ok(m, `${what}: ${b} ran (stdout: ${r.stdout})`);
      // float32 forward vs float64 reference on a 1-layer d=8 model: 1e-5 absolute is far above float32 rounding
      assert.ok(Number(m![1]) < 1e-5, `${what}: ${b} agrees with js (max|Δ| = ${m![1]})`);
    }
  }
});

test('main-script-only flags (--input-type with --eval) do not reach the worker', () => {
  const backends = ['wasm', ...(canRunPart('tfjs worker with --input-type', tfjsMissing) ? ['tfjs'] : [])];
  const code = `await import(${JSON.stringify(pathToFileURL(script).href)});`;
  const r = spawnSync(process.execPath, ['--input-type=module', '--expose-gc', '-e', code], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, RETNET_TFJS_ENGINE: 'cpu', BACKENDS: backends.join(',') } });
  assert.is(r.status, 0, `exit code (stderr: ${r.stderr})`);
  for (const b of backends) assert.match(r.stdout, new RegExp(`^${b} ok`, 'm'), `${b} ran`);
});

test.run();
