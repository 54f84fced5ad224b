// Bad input: each case is a clear RetNetError naming the problem, never a crash,
// a hang or a silent wrong answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MultiScaleRetention, RetNet, RetNetError, RetNetLM, Tensor, allclose, retention, writeSafetensors } from '../src/index.js';
import { expectError, fixturePath, ROOT } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'retnet-bad-'));
const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, seed: 1 });
const x = Tensor.randn([1, 5, 8], { seed: 2 });

function header(obj: unknown, extraBytes = 0): Buffer {
  const h = Buffer.from(JSON.stringify(obj));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(extraBytes)]);
}

test('wrong input width, rank and type', async () => {
  await expectError(() => model.forward(Tensor.randn([1, 5, 7])), /width 7 but the model's dimModel is 8/, 'width');
  await expectError(() => model.forward(Tensor.randn([5, 8])), /shape \[batch, length, 8\]/, 'rank');
  await expectError(() => model.forward([1, 2, 3] as unknown as Tensor), /must be a Tensor/, 'type');
  await expectError(() => model.forward(Tensor.zeros([1, 0, 8])), /length ≥ 1/, 'empty');
});

test('non-finite input names the position', async () => {
  const bad = Tensor.randn([2, 5, 8], { seed: 3 });
  bad.data[1 * 40 + 3 * 8 + 6] = NaN;
  await expectError(() => model.forward(bad), /non-finite value NaN at \[1, 3, 6\]/, 'NaN');
  bad.data[1 * 40 + 3 * 8 + 6] = Infinity;
  await expectError(() => model.forward(bad), /non-finite value Infinity/, 'Infinity');
});

test('numChunks 0, -2, 1.5 and other bad options', async () => {
  await expectError(() => model.forward(x, { numChunks: 0 }), /^options\.numChunks must be a positive integer, -1 or null \(got 0\)$/, 'numChunks 0');
  await expectError(() => model.forward(x, { numChunks: -2 }), /options\.numChunks must be a positive integer, -1 or null \(got -2\)/, 'numChunks -2');
  await expectError(() => model.forward(x, { numChunks: 1.5 }), /options\.numChunks .*\(got 1\.5\)/, 'numChunks 1.5');
  await expectError(() => model.forward(x, { chunkSize: 0 }), /options\.chunkSize must be a positive integer \(got 0\)/, 'chunkSize 0');
  await expectError(() => model.forward(x, { chunkSize: 2, numChunks: 2 }), /options\.chunkSize must be omitted when numChunks is given/, 'both');
  await expectError(() => model.forward(x, { backend: 'cuda' as never }), /options\.backend must be one of/, 'backend');
  await expectError(() => model.forward(x, { normalizeRetn: 'yes' as never }), /options\.normalizeRetn must be a boolean/, 'flag');
  await expectError(() => model.forward(x, { attnMask: 'none' as never }), /options\.attnMask must be 'causal'/, 'mask');
});

test('an unknown option is an error naming the nearest one (before: ignored, so { chunks: 8 } ran the parallel form)', async () => {
  const near: [Record<string, unknown>, string][] = [[{ chunks: 8 }, 'numChunks'], [{ chunk_size: 4 }, 'chunkSize'], [{ precison: 'bf16' }, 'precision'], [{ worker: 2 }, 'workers']];
  for (const [o, want] of near) {
    const e = await expectError(() => model.forward(x, o as never), new RegExp(`^options\\.${Object.keys(o)[0]} is not an option \\(did you mean ${want}\\?\\); the options are attnMask, numChunks, chunkSize, `), want);
    if (!(e instanceof RetNetError) || e.code !== 'E_OPTION') throw new Error('not an E_OPTION RetNetError');
  }
  await expectError(() => model.forward(x, { zzz: 1 } as never), /^options\.zzz is not an option; the options are /, 'no near name');
  // the streaming forwards' onProgress, and keys whose value is undefined, are fine
  assert.equal((await model.forward(x, { numChunks: 2, onProgress: () => {}, zzz: undefined } as never)).shape, x.shape);
  // the same check behind step and retention()
  await expectError(() => Promise.resolve(model.step(Tensor.randn([1, 8], { seed: 1 }), undefined, { backen: 'wasm' } as never)), /options\.backen is not an option \(did you mean backend\?\)/, 'step');
});

test('configs and load options: an unknown key is an error naming the nearest one (before: ignored; { numLayers: 2 } built 6 layers)', async () => {
  await expectError(() => RetNet.init({ dimModel: 64, numHead: 4 } as never), /^config\.numHead is not a config key \(did you mean numHeads\?\); the keys are numLayer, numHeads, /, 'init');
  await expectError(() => RetNet.init({ numLayers: 2 } as never), /^config\.numLayers is not a config key \(did you mean numLayer\?\)/, 'init layers');
  await expectError(() => MultiScaleRetention.init({ gateFN: 'gelu' } as never), /^config\.gateFN is not a config key \(did you mean gateFn\?\)/, 'MSR init');
  const ok = RetNet.init({ numLayer: 1, dimModel: 16, numHeads: 2, seed: 3 });
  assert.is(ok.config.numLayer, 1);
  await ok.close();
  await expectError(() => RetNet.load(fixturePath('retnet-tiny'), { msr_gate_fn: 'gelu' } as never), /^options\.msr_gate_fn is not an option \(did you mean msrGateFn\?\); the options are msrGateFn, mlpGateFn, numHeads$/, 'load');
  await expectError(() => RetNetLM.loadFolder(join(ROOT, 'test', 'fixtures', 'fla', 'f32'), { bf16s: 'resident' } as never), /^options\.bf16s is not an option \(did you mean bf16\?\)/, 'loadFolder');
  await expectError(() => RetNetLM.load(undefined, { mlpGateFN: 'gelu' } as never), /^options\.mlpGateFN is not an option \(did you mean mlpGateFn\?\)/, 'LM load');
  await expectError(() => RetNetLM.load(join(ROOT, 'test', 'fixtures', 'fla', 'f32'), { msrGateFn: 'silu' }), /^options\.msrGateFn must be left out for a model folder .*its config\.json decides\) \(got "silu"\)$/, 'LM load of a folder');
});

