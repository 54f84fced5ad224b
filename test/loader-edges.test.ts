// Model folders at their edges (found by a review on 2026-12-07; each test failed before its fix):
// a vocabulary padded beyond the tokenizer, a tokenizer that drops characters or adds no BOS, BOS
// decided by the tokenizer's files, model.safetensors beside shards, a bad BF16 value's position, and
// a finite weight that overflows on some text (NaN, not a number that looks right).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNetLM, Tensor, scoreCorpus } from '../src/index.js';
import { readSafetensors, writeSafetensors } from '../src/safetensors.js';
import { FIXTURES } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { dnnlMissing, loadDnnl } from '../src/runtime/dnnl.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-loader-edges-'));
const base = await makeTinyFlaFolder(join(tmp, 'base'));
const variant = (name: string, edit: (dir: string) => void) => { const d = join(tmp, name); cpSync(base, d, { recursive: true }); edit(d); return d; };
const editJson = (file: string, edit: (j: Record<string, unknown>) => void) => {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>; edit(j); writeFileSync(file, JSON.stringify(j));
};
async function withLm<T>(dir: string, f: (lm: RetNetLM) => Promise<T>): Promise<T> {
  const lm = await RetNetLM.load(dir);
  try { return await f(lm); } finally { await lm.close(); }
}
const codeOf = async (p: Promise<unknown>): Promise<{ code?: string; message: string }> => {
  try { await p; return { message: '(no error)' }; } catch (e) { return e as { code?: string; message: string }; }
};

test('a vocabulary padded beyond the tokenizer: generate and stream pick only ids the tokenizer has (before: E_INPUT on an id it cannot decode)', async () => {
  const dir = await makeTinyFlaFolder(join(tmp, 'padded'), { vocab: 32064, seed: 3 });
  // the padded rows of the (tied) embedding 1000× larger: one of their logits is then far above every
  // other, so greedy decoding over the whole vocabulary would pick a padded id at the first step
  const p = join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(p);
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of tensors) out[name] = { shape: t.shape, data: Float32Array.from(t.data as Float32Array) };
  const E = out['model.embeddings.weight']!, d = E.shape[1]!;
  for (let i = 32000 * d; i < E.data.length; i++) E.data[i]! *= 1000;
  rmSync(p); writeSafetensors(p, out);
  await withLm(dir, async (lm) => {
    assert.is(lm.vocab, 32064); assert.is(lm.tokenizer.vocabSize, 32000);
    const { logits } = await lm.logits(lm.tokenizer.encode('Hello'), { backend: 'js' });
    const last = logits.subarray(logits.length - 32064);
    let top = 0; for (let v = 1; v < 32064; v++) if (last[v]! > last[top]!) top = v;
    assert.ok(top >= 32000, `the likeliest id is ${top}: the test would not exercise the padding`);
    for (const temperature of [0, 1]) {
      const seen: number[] = [];
      const g = await lm.generate('Hello', { maxNewTokens: 6, temperature, seed: 5, onToken: (id: number) => { seen.push(id); } });
      assert.ok(seen.length === 6 && seen.every((id) => id < 32000), `temperature ${temperature}: ids ${seen}`);
      assert.type(g.text, 'string');
    }
  });
});

test('a BPE tokenizer without byte fallback or unknown token refuses a character it lacks, naming it (before: dropped, bits/byte still over its bytes)', async () => {
  const dir = variant('nofallback', (d) => editJson(join(d, 'tokenizer.json'), (j) => { const m = j.model as Record<string, unknown>; m.byte_fallback = false; m.unk_token = null; }));
  await withLm(dir, async (lm) => {
    assert.equal([...lm.tokenizer.encode('plain text')], [...(await withLm(base, async (b) => b.tokenizer.encode('plain text')))]);
    const e = await codeOf(lm.score('llamas: 🦙🦙'));
    assert.is(e.code, 'E_INPUT', e.message);
    assert.match(e.message, /"🦙" \(U\+1F999\).*cannot encode/);
  });
});

