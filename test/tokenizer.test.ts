// The tokenizer layer: the Hugging Face tokenizer.json path (Mistral's 32k
// SentencePiece BPE with byte fallback, run by @huggingface/tokenizers) against
// mistral-tokenizer-js on a fixed text set; decode round trips; streaming
// decode; the byte tokenizer; bad tokenizer files.
//
// The text set exists on a fresh clone after `npm ci` (no ../shared): lines of
// files in packages pinned by package-lock (TypeScript's lib .d.ts and its
// translated diagnostic messages in 13 languages, package READMEs) plus seeded
// synthetic lines over many scripts, emoji (ZWJ sequences, flags, skin tones),
// combining marks, control characters, tabs, CR, CRLF, runs of spaces,
// leading/trailing spaces and code.
//
// Decided differences from mistral-tokenizer-js (handled in the wrapper, and
// asserted below):
// - The empty string with BOS: mistral-tokenizer-js returns [] (an early
//   return), we return [<s>] as SentencePiece, HF tokenizers and transformers
//   do; a generation prompt of "" then still has BOS to start from. Without
//   BOS both give [].
// Agreements that a careless wrapper would break (also asserted):
// - Text is text: a literal "<s>" or "</s>" in the input is encoded as its
//   characters (mistral-tokenizer-js, SentencePiece), not as the special token.
// - U+2581 "▁" in the input is SentencePiece's space mark: it encodes like a
//   space and decodes as " " (so those lines are left out of the round trip).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RetNetError } from '../src/errors.js';
import { ByteTokenizer, loadTokenizer, tokenizerFromJson, utf8ByteLength, type Tokenizer } from '../src/tokenizer/index.js';
import { buildMistralTokenizerJson, loadMistralTokenizerJs, writeMistralTokenizerJson } from './helpers/mistral-tokenizer-json.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..'); // dist/test → repo root
const nm = join(root, 'node_modules');
const dir = mkdtempSync(join(tmpdir(), 'retnet-tok-'));

// ---------------------------------------------------------------- text set

/** mulberry32: a small seeded generator, so the synthetic lines are fixed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Code point ranges of scripts and symbol blocks (no surrogates, no U+2581). */
const SCRIPTS: [number, number][] = [
  [0x61, 0x7a], [0x41, 0x5a], [0x30, 0x39], [0xc0, 0x17f], // Latin, digits, Latin-1/Extended-A
  [0x391, 0x3c9], [0x410, 0x44f], [0x5d0, 0x5ea], [0x621, 0x64a], // Greek, Cyrillic, Hebrew, Arabic
  [0x905, 0x939], [0x93e, 0x94d], [0xe01, 0xe3a], [0x10a0, 0x10ff], // Devanagari letters + signs, Thai, Georgian
  [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fff], [0xac00, 0xd7a3], // kana, CJK, Hangul
  [0x20000, 0x2a6df], [0x1d400, 0x1d7ff], [0x2200, 0x22ff], [0x2500, 0x257f], // CJK ext. B, math letters/symbols, box drawing
  [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f900, 0x1f9ff], [0x0e00, 0x0e7f], // emoji, Thai block (incl. unassigned)
];
const COMBINING = [0x300, 0x301, 0x302, 0x303, 0x308, 0x30a, 0x327, 0x328, 0x20dd, 0x93c, 0x94d, 0x64b, 0x651];
const EMOJI_SEQ = ['👨‍👩‍👧‍👦', '🏳️‍🌈', '👩🏽‍💻', '🧑🏿‍🤝‍🧑🏻', '❤️‍🔥', '🇯🇵', '🇺🇳', '👍🏾', '1️⃣', '🏴‍☠️', '🫶🏼', '🐈‍⬛'];
const SPACES = [' ', '  ', '   ', '    ', '        ', '\t', '\t\t', '\r', '\r\n', '\n', '\n\n', '\u00a0', '\u3000', '\u200b', '\u2009'];
const CODE = [
  'for (let i = 0; i < n; i++) { s += a[i] * b[i]; }', 'def f(x):\n    return x ** 2  # square',
  'SELECT id, name FROM users WHERE age >= 18;', '#include <stdio.h>\nint main(void) { return 0; }',
  'const re = /^\\s*([A-Za-z_$][\\w$]*)\\s*=/gu;', '{"key": [1, 2.5e-3, null, true], "\\u00e9": "\\n"}',
  '<s>not a special token</s>', '</s><s><unk>', 'if x != y && !(z || w) { return Err(e)?; }', '$ npm ci && npm test 2>&1 | tee log.txt',
];