test("the language models' calls check their own options the same way", async () => {
  const lm = await RetNetLM.load();
  try {
    await expectError(() => lm.generate({ prompt: new Uint8Array([65]), maxByte: 3 } as never), /^options\.maxByte is not an option \(did you mean maxBytes\?\); the options are prompt, maxBytes, /, 'byte generate');
    assert.is((await lm.generate({ prompt: new Uint8Array([65]), maxBytes: 3 })).bytes.length, 3);
    await expectError(() => Promise.resolve(lm.step(65, undefined, { backnd: 'wasm' } as never)), /^options\.backnd is not an option \(did you mean backend\?\); the options are backend, precision, stateDtype$/, 'LM step');
    await expectError(() => lm.score('abc', { chunksize: 2 } as never), /^options\.chunksize is not an option \(did you mean chunkSize\?\)/, 'score');
    assert.ok((await lm.score('abc', { perToken: true, onProgress: () => {} })).logprobs);
  } finally { await lm.close(); }
  const fla = await RetNetLM.loadFolder(join(ROOT, 'test', 'fixtures', 'fla', 'f32'));
  try {
    // checked before anything else (this folder has no tokenizer.json, so a valid call fails later, on the text)
    await expectError(() => fla.generate([1, 2], { maxNewToken: 2 } as never), /^options\.maxNewToken is not an option \(did you mean maxNewTokens\?\)/, 'text generate');
    await expectError(() => fla.generate([1, 2], { maxNewTokens: 2 }), /has no tokenizer\.json/, 'text generate without a tokenizer');
  } finally { await fla.close(); }
});

