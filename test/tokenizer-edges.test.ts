// Tokenizers where a read-only review found wrong answers: a tokenizer.json whose model names no type (the
// library guesses, and its last guess drops characters it lacks — our check for that was keyed on the type
// and skipped), and bits per byte under a GPT-2-style tokenizer with add_prefix_space (the space the
// pre-tokenizer adds was counted as a byte of the text). Each case was wrong before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNetLM } from '../src/index.js';
import { tokenizerFromJson } from '../src/tokenizer/index.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-tokenizer-edges-'));

test('a tokenizer.json whose model has no "type": inferred as the library does, and refused where its keys say nothing (before: the checks keyed on the type were skipped: "abxa" encoded as "aba"); an array vocabulary is a Unigram', () => {
  const base = { version: '1.0', normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [] };
  const bpe = { dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] };
  // no type: inferred as the library infers it (its keys say BPE), so the check of what it cannot encode applies
  for (const model of [bpe, { ...bpe, type: 'BPE' }]) {
    const t = tokenizerFromJson({ ...base, model });
    assert.throws(() => t.encode('abxa'), /the character "x" \(U\+0078\) that the tokenizer cannot encode/);
  }
  // keys that say nothing (the library's last guess, a plain lookup): refused
  assert.throws(() => tokenizerFromJson({ ...base, model: { vocab: { a: 0, b: 1 } } }), /model\.type is missing and its keys do not say which model it is/);
  // WordPiece without a type, as the library reads it
  const wp = tokenizerFromJson({ ...base, model: { unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: { '[UNK]': 0, hello: 1, world: 2 } } });
  assert.equal([...wp.encode('hello world', { addBos: false })].length > 0, true);
  const uni = tokenizerFromJson({ ...base, model: { unk_id: 0, vocab: [['<unk>', 0], ['a', -1], ['b', -1], ['ab', -0.5]] } });
  assert.equal(uni.decode(uni.encode('ab')), 'ab');
});

test('a long line cut before its "▁"s gives the library\'s ids, with and without ignore_merges (with it, the cut is not made: a cut piece would be looked up whole)', async () => {
  const { Tokenizer } = await import('@huggingface/tokenizers') as unknown as { Tokenizer: new (j: unknown, c: unknown) => { encode(t: string, o: unknown): { ids: number[] } } };
  const mk = (extra: Record<string, unknown>) => ({
    version: '1.0', added_tokens: [], normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null, post_processor: null, decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: false, vocab: { '<unk>': 0, '▁': 1, a: 2, b: 3, '▁a': 4, '▁ab': 5, ab: 6 }, merges: ['▁ a', 'a b'], ...extra },
  });
  for (const extra of [{}, { ignore_merges: true }]) {
    const j = mk(extra), ours = tokenizerFromJson(j), lib = new Tokenizer(j, {});
    for (const n of [3, 200]) {
      const text = Array(n).fill('ab').join(' ');
      assert.equal([...ours.encode(text, { addBos: false })], lib.encode(text, { add_special_tokens: false }).ids, `${JSON.stringify(extra)}, ${n} words`);
    }
  }
});

test('bits per byte under a GPT-2-style tokenizer with add_prefix_space and no BOS: the added space is not a byte of the text (before: "hello hello" over 5 bytes, "hello!" had none to predict)', async () => {
  // bytes as GPT-2's printable characters, merges that make "Ġhello"
  const printable = [...Array.from({ length: 94 }, (_, i) => 33 + i), ...Array.from({ length: 12 }, (_, i) => 161 + i), ...Array.from({ length: 82 }, (_, i) => 174 + i)];
  const vocab: Record<string, number> = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) vocab[printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++)] = b;
  const merges = [['Ġ', 'h'], ['e', 'l'], ['el', 'l'], ['ell', 'o'], ['Ġh', 'ello']];
  let id = 256;
  for (const [a, b] of merges) vocab[a! + b!] = id++;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  const dir = join(tmp, 'gpt2');
  await makeTinyFlaFolder(dir, { d: 16, layers: 1, heads: 2, I: 32, vocab: 264, tokenizer: false });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', normalizer: null, added_tokens: [{ id, content: '<|endoftext|>', special: true }],
    pre_tokenizer: byteLevel, post_processor: null, decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: merges.map((m) => m.join(' ')) } }));
  const lm = await RetNetLM.load(dir);
  try {
    for (const [text, predicted] of [['hello hello', 6], ['hello!', 1], [' hello hello', 6]] as const) {
      const ids = lm.tokenizer.encode(text);
      assert.is(lm.tokenizer.decode(ids.subarray(0, 1)), ' hello', `${JSON.stringify(text)}: the first token is "Ġhello"`);
      const r = await lm.score(text);
      assert.is(r.bytes, Buffer.byteLength(text));
      assert.ok(Math.abs(r.bitsPerByte! - r.bits / predicted) <= 1e-12 * r.bitsPerByte!, `${JSON.stringify(text)}: ${r.bitsPerByte} vs bits / ${predicted} = ${r.bits / predicted}`);
    }
  } finally { await lm.close(); }
});

test.run();