test('a corpus run names the document whose character the tokenizer cannot encode; tokenizer_config.json is part of the model identity (it decides BOS)', async () => {
  const dir = variant('nofallback-corpus', (d) => editJson(join(d, 'tokenizer.json'), (j) => { const m = j.model as Record<string, unknown>; m.byte_fallback = false; m.unk_token = null; }));
  const corpus = join(tmp, 'enc.jsonl');
  writeFileSync(corpus, '{"id":"ok","text":"plain"}\n{"id":"llama","text":"a 🦙 here"}\n');
  const e = await codeOf(scoreCorpus({ inputs: [corpus], out: join(tmp, 'enc-out.jsonl'), model: dir }));
  assert.is(e.code, 'E_INPUT', e.message);
  assert.match(e.message, /document "llama" \(.*enc\.jsonl\): text has the character "🦙"/);
  const { modelFolderFiles, modelFiles } = await import('../src/model/fla.js');
  const withCfg = variant('tokcfg', (d) => writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false })));
  assert.ok(modelFolderFiles(modelFiles(withCfg)).some((f) => f.endsWith('tokenizer_config.json')));
});

test('BOS comes from the tokenizer\'s files, as transformers adds it; without one, bits/byte leaves the first token\'s bytes out (before: config.json forced BOS; the denominator was bytes − 1)', async () => {
  const noBos = variant('nobos', (d) => {
    editJson(join(d, 'tokenizer.json'), (j) => { j.post_processor = null; });
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false, bos_token: '<s>', eos_token: '</s>' }));
  });
  const cfgOn = variant('bos-config', (d) => {
    editJson(join(d, 'tokenizer.json'), (j) => { j.post_processor = null; });
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: true, bos_token: '<s>', eos_token: '</s>' }));
  });
  const withBos = await withLm(base, async (lm) => [...lm.tokenizer.encode('Hello world')]);
  assert.is(withBos[0], 1);
  assert.equal(await withLm(cfgOn, async (lm) => [...lm.tokenizer.encode('Hello world')]), withBos);
  await withLm(noBos, async (lm) => {
    const ids = [...lm.tokenizer.encode('Hello world')];
    assert.equal(ids, withBos.slice(1)); // config.json's bos_token_id (1) no longer forces it
    assert.is(lm.tokenizer.decode([ids[0]!]), 'Hello');
    const r = await lm.score('Hello world', { backend: 'js' });
    // only " world" (6 bytes) is predicted; the denominator before was 10
    assert.is(r.bytes, 11);
    assert.ok(Math.abs(r.bitsPerByte! - r.bits / 6) <= 1e-12 * r.bitsPerByte!, `${r.bitsPerByte} vs ${r.bits / 6}`);
  });
});

test('a byte-level (GPT-2 style) tokenizer without BOS: the first token is one byte of a character, and bits/byte divides by the bytes after it; a corpus summary by the records\' own (before: 0 and a denominator over every byte)', async () => {
  // GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 to U+0100 on
  const printable = [...Array.from({ length: 94 }, (_, i) => 33 + i), ...Array.from({ length: 12 }, (_, i) => 161 + i), ...Array.from({ length: 82 }, (_, i) => 174 + i)];
  const chars = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) chars[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => { vocab[c] = b; });
  const dir = variant('bytelevel', (d) => {
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({
      version: '1.0', added_tokens: [], normalizer: null, post_processor: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
    }));
    rmSync(join(d, 'tokenizer_config.json'), { force: true });
  });
  await withLm(dir, async (lm) => {
    assert.is(lm.tokenizer.bosId, null);
    for (const [text, predicted] of [['é', 1], ['😀ab', 5], ['€x', 3], ['plain', 4]] as [string, number][]) {
      const ids = lm.tokenizer.encode(text);
      assert.is(ids.length, Buffer.byteLength(text), text); // no merges: one token per byte
      const r = await lm.score(text, { backend: 'js' });
      assert.ok(Math.abs(r.bitsPerByte! - r.bits / predicted) <= 1e-12 * r.bitsPerByte!, `${text}: ${r.bitsPerByte} vs ${r.bits / predicted}`);
    }
    const corpus = join(tmp, 'bl.jsonl');
    writeFileSync(corpus, '{"id":"a","text":"é and more"}\n{"id":"b","text":"€x plain text"}\n');
    const out = join(tmp, 'bl-scores.jsonl');
    const summary = await scoreCorpus({ inputs: [corpus], out, model: dir });
    const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { bits: number; bits_per_byte: number });
    const own = recs.reduce((a, x) => a + x.bits, 0) / recs.reduce((a, x) => a + x.bits / x.bits_per_byte, 0);
    assert.ok(Math.abs(summary.bitsPerByte - own) <= 1e-12 * own, `summary ${summary.bitsPerByte} vs records ${own}`);
  });
});