test('seeds are integers in [0, 2^32) everywhere (before: 1.5, -1 and 2^32 ran the draws of 1, 2^32 - 1 and 0)', async () => {
  const bad = [1.5, -1, 2 ** 32, NaN, '7'];
  for (const seed of bad) {
    await expectError(() => Tensor.randn([2], { seed: seed as never }), /^options\.seed must be an integer from 0 to 4294967295/, `randn ${seed}`);
    await expectError(() => RetNet.init({ numLayer: 1, dimModel: 8, numHeads: 2, seed: seed as never }), /seed must be an integer from 0 to 4294967295/, `init ${seed}`);
  }
  assert.equal(Array.from(Tensor.randn([3], { seed: 2 ** 32 - 1 }).data).length, 3);
  const lm = await RetNetLM.load();
  try {
    await expectError(() => lm.generate({ prompt: new Uint8Array([65]), maxBytes: 2, temperature: 1, seed: 1.5 }), /^options\.seed must be an integer/, 'byte generate');
    const a = await lm.generate({ prompt: new Uint8Array([65]), maxBytes: 8, temperature: 1, seed: 2 ** 32 - 1 });
    assert.is(a.bytes.length, 8);
    // the step names what it takes: a byte for the byte LM
    await expectError(() => Promise.resolve(lm.step(256)), /^byte must be an integer in \[0, 256\) \(got 256\)/, 'byte step');
  } finally { await lm.close(); }
  const fla = await RetNetLM.loadFolder(join(ROOT, 'test', 'fixtures', 'fla', 'f32'));
  try {
    await expectError(() => fla.generate([1, 2], { maxNewTokens: 2, seed: 2 ** 32 }), /^options\.seed must be an integer/, 'text generate');
    await expectError(() => Promise.resolve(fla.step(-1)), /^token id must be an integer in \[0, \d+\) \(got -1\)/, 'token step');
  } finally { await fla.close(); }
});

test('Tensor factories check shape, dtype and range (before: a RangeError without a code, or float32 for any dtype)', async () => {
  await expectError(() => Tensor.randn([-2, 3]), /^Tensor shape must be an array of non-negative integers \(got \[-2, 3\]\)/, 'negative dim');
  await expectError(() => Tensor.zeros([2.5]), /non-negative integers/, 'fractional dim');
  const big = await expectError(() => Tensor.randn([1e6, 1e6]), /^a float32 tensor of shape \[1000000, 1000000\] \(1000000000000 elements, 3725\.3 GiB\) cannot be allocated/, 'too big');
  assert.is((big as RetNetError).code, 'E_MEMORY');
  await expectError(() => Tensor.randn([2], { dtype: 'float16' as never }), /^options\.dtype must be 'float32' or 'float64' \(got "float16"\)/, 'dtype');
  await expectError(() => Tensor.randint(5, 5, [2]), /^randint needs integers lo < hi \(got lo 5, hi 5\)/, 'empty range');
  await expectError(() => Tensor.randint(0, 1.5, [2]), /lo < hi/, 'fractional bound');
  await expectError(() => new Tensor(new Int32Array(3) as never, [3]), /got an Int32Array/, 'article');
  const r = Tensor.randint(-3, 3, [1000], { seed: 4, dtype: 'float64' });
  assert.is(r.dtype, 'float64');
  assert.ok(r.data.every((v) => Number.isInteger(v) && v >= -3 && v < 3));
});