function synthetic(count: number, seed: number): string[] {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const word = (): string => {
    const [lo, hi] = pick(SCRIPTS);
    let w = '';
    const n = 1 + Math.floor(r() * 8);
    for (let i = 0; i < n; i++) {
      w += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
      if (r() < 0.08) w += String.fromCodePoint(pick(COMBINING));
    }
    return w;
  };
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    let s = r() < 0.2 ? pick(SPACES) : '';
    const parts = 1 + Math.floor(r() * 12);
    for (let p = 0; p < parts; p++) {
      const u = r();
      if (u < 0.55) s += word();
      else if (u < 0.65) s += pick(EMOJI_SEQ);
      else if (u < 0.75) s += pick(CODE);
      else if (u < 0.8) s += String.fromCharCode(Math.floor(r() * 32)); // C0 controls incl. NUL, tab, CR, LF
      else if (u < 0.85) s += pick(['.', ',', '!', '?', '…', '“', '”', '«', '»', '—', '¿', '।', '。', '、', '،']);
      else s += String.fromCodePoint(0x21 + Math.floor(r() * 0x5e)); // ASCII punctuation/letters
      s += r() < 0.7 ? ' ' : pick(SPACES);
    }
    if (r() < 0.3) s = s.trimEnd();
    out.push(s);
  }
  return out;
}

const readIf = (p: string): string => { try { return readFileSync(p, 'utf8'); } catch { return ''; } };

function buildTextSet(): string[] {
  const seen = new Set<string>();
  const lines: string[] = [];
  // "" is left out: it is the one decided difference, tested on its own below
  const add = (s: string): boolean => {
    if (s.length === 0 || seen.has(s)) return false;
    seen.add(s); lines.push(s); return true;
  };
  // code: TypeScript's lib .d.ts, lines as they are (indentation, trailing spaces)
  for (const f of ['lib.es5.d.ts', 'lib.dom.d.ts']) {
    let n = 0;
    for (const l of readIf(join(nm, 'typescript', 'lib', f)).split('\n')) { if (n >= 3500) break; if (add(l)) n++; }
  }
  // prose in 13 languages: TypeScript's translated diagnostic messages
  const tsLib = join(nm, 'typescript', 'lib');
  for (const loc of readdirSync(tsLib).filter((d) => /^[a-z]{2}(-[a-z]{2})?$/.test(d)).sort()) {
    const text = readIf(join(tsLib, loc, 'diagnosticMessages.generated.json'));
    if (!text) continue;
    for (const m of Object.values(JSON.parse(text) as Record<string, string>).slice(0, 250)) add(m);
  }
  // Markdown: package READMEs
  for (const p of ['typescript/README.md', 'uvu/readme.md', 'fast-check/README.md', '@huggingface/tokenizers/README.md',
    'assemblyscript/README.md', 'bullmq/README.md', 'ioredis/README.md', 'piscina/README.md', 'hyparquet/README.md',
    'vega-lite/README.md', 'comlink/README.md', 'koffi/README.md', 'benchmark/README.md']) {
    for (const l of readIf(join(nm, p)).split('\n')) add(l);
  }
  // whole multi-line texts (CRLF files, paragraphs)
  add(readIf(join(nm, 'uvu', 'readme.md')).slice(0, 4000));
  add(readIf(join(nm, 'typescript', 'lib', 'lib.es5.d.ts')).slice(0, 4000).replaceAll('\n', '\r\n'));
  for (const l of synthetic(2500, 20261205)) add(l);
  return lines;
}

const lines = buildTextSet();
const tokFile = join(dir, 'model', 'tokenizer.json');
const state: { tok: Tokenizer | null; encoded: Int32Array[] } = { tok: null, encoded: [] };
const getTok = async (): Promise<Tokenizer> => {
  if (!state.tok) { await writeMistralTokenizerJson(tokFile); state.tok = await loadTokenizer(join(dir, 'model')); }
  return state.tok;
};

// ---------------------------------------------------------------- HF tokenizer