test('model.safetensors beside an index and shards is what loads, as in transformers (before: the shards)', async () => {
  const f32 = join(FIXTURES, 'fla', 'f32'), sharded = join(FIXTURES, 'fla', 'bf16-sharded');
  const dir = join(tmp, 'both');
  cpSync(sharded, dir, { recursive: true });
  cpSync(join(f32, 'model.safetensors'), join(dir, 'model.safetensors'));
  cpSync(join(f32, 'config.json'), join(dir, 'config.json'));
  const ids = Int32Array.from([1, 5, 9, 100, 17]);
  const run = async (d: string) => withLm(d, async (lm) => [...(await lm.logits(ids, { backend: 'js' })).logits]);
  assert.equal(await run(dir), await run(f32));
});

test('a NaN in a BF16 weight is reported at its position (before: always [0])', async () => {
  const src = join(FIXTURES, 'fla', 'bf16-sharded');
  const dir = join(tmp, 'nan-bf16');
  cpSync(src, dir, { recursive: true });
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const file = join(dir, index.weight_map['model.embeddings.weight']!);
  const raw = readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const hdr = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const t = hdr['model.embeddings.weight']!;
  assert.is(t.dtype, 'BF16');
  const cols = t.shape[1]!, at = cols + 5; // row 1, column 5
  raw.writeUInt16LE(0x7fc0, 8 + n + t.data_offsets[0] + 2 * at);
  writeFileSync(file, raw);
  const e = await codeOf(RetNetLM.load(dir));
  assert.is(e.code, 'E_WEIGHTS');
  assert.match(e.message, /model\.embeddings\.weight has a non-finite value NaN at \[1, 5\]/);
});

test('a finite weight that overflows float32 on some text: lm.score reports NaN bits, never a finite number (the corpus scorer then refuses naming the document: reliability3.test.ts)', async () => {
  const dir = join(tmp, 'overflow');
  cpSync(join(FIXTURES, 'fla', 'f32'), dir, { recursive: true });
  const p = join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(p);
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of tensors) out[name] = { shape: t.shape, data: Float32Array.from(t.data as Float32Array) };
  out['model.layers.1.attn.o_proj.weight']!.data[7] = 3e38; // passes the load's bound (o_proj is not bounded there)
  rmSync(p); writeSafetensors(p, out);
  const golden = readSafetensors(join(dir, 'golden.safetensors')).tensors.get('input_ids')!;
  const ids = Int32Array.from((golden.data as Int32Array).subarray(0, 67));
  await withLm(dir, async (lm) => {
    const r = await lm.score(ids, { backend: 'wasm', perToken: true });
    assert.ok(Number.isNaN(r.bits) && Number.isNaN(r.nll), `bits ${r.bits}`);
    assert.ok(Array.from(r.logprobs!).some(Number.isNaN));
  });
});

test('BF16 weights read from the file: a file replaced or rewritten after the load is refused (E_WEIGHTS), not read as the model (before: a mix of the old and new weights, exit 0)', async () => {
  const dir = join(tmp, 'swapped');
  cpSync(join(FIXTURES, 'fla', 'bf16-sharded'), dir, { recursive: true });
  const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 100);
  for (const backend of ['wasm', 'js'] as const) {
    const lm = await RetNetLM.loadFolder(dir, { bf16: 'file' });
    try {
      const before = await lm.score(ids, { backend });
      assert.ok(Number.isFinite(before.nll), `${backend}: scores before the change`);
      assert.is((await lm.score(ids, { backend })).nll, before.nll, `${backend}: an unchanged file reads the same`);
      // every shard replaced by a renamed copy with one BF16 value changed (another file, another inode)
      for (const f of ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']) {
        const p = join(dir, f), bytes = readFileSync(p);
        bytes[bytes.length - 2] ^= 1;
        writeFileSync(`${p}.new`, bytes); renameSync(`${p}.new`, p);
      }
      const e = await codeOf(lm.score(ids, { backend }));
      assert.is(e.code, 'E_WEIGHTS', `${backend}: ${e.message}`);
      assert.match(e.message, /changed since the model was loaded/);
    } finally { await lm.close(); }
  }
});