test('step states and layer indices are checked (before: a TypeError, or another model\'s state read as this one\'s)', async () => {
  const a = RetNet.init({ numLayer: 2, dimModel: 8, numHeads: 2, seed: 1 }), b = RetNet.init({ numLayer: 2, dimModel: 16, numHeads: 2, seed: 1 });
  try {
    for (const backend of ['js', 'wasm'] as const) {
      await expectError(() => a.step(Tensor.randn([1, 8]), { pos: 0 } as never, { backend }), /^step state has batch undefined, not a positive integer/, `${backend} hand-made`);
      await expectError(() => a.step(Tensor.randn([1, 8]), b.initState(1), { backend }), /^step state layer 0, sequence 0: S must be a Float64Array or Float32Array of 64 values and z a Float64Array of 8/, `${backend} other model`);
      const s = a.initState(1, 'float32');
      a.step(Tensor.randn([1, 8]), s, { backend });
      assert.is(a.step(Tensor.randn([1, 8]), s, { backend }).state.pos, 2);
    }
    await expectError(() => MultiScaleRetention.fromRetNet(a, 0.5), /^options\.index must be a layer index in \[0, 2\) \(got 0\.5\)/, 'index');
    // save: a folder, or a path in a folder that does not exist, is named as asked (not the temporary file)
    const dirErr = await expectError(() => a.save(dir), /^cannot write .*: it is a directory/, 'save onto a folder');
    assert.is((dirErr as NodeJS.ErrnoException).code, 'EISDIR');
    const missing = join(dir, 'no-such-folder', 'm.safetensors');
    const noDir = await expectError(() => a.save(missing), /: its folder .* does not exist \(ENOENT\)$/, 'save into a missing folder');
    assert.ok(noDir.message.startsWith(`cannot write ${missing}:`), noDir.message);
    assert.is((noDir as NodeJS.ErrnoException).code, 'ENOENT');
  } finally { await a.close(); await b.close(); }
});

test('retention() checks its tensors and decays (before: a TypeError, or NaN out with no error)', async () => {
  const q = Tensor.randn([1, 2, 6, 4], { seed: 1, dtype: 'float64' }), v = Tensor.randn([1, 2, 6, 8], { seed: 2, dtype: 'float64' });
  const ok = retention(q, q, v, [-0.1, -0.5], { numChunks: 2 });
  assert.equal(ok.shape, [1, 2, 6, 8]);
  await expectError(() => retention(null as never, q, v, [-0.1, -0.5]), /^retention: q must be a Tensor \(got null\)/, 'not a tensor');
  const bad = Tensor.randn([1, 2, 6, 4], { seed: 1, dtype: 'float64' }); bad.data[5] = NaN;
  await expectError(() => retention(q, bad, v, [-0.1, -0.5]), /^retention: k has a non-finite value NaN at element 5/, 'NaN');
  await expectError(() => retention(q, q, v, [-0.1, NaN]), /^retention: decay\[1\] = NaN gives γ = exp\(decay\) = NaN, not strictly between 0 and 1/, 'NaN decay');
  await expectError(() => retention(q, q, v, [0.2, -0.5]), /decay\[0\] = 0\.2 gives γ = exp\(decay\) = 1\.22/, 'growing');
  await expectError(() => retention(q, q, v, 5 as never), /decay must be an array of log-decays/, 'decay type');
});

test('bad configs', async () => {
  await expectError(() => RetNet.init({ dimModel: 10, numHeads: 3 }), /divisible by numHeads=3/, 'heads');
  await expectError(() => RetNet.init({ dimModel: 6, numHeads: 2 }), /even/, 'odd dk');
  await expectError(() => RetNet.init({ msrGateFn: 'tanh' as never }), /msrGateFn must be one of gelu/, 'act');
});

test('truncated safetensors file', async () => {
  const whole = readFileSync(fixturePath('retnet-tiny'));
  const p = join(dir, 'truncated.safetensors');
  writeFileSync(p, whole.subarray(0, whole.length - 100));
  const e = await expectError(() => RetNet.load(p), /truncated\.safetensors: tensor .* claims bytes \[\d+, \d+\) but the file holds only \d+ data bytes \(truncated or corrupt\)/, 'truncated');
  if (!(e instanceof RetNetError) || e.code !== 'E_SAFETENSORS') throw new Error('not an E_SAFETENSORS RetNetError');
  writeFileSync(p, whole.subarray(0, 5));
  await expectError(() => RetNet.load(p), /starts with an 8-byte header length/, 'tiny file');
  writeFileSync(p, whole.subarray(0, 50));
  await expectError(() => RetNet.load(p), /header length \d+ exceeds the 42 bytes/, 'cut header');
});