test('the Mistral tokenizer.json loads: 32000 ids, BOS <s> = 1, EOS </s> = 2', async () => {
  const tok = await getTok();
  assert.is(tok.kind, 'hf');
  assert.is(tok.vocabSize, 32000);
  assert.is(tok.bosId, 1);
  assert.is(tok.eosId, 2);
  assert.equal([...tok.encode('Hello world')], [1, 22557, 1526]);
  assert.equal([...tok.encode('Hello world', { addBos: false })], [22557, 1526]);
  // loadTokenizer takes the file itself too
  const again = await loadTokenizer(tokFile);
  assert.equal([...again.encode('Hello world')], [1, 22557, 1526]);
});

test(`identical ids to mistral-tokenizer-js on ${lines.length} lines (with and without BOS)`, async () => {
  assert.ok(lines.length >= 10_000, `text set has ${lines.length} lines`);
  const tok = await getTok();
  const m = await loadMistralTokenizerJs();
  const bad: string[] = [];
  let tokens = 0;
  for (const s of lines) {
    const ours = tok.encode(s);
    state.encoded.push(ours);
    tokens += ours.length;
    const ref = m.encode(s); // BOS first by default, like ours
    if (ours.length !== ref.length || ours.some((v, i) => v !== ref[i])) {
      bad.push(`${JSON.stringify(s.slice(0, 80))}: ours ${JSON.stringify([...ours].slice(0, 20))} ref ${JSON.stringify(ref.slice(0, 20))}`);
    }
  }
  // without BOS on a sample: the same ids less the first
  for (let i = 0; i < lines.length; i += 7) {
    const s = lines[i]!;
    const ours = [...tok.encode(s, { addBos: false })];
    const ref = m.encode(s, false);
    if (JSON.stringify(ours) !== JSON.stringify(ref)) bad.push(`(no BOS) ${JSON.stringify(s.slice(0, 80))}: ours ${JSON.stringify(ours.slice(0, 20))} ref ${JSON.stringify(ref.slice(0, 20))}`);
  }
  if (bad.length > 0) console.log(`${bad.length} mismatches, first ones:\n${bad.slice(0, 8).join('\n')}`);
  assert.is(bad.length, 0, `${bad.length} of ${lines.length} lines differ`);
  assert.ok(tokens > 100_000, `${tokens} tokens`);
});

test('long lines without a newline (cut before their "▁"s, over 256 characters): identical ids to mistral-tokenizer-js', async () => {
  const tok = await getTok();
  const m = await loadMistralTokenizerJs();
  const flat = lines.map((l) => l.replace(/[\r\n]+/g, ' '));
  const long: string[] = [];
  for (let i = 0; i + 40 <= flat.length && long.length < 60; i += 40 * 3) long.push(flat.slice(i, i + 40).join(i % 2 ? '  ' : ' '));
  long.push('hello world '.repeat(2000), ' \u2581x\u2581\u2581y '.repeat(300), 'a'.repeat(3000), '▁'.repeat(500) + 'b');
  let chars = 0;
  for (const s of long) {
    chars += s.length;
    const ours = [...tok.encode(s)], ref = m.encode(s);
    assert.ok(ours.length === ref.length && ours.every((v, i) => v === ref[i]), `${JSON.stringify(s.slice(0, 60))}… (${s.length} characters): ours ${JSON.stringify(ours.slice(0, 12))} ref ${JSON.stringify(ref.slice(0, 12))}`);
    if (!s.includes('\u2581')) assert.is(tok.decode(ours), s); // (a "▁" in the text decodes as a space, as SentencePiece's does)
  }
  assert.ok(long.length >= 60 && chars > 100_000, `${long.length} lines, ${chars} characters`);
});

test('the decided differences and agreements with mistral-tokenizer-js', async () => {
  const tok = await getTok();
  const m = await loadMistralTokenizerJs();
  // "" with BOS: [<s>] here, [] there (see the top of the file); without BOS both []
  assert.equal([...tok.encode('')], [1]);
  assert.equal(m.encode(''), []);
  assert.equal([...tok.encode('', { addBos: false })], []);
  assert.is(tok.decode(tok.encode('')), '');
  // a literal <s> / </s> is text
  const lit = '<s>[INST] hi [/INST]</s>';
  assert.equal([...tok.encode(lit)], m.encode(lit));
  assert.ok(![...tok.encode(lit)].slice(1).some((id) => id === 1 || id === 2));
  assert.is(tok.decode(tok.encode(lit)), lit);
  // U+2581 encodes like a space and decodes as one
  assert.equal([...tok.encode('a▁b')], [...tok.encode('a b')]);
  assert.equal([...tok.encode('a▁b')], m.encode('a▁b'));
  assert.is(tok.decode(tok.encode('a▁b')), 'a b');
});

