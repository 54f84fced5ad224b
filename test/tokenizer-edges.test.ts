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

test('a tokenizer.json whose model has no "type" is refused (before: "abxa" encoded as "aba", the x dropped without a word); an array vocabulary is a Unigram', () => {
  const base = { version: '1.0', normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [] };
  const bpe = { dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] };
  assert.throws(() => tokenizerFromJson({ ...base, model: bpe }), /model\.type is missing: name the model \(BPE, WordPiece or Unigram\)/);
  const typed = tokenizerFromJson({ ...base, model: { ...bpe, type: 'BPE' } });
  assert.throws(() => typed.encode('abxa'), /the character "x" \(U\+0078\) that the tokenizer cannot encode/);
  const uni = tokenizerFromJson({ ...base, model: { unk_id: 0, vocab: [['<unk>', 0], ['a', -1], ['b', -1], ['ab', -0.5]] } });
  assert.equal(uni.decode(uni.encode('ab')), 'ab');
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