test('a header claiming 10^12 bytes is refused before any allocation', async () => {
  const p = join(dir, 'huge.safetensors');
  writeFileSync(p, header({ w: { dtype: 'F32', shape: [250_000_000_000], data_offsets: [0, 1e12] } }, 16));
  await expectError(() => RetNet.load(p), /claims bytes \[0, 1000000000000\) but the file holds only 16 data bytes/, 'huge tensor');
  const len = Buffer.alloc(16);
  len.writeBigUInt64LE(10n ** 12n);
  writeFileSync(p, len);
  await expectError(() => RetNet.load(p), /header length 1000000000000 exceeds the format's 100000000-byte limit/, 'huge header');
  writeFileSync(p, '{"architectures": ["RetNetForCausalLM"]}\n');
  await expectError(() => RetNet.load(p), /begins with text \("\{\\"archit"\), not a safetensors file's header length: a JSON or text file\? \(for a Hugging Face model folder, pass the folder\)/, 'a config.json');
  writeFileSync(p, header({ w: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 8] } }, 8));
  await expectError(() => RetNet.load(p), /shape \[4, 4\] of F32 needs 64 bytes but data_offsets give 8/, 'shape/offset mismatch');
  writeFileSync(p, Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{x}')]));
  await expectError(() => RetNet.load(p), /header is not valid UTF-8 JSON/, 'bad json');
});

test('a fla-hub model file given to RetNet.load is named as such, with where it loads', async () => {
  const f = fixturePath(join('fla', 'f32', 'model'));
  const e = await expectError(() => RetNet.load(f), /no RetNet layers found \(expected layers\.0\.0\.q_proj\.weight\); its tensors are a fla-hub RetNet's .*RetNetLM\.loadFolder\(DIR\)/, 'fla file');
  if (!(e instanceof RetNetError) || e.code !== 'E_WEIGHTS') throw new Error('not an E_WEIGHTS RetNetError');
  // a checkpoint with neither layout keeps the plain message
  const p = join(dir, 'other.safetensors');
  writeSafetensors(p, { 'encoder.w': new Tensor(new Float32Array(4), [2, 2]) });
  const o = await expectError(() => RetNet.load(p), /no RetNet layers found \(expected layers\.0\.0\.q_proj\.weight\)$/, 'other file');
  if (!(o instanceof RetNetError)) throw new Error('not a RetNetError');
});

test('a missing weight and unexpected weights are listed', async () => {
  const ref = await RetNet.load(fixturePath('retnet-tiny'));
  const p = join(dir, 'missing.safetensors');
  const { layersToTensors } = await import('../src/model/weights.js');
  const t = layersToTensors(ref.layers, ref.dims);
  delete t['layers.0.0.g_proj.bias'];
  writeSafetensors(p, t);
  await expectError(() => RetNet.load(p), /missing weight layers\.0\.0\.g_proj\.bias/, 'missing');
  const t2 = layersToTensors(ref.layers, ref.dims);
  t2['extra.weight'] = { shape: [2], data: new Float32Array(2) };
  t2['layers.0.0.foo'] = { shape: [1], data: new Float32Array(1) };
  writeSafetensors(p, t2);
  await expectError(() => RetNet.load(p), /unexpected weights not used by the model: extra\.weight, layers\.0\.0\.foo/, 'unexpected');
  const t3 = layersToTensors(ref.layers, ref.dims);
  t3['layers.0.0.q_proj.weight'] = { shape: [8, 7], data: new Float32Array(56) };
  writeSafetensors(p, t3);
  await expectError(() => RetNet.load(p), /q_proj\.weight has shape \[8, 7\], expected \[8, 8\]/, 'wrong shape');
});

test('an unsupported dtype is named', async () => {
  const p = join(dir, 'dtype.safetensors');
  writeFileSync(p, header({ 'layers.0.0.q_proj.weight': { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, 8));
  await expectError(() => RetNet.load(p), /tensor "layers\.0\.0\.q_proj\.weight" has dtype C64; supported: F32, F64, F16, BF16/, 'C64');
});

test('missing file and directory', async () => {
  await expectError(() => RetNet.load(join(dir, 'nope.safetensors')), /nope\.safetensors: cannot open: ENOENT/, 'missing');
  const d = join(dir, 'adir'); mkdirSync(d);
  await expectError(() => RetNet.load(d), /is a directory/, 'directory');
});

test('step input checks and a closed model', async () => {
  await expectError(() => model.step(Tensor.randn([1, 7])), /step input must be a Tensor of shape \[batch, 8\]/, 'step width');
  const st = model.initState(2);
  await expectError(() => model.step(Tensor.randn([1, 8]), st), /batch 1 but the state was made for batch 2/, 'step batch');
  const m2 = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8 });
  await m2.close();
  await expectError(() => m2.forward(x), /model was closed/, 'closed');
});

test('an aborted signal rejects', async () => {
  const ac = new AbortController();
  ac.abort(new Error('user cancelled'));
  const e = await expectError(() => model.forward(x, { signal: ac.signal }), /operation aborted: user cancelled/, 'abort');
  if ((e as RetNetError).code !== 'E_ABORTED') throw new Error('wrong code');
});

test('Tensor.slice checks its axis and bounds (before: rows run together, zeros, or a shape with undefined in it)', async () => {
  const t = new Tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
  assert.equal(Array.from(t.slice(1, 1, 3).data), [2, 3, 5, 6]);
  assert.equal(t.slice(0, 1, 1).shape, [0, 3]);
  for (const [axis, start, end, msg] of [
    [1, 0, 5, /^slice of axis 1 needs integers 0 ≤ start ≤ end ≤ 3 \(got start 0, end 5\)$/],
    [1, -1, 2, /start -1/],
    [0, 1, 3, /≤ 2 \(got start 1, end 3\)/],
    [0, 2, 1, /start 2, end 1/],
    [1, 0.5, 2, /start 0\.5/],
    [2, 0, 1, /^slice axis must be an integer in \[0, 2\) for a tensor of shape \[2, 3\] \(got 2\)$/],
    [-1, 0, 1, /axis must be an integer in \[0, 2\)/],
  ] as [number, number, number, RegExp][]) {
    const e = await expectError(() => t.slice(axis, start, end), msg, `slice(${axis}, ${start}, ${end})`);
    assert.is((e as RetNetError).code, 'E_INPUT');
  }
});

test('allclose: equal infinities are close, a finite value is not close to an infinity, NaN to nothing; lengths must match (before: false, true, and a silent false)', async () => {
  assert.is(allclose([Infinity, -Infinity, 1], [Infinity, -Infinity, 1 + 1e-9]), true);
  assert.is(allclose([Infinity], [-Infinity]), false);
  assert.is(allclose([1], [Infinity]), false);
  assert.is(allclose([Infinity], [1]), false);
  assert.is(allclose([NaN], [NaN]), false);
  assert.is(allclose([1], [NaN]), false);
  assert.is(allclose([1, 2], [1, 2.1]), false);
  const e = await expectError(() => allclose([1, 2], [1, 2, 3]), /^cannot compare arrays of 2 and 3 elements$/, 'lengths');
  assert.is((e as RetNetError).code, 'E_INPUT');
});

test('null options are E_OPTION in forwardRagged as in forward (before: a TypeError reading options.backend)', async () => {
  for (const f of [() => model.forwardRagged([Tensor.randn([4, 8])], null as never), () => model.forward(x, null as never)]) {
    const e = await expectError(f, /^options must be an object/, 'null options');
    assert.is((e as RetNetError).code, 'E_OPTION');
  }
  const msr = MultiScaleRetention.init({ dimModel: 8, numHeads: 2 });
  const e = await expectError(() => msr.forwardRagged([Tensor.randn([4, 8])], null as never), /^options must be an object/, 'MultiScaleRetention');
  assert.is((e as RetNetError).code, 'E_OPTION');
  await msr.close();
});

test.run();