test(`decode(encode(text)) = text on the same ${lines.length} lines`, async () => {
  const tok = await getTok();
  const bad: string[] = [];
  let skipped = 0;
  lines.forEach((s, i) => {
    if (s.includes('▁')) { skipped++; return; }
    const ids = state.encoded[i] ?? tok.encode(s);
    const back = tok.decode(ids);
    if (back !== s) bad.push(`${JSON.stringify(s.slice(0, 60))} → ${JSON.stringify(back.slice(0, 60))}`);
    const noBos = tok.decode(tok.encode(s, { addBos: false }));
    if (noBos !== s) bad.push(`(no BOS) ${JSON.stringify(s.slice(0, 60))} → ${JSON.stringify(noBos.slice(0, 60))}`);
  });
  if (bad.length > 0) console.log(bad.slice(0, 8).join('\n'));
  assert.is(bad.length, 0, `${bad.length} lines do not round trip`);
  assert.ok(skipped < 50, `${skipped} lines hold U+2581`);
  // a long multi-line document (the "\n" cut in encode) round trips and matches
  const doc = lines.slice(0, 3000).join('\n');
  const ids = tok.encode(doc);
  assert.is(tok.decode(ids), doc);
  const m = await loadMistralTokenizerJs();
  const short = lines.slice(0, 200).join('\n');
  assert.equal([...tok.encode(short)], m.encode(short));
});

test('streaming decode: the concatenated deltas equal decode(all ids)', async () => {
  const tok = await getTok();
  const check = (ids: ArrayLike<number>, what: string) => {
    const sd = tok.streamDecoder();
    let text = '';
    for (let i = 0; i < ids.length; i++) text += sd.push(ids[i]!);
    text += sd.flush();
    const want = tok.decode(ids);
    if (text !== want) assert.unreachable(`${what}: streamed ${JSON.stringify(text.slice(0, 80))} ≠ decoded ${JSON.stringify(want.slice(0, 80))}`);
  };
  // every line of the set (byte-fallback characters split over tokens, leading space, BOS)
  for (let i = 0; i < lines.length; i++) check(state.encoded[i] ?? tok.encode(lines[i]!), `line ${i}`);
  // the lines as one stream, with EOS + BOS between documents
  const joined: number[] = [];
  for (let i = 0; i < 500; i++) joined.push(...(state.encoded[i] ?? tok.encode(lines[i]!)), 2);
  check(joined, 'joined documents');
  // random id sequences: byte tokens (3..258, many invalid UTF-8 runs), specials, space pieces, anything
  const r = rng(7);
  for (let k = 0; k < 2000; k++) {
    const ids: number[] = [];
    const n = 1 + Math.floor(r() * 24);
    for (let i = 0; i < n; i++) {
      const u = r();
      ids.push(u < 0.45 ? 3 + Math.floor(r() * 256) : u < 0.55 ? Math.floor(r() * 3) : u < 0.65 ? [259, 260, 28705, 28723][Math.floor(r() * 4)]! : Math.floor(r() * 32000));
    }
    check(ids, `random ids ${JSON.stringify(ids)}`);
  }
  // a character split over byte tokens comes out whole, once complete
  const sd = tok.streamDecoder();
  const llama = [...tok.encode('🦙!', { addBos: false })]; // ▁ <0xF0> <0x9F> <0xA6> <0x99> !
  assert.is(llama.length, 6);
  const deltas = llama.map((id) => sd.push(id));
  assert.equal(deltas, ['', '', '', '', '🦙', '!']);
  assert.is(sd.flush(), '');
  // an unfinished character at the end of the stream: U+FFFD from flush
  const sd2 = tok.streamDecoder();
  assert.is(sd2.push(22557), 'Hello');
  assert.is(sd2.push(3 + 0xf0), '');
  assert.is(sd2.flush(), '\ufffd');
  assert.throws(() => sd2.push(32000), (e: unknown) => e instanceof RetNetError && e.code === 'E_INPUT');
});