// Found by a third review (2026-12-07, evening). On the oneDNN bf16 engine a weight is staged in transient
// memory before its bits are read, so a read that throws left the arena with a transient allocation; the
// next call's packing then failed on the arena itself. (The other engines read the bits before staging, so
// nothing was outstanding, but the failed attempt's packed weights were never given back: rewind does both.)
const tPackFail = 'a packing that fails (the file changed before the first forward) leaves the arena clean: the next call fails the same way, E_WEIGHTS (before, on oneDNN bf16: a plain Error \'Arena: persistent allocation after transient ones\')';
test(tPackFail, async () => {
  if (!canRun(tPackFail, dnnlMissing())) return;
  const lib = loadDnnl();
  if (!lib.hasBf16Hardware) { console.log(`SKIPPED: ${tPackFail} — this CPU has no bfloat16 dot products (oneDNN dispatches to ${lib.isa})`); return; }
  const dir = join(tmp, 'swapped-before-pack');
  cpSync(join(FIXTURES, 'fla', 'bf16-sharded'), dir, { recursive: true });
  const lm = await RetNetLM.loadFolder(dir, { bf16: 'file' });
  try {
    const p = join(dir, 'model-00002-of-00003.safetensors'), bytes = readFileSync(p);
    writeFileSync(`${p}.new`, bytes); renameSync(`${p}.new`, p); // the same bytes, another inode
    const x = Tensor.randn([1, 6, lm.model.config.dimModel], { seed: 3 });
    for (const round of [1, 2, 3]) {
      const e = await codeOf(lm.model.forward(x, { backend: 'wasm', kernels: 'dnnl', precision: 'bf16' }));
      assert.is(e.code, 'E_WEIGHTS', `call ${round}: ${e.message}`);
      assert.match(e.message, /changed since the model was loaded/);
    }
  } finally { await lm.close(); }
});

test('config keys as fla reads them: rope_theta changes nothing, a null boolean is false (before: rope_theta refused, fuse_norm null read as true and refused, use_output_gate null passed)', async () => {
  const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 13 + 3) % 100);
  const logitsOf = (dir: string) => withLm(dir, (lm) => lm.logits(ids, { backend: 'js' }));
  const copy = (from: string, name: string, edit: (j: Record<string, unknown>) => void) => {
    const d = join(tmp, name); cpSync(join(FIXTURES, 'fla', from), d, { recursive: true }); editJson(join(d, 'config.json'), edit); return d;
  };
  const base = await logitsOf(join(FIXTURES, 'fla', 'f32'));
  const theta = await logitsOf(copy('f32', 'theta', (j) => { j.rope_theta = 500000; }));
  assert.equal(Array.from(theta.logits), Array.from(base.logits), 'rope_theta: the same logits');
  // legacy-mlp stores the unfused g_norm (fuse_norm false): null must read the same way
  const unfused = await logitsOf(join(FIXTURES, 'fla', 'legacy-mlp'));
  const nullFuse = await logitsOf(copy('legacy-mlp', 'fuse-null', (j) => { j.fuse_norm = null; }));
  assert.equal(Array.from(nullFuse.logits), Array.from(unfused.logits), 'fuse_norm null = false');
  for (const key of ['use_output_gate', 'elementwise_affine']) {
    const e = await codeOf(RetNetLM.load(copy('f32', `${key}-null`, (j) => { j[key] = null; })));
    assert.is(e.code, 'E_CONFIG', `${key}: ${e.message}`);
    assert.match(e.message, new RegExp(key));
  }
});

test('intermediate_size null: the MLP width must be what fla derives from hidden_ratio (before: any width in the tensors was taken)', async () => {
  const copy = (name: string, edit: (j: Record<string, unknown>) => void) => {
    const d = join(tmp, name); cpSync(join(FIXTURES, 'fla', 'legacy-mlp'), d, { recursive: true }); editJson(join(d, 'config.json'), edit); return d;
  };
  // legacy-mlp: hidden_size 32, hidden_ratio 2, intermediate_size null, I = 256 = ceil(floor(32·2·2/3) / 256)·256
  await withLm(join(FIXTURES, 'fla', 'legacy-mlp'), async (lm) => assert.ok(lm.vocab > 0));
  const e = await codeOf(RetNetLM.load(copy('ratio-20', (j) => { j.hidden_ratio = 20; })));
  assert.is(e.code, 'E_WEIGHTS', e.message);
  assert.match(e.message, /hidden_ratio 20 .*gives an intermediate size of 512 but .*gives 256/);
});

test.run();
