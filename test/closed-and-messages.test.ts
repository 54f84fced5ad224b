// Issue #10 item 14: E_CLOSED after and during close(); Tensor refuses arrays it
// cannot hold at construction; a bad activation or head count is blamed on the
// option (or the metadata), not on "the weight shapes"; MultiScaleRetention
// names its own config keys.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MultiScaleRetention, RetNet, RetNetError, RetNetLM, Tensor, readSafetensors, writeSafetensors, type BackendName } from '../src/index.js';
import { expectError } from './helpers.js';
import { canRunPart } from './helpers/skip.js';

const dir = mkdtempSync(join(tmpdir(), 'retnet-closed-'));

async function expectCode(fn: () => unknown, code: string, pattern: RegExp, what: string): Promise<RetNetError> {
  const e = await expectError(fn, pattern, what);
  assert.ok(e instanceof RetNetError, `${what}: a RetNetError`);
  assert.is((e as RetNetError).code, code, `${what}: code`);
  return e as RetNetError;
}

test('RetNetLM: every call after close() is E_CLOSED, on every backend', async () => {
  const lm = await RetNetLM.load();
  const text = new TextEncoder().encode('hello, retention');
  await lm.score(text, { backend: 'js' }); // works before
  await lm.close();
  for (const backend of ['js', 'wasm'] as const) {
    await expectCode(() => lm.score(text, { backend }), 'E_CLOSED', /closed/, `score ${backend}`);
    await expectCode(() => lm.score([text, text], { backend }), 'E_CLOSED', /closed/, `score batch ${backend}`);
    await expectCode(() => lm.nextLogprobs(text, { backend }), 'E_CLOSED', /closed/, `nextLogprobs ${backend}`);
  }
  await expectCode(() => lm.step(65), 'E_CLOSED', /closed/, 'step');
  await expectCode(() => lm.prefill(text), 'E_CLOSED', /closed/, 'prefill');
  await expectCode(() => lm.generate({ prompt: text, maxBytes: 4 }), 'E_CLOSED', /closed/, 'generate');
});

const tfjsMissing = await import('@tensorflow/tfjs').then(() => null, () => '@tensorflow/tfjs is not installed');

test('close() during a forward rejects that forward with E_CLOSED (not "the next call can proceed")', async () => {
  const backends: BackendName[] = ['wasm', 'js', ...(canRunPart('close during a tfjs forward', tfjsMissing) ? ['tfjs' as const] : [])];
  for (const backend of backends) {
    const model = RetNet.init({ numLayer: 2, numHeads: 2, dimModel: 16, seed: 1 });
    const x = Tensor.randn([1, backend === 'js' ? 8192 : 32768, 16], { seed: 2 });
    let closing: Promise<void> | undefined;
    const e = await expectCode(
      () => model.forward(x, { backend, chunkSize: 64, windowRows: 512, onProgress: () => { closing ??= model.close(); } }),
      'E_CLOSED', /closed/, `${backend}: close during forward`);
    assert.not.match(e.message, /next call can proceed/, `${backend}: message`);
    assert.ok(closing, `${backend}: close() was called mid-forward`);
    await closing;
    await expectCode(() => model.forward(x, { backend }), 'E_CLOSED', /closed/, `${backend}: after close`);
  }
});

test('Tensor refuses a plain Array, a BigInt64Array or an Int32Array at construction', async () => {
  await expectCode(() => new Tensor([1, 2, 3, 4] as never, [1, 4]), 'E_INPUT', /^Tensor data must be a Float32Array or Float64Array \(got a plain Array\); convert with Float32Array\.from\(values\)$/, 'Array');
  await expectCode(() => new Tensor(new BigInt64Array(4) as never, [4]), 'E_INPUT', /\(got a BigInt64Array\)/, 'BigInt64Array');
  await expectCode(() => new Tensor(new Int32Array(4) as never, [4]), 'E_INPUT', /\(got an Int32Array\)/, 'Int32Array');
  await expectCode(() => new Tensor(null as never, [4]), 'E_INPUT', /\(got null\)/, 'null');
  await expectCode(() => new Tensor(new Float32Array(4), 4 as never), 'E_INPUT', /shape must be an array/, 'shape not an array');
});

test('a bad activation or head count is the option\'s (or metadata\'s) fault, not the weight shapes\'', async () => {
  const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
  const p = join(dir, 'm.safetensors');
  model.save(p);
  await expectCode(() => RetNet.load(p, { msrGateFn: 'tanh' as never }), 'E_OPTION', /^options\.msrGateFn must be one of gelu.* \(got "tanh"\)$/, 'msrGateFn option');
  await expectCode(() => RetNet.load(p, { mlpGateFn: 3 as never }), 'E_OPTION', /^options\.mlpGateFn must be one of .*\(got 3\)$/, 'mlpGateFn option');
  await expectCode(() => RetNet.load(p, { numHeads: 3 }), 'E_OPTION', /^options\.numHeads must be a positive integer dividing the checkpoint's dimModel 8/, 'numHeads option');
  const { tensors } = readSafetensors(p);
  const w = Object.fromEntries([...tensors].map(([k, t]) => [k, { shape: [...t.shape], data: t.data as Float32Array }]));
  const q = join(dir, 'meta.safetensors');
  writeSafetensors(q, w, { config: JSON.stringify({ msr_gate_fn: 'tanh' }) });
  const e = await expectCode(() => RetNet.load(q), 'E_WEIGHTS', /meta\.safetensors: __metadata__\.config\.msr_gate_fn = "tanh" is not one of gelu/, 'metadata act');
  assert.not.match(e.message, /weight shapes/);
  await model.close();
});

test('MultiScaleRetention.init and its constructor name the user\'s keys', async () => {
  await expectCode(() => MultiScaleRetention.init({ gateFn: 'tanh' as never }), 'E_OPTION', /^config\.gateFn must be one of gelu.*\(got "tanh"\)$/, 'init gateFn');
  const msr = MultiScaleRetention.init({ dimModel: 8, numHeads: 2, seed: 1 });
  await expectCode(() => new MultiScaleRetention({ ...msr.config, gateFn: 'swish' as never }, msr.weights), 'E_OPTION', /^config\.gateFn must be one of/, 'ctor gateFn');
  await expectCode(() => MultiScaleRetention.init({ dimModel: 10, numHeads: 3 }), 'E_OPTION', /^config\.dimModel must be divisible by numHeads=3/, 'dims');
  await msr.close();
});

test.run();