test('streaming decode with a context (the prompt): context text + deltas = decode(context + ids) at every split', async () => {
  const tok = await getTok();
  // before: a fresh decoder dropped the first word's leading space ("Hello" + "Hello" → "HelloHello")
  const sd = tok.streamDecoder([1, 22557]);
  assert.is(sd.push(22557), ' Hello');
  assert.is(tok.streamDecoder([1]).push(22557), 'Hello', 'after BOS alone the text starts: no space');
  // every split point of some lines: the prompt is shown as decode(prompt); the stream continues it.
  // A split inside a character in byte-fallback pieces shows U+FFFD for it in the prompt; the stream
  // then gives that character whole, after the prompt's text up to it.
  const r = rng(11);
  let splits = 0, inside = 0;
  for (let n = 0; n < 300; n++) {
    const i = Math.floor(r() * lines.length);
    const ids = Array.from(state.encoded[i] ?? tok.encode(lines[i]!));
    const whole = tok.decode(ids);
    for (let k = 1; k < ids.length; k += 1 + Math.floor(r() * 3)) {
      const d = tok.streamDecoder(ids.slice(0, k));
      let text = '';
      for (let j = k; j < ids.length; j++) text += d.push(ids[j]!);
      text += d.flush();
      let shown = tok.decode(ids.slice(0, k));
      if (shown.endsWith('\ufffd') && !whole.startsWith(shown)) { // split inside a character
        let c = k; while (!whole.startsWith(tok.decode(ids.slice(0, c)))) c--;
        shown = tok.decode(ids.slice(0, c)); inside++;
      }
      if (shown + text !== whole) assert.unreachable(`line ${i} split at ${k}: ${JSON.stringify(shown.slice(-20))} + ${JSON.stringify(text.slice(0, 20))} ≠ ${JSON.stringify(whole.slice(0, 60))}`);
      splits++;
    }
  }
  assert.ok(splits > 1000 && inside > 10, `${splits} splits, ${inside} inside a character`);
  assert.throws(() => tok.streamDecoder([32000]), (e: unknown) => e instanceof RetNetError && e.code === 'E_INPUT');
  // the byte tokenizer: an unfinished character at the context's end is finished by the first bytes
  const bt = new ByteTokenizer();
  const b = bt.streamDecoder([0x61, 0xe4, 0xb8]);
  assert.is(b.push(0xad), '中');
  assert.is(bt.streamDecoder([0x61, 0xc3, 0xa9]).push(0x62), 'b');
});

test('decode: special tokens render as nothing, invalid bytes as U+FFFD, ids are checked', async () => {
  const tok = await getTok();
  assert.is(tok.decode([]), '');
  assert.is(tok.decode([1, 2, 0]), '');
  assert.is(tok.decode([1, 22557, 2, 1, 1526]), 'Hello world');
  assert.is(tok.decode(Int32Array.from([3 + 0xe4, 3 + 0xb8, 3 + 0xad])), '中');
  assert.is(tok.decode([3 + 0xe4, 3 + 0xb8]), '\ufffd');
  assert.is(tok.decode([3 + 0xff, 22557]), '\ufffd Hello');
  for (const bad of [[-1], [32000], [1.5], [NaN]]) {
    assert.throws(() => tok.decode(bad), (e: unknown) => e instanceof RetNetError && e.code === 'E_INPUT' && /outside the vocabulary/.test(e.message));
  }
  assert.throws(() => tok.encode(42 as unknown as string), (e: unknown) => e instanceof RetNetError && e.code === 'E_INPUT');
  assert.is(tok.byteLength('aé中🦙'), 1 + 2 + 3 + 4);
  assert.is(tok.byteLength('\ud800'), 3);
});

test('BOS/EOS: overridden by options (the model config), or from tokenizer_config.json', async () => {
  const json = await buildMistralTokenizerJson();
  const t = tokenizerFromJson(json, { bosId: 2, eosId: null });
  assert.is(t.bosId, 2);
  assert.is(t.eosId, null);
  assert.equal([...t.encode('Hello')], [2, 22557]);
  const none = tokenizerFromJson(json, { bosId: null });
  assert.equal([...none.encode('Hello')], [22557]);
  assert.equal([...none.encode('Hello', { addBos: true })], [22557]);
  for (const bad of [-1, 32000, 1.5, '1']) {
    assert.throws(() => tokenizerFromJson(json, { bosId: bad as number }), (e: unknown) => e instanceof RetNetError && e.code === 'E_OPTION' && /options\.bosId/.test(e.message));
  }
  // no post-processor: BOS from tokenizer_config.json when it asks for one; EOS from its eos_token
  const bare = { ...json, post_processor: null };
  assert.is(tokenizerFromJson(bare).bosId, null);
  const cfg = { add_bos_token: true, bos_token: { content: '<s>' }, eos_token: '<unk>' };
  const withCfg = tokenizerFromJson(bare, {}, 'x', cfg);
  assert.is(withCfg.bosId, 1);
  assert.is(withCfg.eosId, 0);
  const folder = join(dir, 'cfg');
  mkdirSync(folder);
  writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(bare));
  writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify(cfg));
  const loaded = await loadTokenizer(folder);
  assert.is(loaded.bosId, 1);
  assert.is(loaded.eosId, 0);
});

test('a missing or malformed tokenizer.json is refused with a clear error', async () => {
  const json = await buildMistralTokenizerJson();
  const refused = async (p: string, re: RegExp) => {
    try { await loadTokenizer(p); } catch (e) {
      assert.ok(e instanceof RetNetError, String(e));
      assert.is((e as RetNetError).code, 'E_WEIGHTS');
      assert.match((e as RetNetError).message, re);
      return;
    }
    assert.unreachable(`${p} was accepted`);
  };
  const put = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };
  await refused(join(dir, 'nope.json'), /nope\.json.*no such file/);
  const empty = join(dir, 'empty-folder');
  mkdirSync(empty);
  await refused(empty, /has no tokenizer\.json/);
  await refused(put('trunc.json', JSON.stringify(json).slice(0, 5000)), /trunc\.json.*not valid JSON/);
  await refused(put('array.json', '[1, 2]'), /not a tokenizer\.json: the top level is not a JSON object/);
  await refused(put('nomodel.json', '{"added_tokens": []}'), /no "model" object/);
  await refused(put('novocab.json', '{"model": {"type": "BPE", "merges": []}}'), /model\.vocab is missing/);
  await refused(put('nomerges.json', '{"model": {"type": "BPE", "vocab": {"a": 0}}}'), /model\.merges .* is missing/);
  await refused(put('badid.json', '{"model": {"type": "BPE", "vocab": {"a": -3}, "merges": []}}'), /token "a" has id -3/);
  await refused(put('type.json', '{"model": {"type": "Magic", "vocab": {"a": 0}}}'), /model type "Magic" is not supported/);
  await refused(put('added.json', JSON.stringify({ ...json, added_tokens: [{ id: 'x' }] })), /added_tokens entry/);
  await refused(put('norm.json', JSON.stringify({ ...json, normalizer: { type: 'Nope' } })), /@huggingface\/tokenizers refused it: Unknown Normalizer type: Nope/);
  assert.not.throws(() => tokenizerFromJson(json));
  try { await loadTokenizer(''); assert.unreachable('"" accepted'); } catch (e) { assert.is((e as RetNetError).code, 'E_OPTION'); }
});

// ---------------------------------------------------------------- byte tokenizer

test('ByteTokenizer: ids are the UTF-8 bytes, round trips, U+FFFD for invalid UTF-8, streaming', () => {
  const bt = new ByteTokenizer();
  assert.is(bt.kind, 'bytes');
  assert.is(bt.vocabSize, 256);
  assert.is(bt.bosId, null);
  assert.is(bt.eosId, null);
  assert.equal([...bt.encode('aé🦙', { addBos: true })], [0x61, 0xc3, 0xa9, 0xf0, 0x9f, 0xa6, 0x99]);
  let streamedAll = '';
  for (let i = 0; i < lines.length; i += 3) {
    const s = lines[i]!;
    const ids = bt.encode(s);
    assert.is(ids.length, utf8ByteLength(s));
    assert.is(bt.byteLength(s), ids.length);
    if (bt.decode(ids) !== s) assert.unreachable(`line ${i} does not round trip`);
    const sd = bt.streamDecoder();
    let t = '';
    for (const id of ids) t += sd.push(id);
    t += sd.flush();
    if (t !== s) assert.unreachable(`line ${i} does not stream back`);
    streamedAll += t;
  }
  assert.ok(streamedAll.length > 0);
  assert.is(bt.decode([0x61, 0xff, 0x62]), 'a\ufffdb');
  assert.is(bt.decode([0xe4, 0xb8]), '\ufffd');
  const sd = bt.streamDecoder();
  assert.is(sd.push(0xe4) + sd.push(0xb8), '');
  assert.is(sd.push(0xad), '中');
  assert.is(sd.push(0xf0), '');
  assert.is(sd.flush(), '\ufffd');
  assert.is(sd.push(0x41), 'A'); // a new stream after flush
  assert.throws(() => bt.decode([256]), (e: unknown) => e instanceof RetNetError && e.code === 'E_INPUT');
  assert.throws(() => sd.push(-1), (e: unknown) => e instanceof RetNetError && e.code === 'E_INPUT');
});

test('streaming decode: an invalid byte comes out as U+FFFD at once, only an unfinished character is held back (before: held until the next clean token, a run of them decoded again at every push)', async () => {
  const tok = await getTok();
  const B = (b: number) => 3 + b; // Mistral's byte-fallback piece <0xNN>
  const d = tok.streamDecoder([1, 22557]); // "Hello"
  assert.is(d.push(B(0x80)), '\ufffd', 'a lone continuation byte can never become a character');
  assert.is(d.push(B(0x80)), '\ufffd');
  assert.is(d.push(B(0xe6)), '', 'a lead byte: held');
  assert.is(d.push(B(0x97)), '', 'lead + continuation: held');
  assert.is(d.push(B(0xa5)), '日');
  assert.is(d.push(B(0xe6)), '');
  assert.is(d.push(22557), '\ufffd Hello', 'the held lead byte turns out invalid');
  assert.is(d.push(29137), '\ufffd', 'a literal U+FFFD token comes out at once');
  assert.is(d.flush(), '');
  // a special token between the bytes of a character renders as nothing: the character stays whole
  const s = tok.streamDecoder([1]);
  assert.is(s.push(B(0xc3)) + s.push(2) + s.push(B(0xa9)), 'é');
  assert.is(tok.decode([1, B(0xc3), 2, B(0xa9)]), 'é');
  // a context ending in an invalid byte then a lead byte: the invalid byte counts as shown, the lead is pending
  const c = tok.streamDecoder([1, 22557, B(0x80), B(0xe6)]);
  assert.is(c.push(B(0x97)) + c.push(B(0xa5)), '日');
  // a long run of invalid bytes streams in linear time (before: 4000 took ~1 s here, each push decoding the run)
  const r = tok.streamDecoder([1]);
  const t0 = performance.now();
  let out = '';
  for (let i = 0; i < 20000; i++) out += r.push(B(0x80));
  assert.is(out, '\ufffd'.repeat(20000));
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `20000 invalid bytes took ${ms.toFixed(0)} ms`);
});

/** A GPT-2-style byte-level tokenizer.json: one token per byte (GPT-2's bytes_to_unicode), plus pieces of
 *  several bytes that hold parts of characters, a special and a non-special added token. */
function byteLevelJson(decoder: unknown = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }): { json: unknown; piece: (bytes: number[]) => string } {
  const printable = [...Array.from({ length: 94 }, (_, i) => 33 + i), ...Array.from({ length: 12 }, (_, i) => 161 + i), ...Array.from({ length: 82 }, (_, i) => 174 + i)];
  const chars = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) chars[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  const piece = (bytes: number[]) => bytes.map((b) => chars[b]).join('');
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => { vocab[c] = b; });
  // ' 日' ' 日' split after the lead byte, the rest of 日 + 'a', '日本' (whole), an emoji's tail + '!',
  // a BOM, and a piece with a character outside the table ('x y': the library's decoder makes it 0x00)
  const extraPieces = [[0x20, 0xe6], [0x97, 0xa5, 0x61], [0xe6, 0x97, 0xa5, 0xe6, 0x9c, 0xac], [0x98, 0x80, 0x21], [0xef, 0xbb, 0xbf], [0xf0, 0x9f]];
  extraPieces.forEach((bs, i) => { vocab[piece(bs)] = 256 + i; });
  vocab['x y'] = 262;
  return {
    json: {
      version: '1.0', normalizer: null, post_processor: null,
      added_tokens: [{ id: 263, content: '<|endoftext|>', special: true }, { id: 264, content: '<|tab|>', special: false }],
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, decoder,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
    },
    piece,
  };
}

test('streaming decode, byte-level (GPT-2 style) tokenizer: the deltas equal decode(all ids), invalid bytes come out at once, only an unfinished character is held (before: every trailing U+FFFD held, a run decoded again at every push)', () => {
  const tok = tokenizerFromJson(byteLevelJson().json, { bosId: null, eosId: 263 });
  assert.is(tok.vocabSize, 265);
  const stream = (ids: number[], context?: number[]) => {
    const sd = tok.streamDecoder(context);
    const pieces = ids.map((id) => sd.push(id));
    return { pieces, flush: sd.flush() };
  };
  // fuzz: random sequences over every id (bytes, multi-byte pieces, the specials), in pieces = decode
  const r = rng(11);
  for (let k = 0; k < 4000; k++) {
    const ids: number[] = [];
    const n = 1 + Math.floor(r() * 20);
    for (let i = 0; i < n; i++) {
      const u = r();
      ids.push(u < 0.35 ? 0x80 + Math.floor(r() * 0x80) : u < 0.6 ? 256 + Math.floor(r() * 9) : Math.floor(r() * 265));
    }
    const { pieces, flush } = stream(ids);
    const text = pieces.join('') + flush, want = tok.decode(ids);
    if (text !== want) assert.unreachable(`ids ${JSON.stringify(ids)}: streamed ${JSON.stringify(text)} ≠ decoded ${JSON.stringify(want)}`);
    // and after a context that ends in a complete character: decode(context + ids) = decode(context) + pieces
    const ctx = [0x48, 0x69, 257]; // 'Hi', then 日's last bytes + 'a' (invalid there: U+FFFD U+FFFD 'a')
    const withCtx = stream(ids, ctx);
    const wantCtx = tok.decode([...ctx, ...ids]).slice(tok.decode(ctx).length);
    if (withCtx.pieces.join('') + withCtx.flush !== wantCtx) assert.unreachable(`context, ids ${JSON.stringify(ids)}`);
  }
  // an invalid byte comes out at once; a character's lead byte (alone or with a space) is held
  assert.equal(stream([0x80, 0x80, 256, 0x97, 0xa5, 0xe6, 0x61, 258]).pieces, ['\ufffd', '\ufffd', ' ', '', '日', '', '\ufffda', '日本']);
  assert.equal(stream([256, 257, 261, 259]).pieces, [' ', '日a', '', '😀!']);
  assert.equal(stream([0xe6, 0x97]), { pieces: ['', ''], flush: '\ufffd' });
  assert.equal(stream([0xe6, 263, 0x97, 264, 0xa5]).pieces, ['', '', '', '\ufffd<|tab|>', '\ufffd'], 'a special renders as nothing, a non-special added token as its bytes');
  assert.is(tok.decode([0xe6, 263, 0x97, 264, 0xa5]), '\ufffd<|tab|>\ufffd');
  assert.equal(stream([260, 0x41, 262]).pieces, ['\ufeff', 'A', 'x\u0000y'], 'a BOM is kept; a character outside the table is byte 0, as decode has it');
  assert.is(tok.decode([260, 0x41, 262]), '\ufeffAx\u0000y');
  // a context ending in an unfinished character: it stays pending; one ending in an invalid byte: shown
  assert.equal(stream([0x97, 0xa5], [0x48, 0xe6]).pieces, ['', '日']);
  assert.equal(stream([0x97, 0xa5], [0x48, 261, 263]).pieces, ['', '\u{1F5E5}'], 'a 4-byte lead + 1 continuation, a special after');
  assert.equal(stream([0x61], [0x48, 0xe6, 0x97, 0xa5, 0x80]).pieces, ['a']);
  // bad ids are refused
  assert.throws(() => tok.streamDecoder().push(265), (e: unknown) => e instanceof RetNetError && e.code === 'E_INPUT');
  // a long run of invalid bytes streams in linear time
  const sd = tok.streamDecoder([0x48]);
  const t0 = performance.now();
  let out = '';
  for (let i = 0; i < 20000; i++) out += sd.push(0x80 + (i % 64));
  const ms = performance.now() - t0;
  assert.is(out, '\ufffd'.repeat(20000));
  assert.ok(ms < 5000, `20000 invalid bytes took ${ms.toFixed(0)} ms`);
});

test('streaming decode, a Sequence decoder holding ByteLevel (the window decoder): deltas still equal decode(all ids)', () => {
  const tok = tokenizerFromJson(byteLevelJson({ type: 'Sequence', decoders: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] }).json, { bosId: null });
  const r = rng(12);
  for (let k = 0; k < 500; k++) {
    const ids = Array.from({ length: 1 + Math.floor(r() * 12) }, () => (r() < 0.5 ? 0x20 + Math.floor(r() * 0x60) : 0xc0 + Math.floor(r() * 0x40)));
    const sd = tok.streamDecoder();
    const text = ids.map((id) => sd.push(id)).join('') + sd.flush();
    if (text !== tok.decode(ids)) assert.unreachable(`ids ${JSON.stringify(ids)}: ${JSON.stringify(text)} ≠ ${JSON.stringify(tok.decode(ids))}`);
  }
});

test.run();
