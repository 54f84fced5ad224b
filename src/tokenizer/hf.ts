// A Hugging Face tokenizer.json (e.g. Mistral's 32k SentencePiece BPE with byte
// fallback, as the fla-hub RetNets ship it), run by @huggingface/tokenizers.
//
// Text is text: a literal "<s>" or "</s>" in the input is encoded as its
// characters, never as the special token (SentencePiece's behaviour, and
// mistral-tokenizer-js's); only `addBos` puts BOS in. The added tokens are
// therefore kept out of the library's added-token splitter; they still name
// ids for BOS/EOS and decode as nothing (they are special).
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { RetNetError, errors, quote } from '../errors.js';
import { checkId, checkIds, checkText, utf8ByteLength } from './bytes.js';
import { folderFileState } from '../model/folder-file.js';
import type { EncodeOptions, StreamDecoder, Tokenizer, TokenizerOptions } from './types.js';

/** A tokenizer file that is missing, unreadable or malformed. There is no
 *  tokenizer error code yet: E_WEIGHTS ("model files missing or unusable"). */
const tokenizerError = (file: string, message: string, cause?: unknown) =>
  new RetNetError('E_WEIGHTS', `tokenizer ${quote(file)}: ${message}`, cause === undefined ? undefined : { cause });

const MAX_VOCAB = 1 << 24;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

interface AddedToken { id: number; content: string; special: boolean }

/** The parts of the library's tokenizer that encode/decode below call. */
interface HfParts {
  normalizer: ((text: string) => string) | null;
  pre_tokenizer: ((text: string, opts: { section_index: number }) => string[]) | null;
  model: ((pieces: string[]) => string[]) & { tokens_to_ids: Map<string, number>; unk_token_id?: number; end_of_word_suffix?: string };
  decoder: ((tokens: string[]) => string) | null;
}

/** A special token's content → id, from tokenizer_config.json's `bos_token`
 *  style entries ("<s>" or { content: "<s>" }). */
function configTokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

export class HfTokenizerImpl implements Tokenizer {
  readonly kind = 'hf' as const;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** token string by id ('' for an id no token has) */
  private readonly pieces: string[];
  /** ids that decode as nothing (the added special tokens) */
  private readonly special: Uint8Array;
  private readonly hf: HfParts;
  /** GPT-2-style byte-level pieces: one character per byte (the ByteLevel decoder) */
  private readonly byteLevel: boolean;
  /** The decoder is ByteLevel alone: the text of ids is the UTF-8 decoding of their pieces' bytes (see
   *  idBytes), so a stream decodes bytes (ByteStreamDecoder). False for a Sequence holding ByteLevel. */
  private readonly byteDecoder: boolean;
  /** idBytes by id, filled as ids come */
  private readonly bytesById: (Uint8Array | undefined)[] = [];
  /** "\n" can be cut out before BPE: no merge involves it (see encodeText). */
  private readonly splitLines: boolean;
  /** Words can be cut before a "▁" that follows another character (see the constructor). */
  private readonly splitMeta: boolean;
  /** A BPE model with neither byte fallback nor an unknown token: the library drops a character its
   *  vocabulary lacks, without a word. The characters it can encode (its one-character tokens, with any
   *  continuing-subword prefix / end-of-word suffix), checked before encoding; null for other models. */
  private readonly alphabet: Set<string> | null;

  constructor(json: unknown, source: string, opts: TokenizerOptions = {}, config: unknown = null, badEos?: BadEos) {
    if (!isObject(json)) throw tokenizerError(source, 'not a tokenizer.json: the top level is not a JSON object');
    const model = json.model;
    if (!isObject(model)) throw tokenizerError(source, 'not a tokenizer.json: no "model" object');
    if (typeof model.type === 'string' && !['BPE', 'WordPiece', 'Unigram'].includes(model.type)) {
      throw tokenizerError(source, `model type ${quote(model.type)} is not supported (BPE, WordPiece, Unigram)`);
    }
    // without a type the library guesses the model from its keys (before: the checks below, keyed on the type,
    // were skipped, and characters vanished from the text without a word): the library's own inference where it is one of the three (an array vocabulary: Unigram; a continuing-subword
    // prefix and an unknown token: BPE with merges, else WordPiece); its last guess, a plain lookup, is refused
    const mtype = typeof model.type === 'string' ? model.type : Array.isArray(model.vocab) ? 'Unigram'
      : Object.hasOwn(model, 'continuing_subword_prefix') && Object.hasOwn(model, 'unk_token') ? (Object.hasOwn(model, 'merges') ? 'BPE' : 'WordPiece') : null;
    if (mtype === null) throw tokenizerError(source, 'model.type is missing and its keys do not say which model it is: name it (BPE, WordPiece or Unigram)');
    const vocabEntries: [string, number][] = [];
    if (isObject(model.vocab)) {
      for (const [tok, id] of Object.entries(model.vocab)) vocabEntries.push([tok, id as number]);
    } else if (Array.isArray(model.vocab)) { // Unigram: [[piece, score], …], id = row
      model.vocab.forEach((e, i) => vocabEntries.push([Array.isArray(e) ? e[0] : e, i]));
    } else {
      throw tokenizerError(source, 'model.vocab is missing or not an object');
    }
    if (vocabEntries.length === 0) throw tokenizerError(source, 'model.vocab is empty');
    if (mtype === 'BPE' && !Array.isArray(model.merges)) throw tokenizerError(source, 'model.merges (a BPE model) is missing or not an array');
    const added: AddedToken[] = [];
    if (json.added_tokens !== undefined && json.added_tokens !== null) {
      if (!Array.isArray(json.added_tokens)) throw tokenizerError(source, 'added_tokens is not an array');
      for (const t of json.added_tokens) {
        if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') {
          throw tokenizerError(source, 'an added_tokens entry lacks a string "content" or a numeric "id"');
        }
        added.push({ id: t.id, content: t.content, special: t.special === true });
      }
    }
    let size = 0;
    for (const [tok, id] of [...vocabEntries, ...added.map((a) => [a.content, a.id] as const)]) {
      if (typeof tok !== 'string' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) {
        throw tokenizerError(source, `token ${quote(String(tok))} has id ${String(id)}; ids must be integers in [0, ${MAX_VOCAB})`);
      }
      size = Math.max(size, id + 1);
    }
    this.vocabSize = size;
    this.pieces = new Array<string>(size).fill('');
    for (const [tok, id] of vocabEntries) this.pieces[id] = tok;
    this.special = new Uint8Array(size);
    for (const a of added) { this.pieces[a.id] = a.content; if (a.special) this.special[a.id] = 1; }

    // The library's tokenizer without added tokens (text is text, see top).
    const stripped: Json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json, model: { ...model, type: mtype }, added_tokens: [] };
    try {
      this.hf = new HfTokenizer(stripped, { clean_up_tokenization_spaces: false }) as unknown as HfParts;
    } catch (e) {
      throw tokenizerError(source, `@huggingface/tokenizers refused it: ${e instanceof Error ? e.message : String(e)}`, e);
    }
    const isByteLevel = (d: unknown): boolean => isObject(d) && (d.type === 'ByteLevel' || (d.type === 'Sequence' && Array.isArray(d.decoders) && d.decoders.some(isByteLevel)));
    this.byteLevel = isByteLevel(json.decoder);
    this.byteDecoder = isObject(json.decoder) && json.decoder.type === 'ByteLevel';
    this.alphabet = null;
    if (mtype === 'BPE' && model.byte_fallback !== true && (typeof model.unk_token !== 'string' || this.hf.model.unk_token_id === undefined)) {
      const prefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '';
      const suffix = typeof model.end_of_word_suffix === 'string' ? model.end_of_word_suffix : '';
      const chars = new Set<string>();
      for (const [tok] of vocabEntries) {
        let t = tok;
        if (prefix && t.startsWith(prefix) && t.length > prefix.length) t = t.slice(prefix.length);
        if (suffix && t.endsWith(suffix) && t.length > suffix.length) t = t.slice(0, -suffix.length);
        if ([...t].length === 1) chars.add(t);
      }
      this.alphabet = chars;
    }
    this.splitLines = mtype === 'BPE' && !this.pieces.some((p) => p.includes('\n'))
      && (model.merges as unknown[]).every((m) => !(Array.isArray(m) ? m.join(' ') : String(m)).includes('\n'));
    // A word can also be cut before each "▁" that follows another character when no piece (nor merge result) has
    // "▁" after another character — SentencePiece's BPE, whose "▁" only begins a piece: no merge can join the two
    // sides, so the pieces are the same. Without it a long line with no newline reached the BPE as one word, its
    // memory and time superlinear (3 MB of text: 59 s and 1.4 GB; a 10 MB one would exhaust the heap).
    const joinsAcross = (t: string) => { for (let i = 1; i < t.length; i++) if (t[i] === META && t[i - 1] !== META) return true; return false; };
    // (not with ignore_merges: a cut word's pieces would be looked up whole; nor dropout, nor any word prefix/suffix)
    this.splitMeta = mtype === 'BPE' && model.ignore_merges !== true && !(typeof model.dropout === 'number' && model.dropout > 0)
      && !(typeof model.continuing_subword_prefix === 'string' && model.continuing_subword_prefix)
      && !(typeof model.continuing_subword_suffix === 'string' && model.continuing_subword_suffix)
      && !(typeof model.end_of_word_suffix === 'string' && model.end_of_word_suffix)
      && !this.pieces.some(joinsAcross) && (model.merges as unknown[]).every((m) => !joinsAcross(Array.isArray(m) ? m.join('') : String(m).replace(' ', '')));

    const idOf = (name: string | null): number | null => {
      if (name === null) return null;
      const a = added.find((t) => t.content === name);
      if (a) return a.id;
      const v = this.hf.model.tokens_to_ids.get(name);
      return v === undefined ? null : v;
    };
    const cfg = isObject(config) ? config : {};
    // BOS as transformers adds it: tokenizer_config.json's add_bos_token where it says (a Llama-class
    // fast tokenizer rebuilds its template from it), else the tokenizer.json template's first special token
    const cfgBos = cfg.add_bos_token === true ? idOf(configTokenName(cfg.bos_token)) : null;
    this.bosId = opts.bosId !== undefined ? this.checkOption('bosId', opts.bosId)
      : cfg.add_bos_token === false ? null
      : cfg.add_bos_token === true ? cfgBos ?? templateBos(json.post_processor, idOf)
      : templateBos(json.post_processor, idOf);
    // an EOS from a model folder's config.json beyond the tokenizer's ids: that file's error, not an option's
    if (badEos && typeof opts.eosId === 'number' && Number.isInteger(opts.eosId) && opts.eosId >= this.vocabSize) throw badEos(this.vocabSize);
    this.eosId = opts.eosId !== undefined ? this.checkOption('eosId', opts.eosId)
      : idOf(configTokenName(cfg.eos_token)) ?? firstKnown(added, ['</s>', '<|endoftext|>', '<|end_of_text|>', '<eos>']);
  }

  private checkOption(name: string, v: number | null): number | null {
    if (v === null) return null;
    if (!Number.isInteger(v) || v < 0 || v >= this.vocabSize) throw errors.option(name, `null or an integer in [0, ${this.vocabSize})`, v);
    return v;
  }

  encode(text: string, opts: EncodeOptions = {}): Int32Array {
    checkText(text);
    const ids = this.encodeText(text);
    const bos = (opts.addBos ?? true) && this.bosId !== null;
    const out = new Int32Array(ids.length + (bos ? 1 : 0));
    if (bos) out[0] = this.bosId!;
    out.set(ids, bos ? 1 : 0);
    return out;
  }

  /** normalizer → pre-tokenizer → model, as the library's encode does with no
   *  added tokens. With no pre-tokenizer a BPE model sees the whole text as
   *  one word; when no merge and no token involves "\n" (Mistral: a newline is
   *  always the byte token <0x0A>), every "\n" is cut out as a word of its own
   *  first: the same ids (no merge crosses it), the library's per-word cache
   *  works on lines, and a long document costs linear memory per line. */
  private encodeText(text: string): number[] {
    if (text.length === 0) return [];
    const hf = this.hf;
    const norm = hf.normalizer ? hf.normalizer(text) : text;
    if (norm.length === 0) return [];
    let words = hf.pre_tokenizer ? hf.pre_tokenizer(norm, { section_index: 0 }) : [norm];
    if (this.alphabet) {
      for (const w of words) for (const ch of w) {
        if (!this.alphabet.has(ch)) throw errors.input(`text has the character ${quote(ch)} (U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}) that the tokenizer cannot encode (its BPE has no byte fallback and no unknown token)`);
      }
    }
    if (this.splitLines) words = words.flatMap((w) => (w.includes('\n') ? w.split(/(\n)/).filter((s) => s.length > 0) : [w]));
    if (this.splitMeta) words = words.flatMap((w) => (w.length > META_CUT_FROM ? cutBeforeMeta(w) : [w]));
    const toks = hf.model(words);
    const map = hf.model.tokens_to_ids, unk = hf.model.unk_token_id;
    const ids = new Array<number>(toks.length);
    for (let i = 0; i < toks.length; i++) {
      const id = map.get(toks[i]!) ?? unk;
      if (id === undefined) throw errors.input(`text has a piece ${quote(toks[i]!)} that the tokenizer cannot encode (no unknown token)`);
      ids[i] = id;
    }
    return ids;
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, this.vocabSize);
    return this.decodeRange(ids, 0, ids.length);
  }

  /** Whether `id` is a byte-fallback piece (`<0xE9>`): one byte of a character that may span several. */
  isBytePiece(id: number): boolean { return /^<0x[0-9A-F]{2}>$/.test(this.pieces[id] ?? ''); }

  /** Tokens at the end of ids[from, to) that hold an unfinished UTF-8 character: byte-fallback pieces whose
   *  bytes are a lead byte and the continuation bytes it may still take (the only text that later tokens
   *  can change). 0: none — a U+FFFD at the end of the text is final (an invalid byte, a literal U+FFFD).
   *  null: not known (a byte-level tokenizer whose ByteLevel decoder is in a Sequence: its pieces may hold
   *  parts of characters; one with a ByteLevel decoder alone streams bytes, see ByteStreamDecoder). */
  pendingTokens(ids: ArrayLike<number>, from: number, to: number): number | null {
    if (this.byteLevel) return null;
    const bytes: number[] = [];
    for (let i = to - 1; i >= from && bytes.length < 3; i--) {
      const id = ids[i]!;
      if (this.special[id]) continue; // renders as nothing: the bytes around it are one run
      if (!this.isBytePiece(id)) break;
      bytes.unshift(parseInt(this.pieces[id]!.slice(3, 5), 16));
      // a streaming TextDecoder gives nothing for bytes that are exactly an unfinished character
      if (bytes[0]! >= 0xc2 && new TextDecoder().decode(Uint8Array.from(bytes), { stream: true }) === '') return to - i;
    }
    return 0;
  }

  /** The bytes that a ByteLevel decoder makes of token `id`'s piece: GPT-2's byte↔unicode table read
   *  backwards, one byte per character (a character outside the table is 0, as the library's decoder has
   *  it); none for a special token (rendered as nothing). The decoded text of ids is the UTF-8 decoding
   *  (U+FFFD for each invalid sequence, a BOM kept) of their bytes joined. */
  idBytes(id: number): Uint8Array {
    let b = this.bytesById[id];
    if (b === undefined) {
      b = this.special[id] ? new Uint8Array(0) : Uint8Array.from([...this.pieces[id]!], (c) => UNICODE_TO_BYTE.get(c) ?? 0);
      this.bytesById[id] = b;
    }
    return b;
  }

  /** The UTF-8 bytes of the text that token `id` stands for at the start of a text: 1 for a byte-fallback
   *  piece; one per character of a byte-level piece (GPT-2's ByteLevel maps each byte to one character,
   *  so a piece may be part of a character); else its decoded text's length (a SentencePiece word token's
   *  leading space, added by the normalizer, is not in the text). */
  tokenBytes(id: number): number {
    if (this.special[id]) return 0;
    if (this.isBytePiece(id)) return 1;
    if (this.byteLevel) return [...(this.pieces[id] ?? '')].length;
    return utf8ByteLength(this.decodeRange([id], 0, 1));
  }

  /** Text of ids[from, to): special tokens left out, then the tokenizer.json's decoder. */
  decodeRange(ids: ArrayLike<number>, from: number, to: number): string {
    const toks: string[] = [];
    for (let i = from; i < to; i++) { const id = ids[i]!; if (this.special[id] === 0) toks.push(this.pieces[id]!); }
    if (toks.length === 0) return '';
    let text = this.hf.decoder ? this.hf.decoder(toks) : toks.join('');
    const eow = this.hf.model.end_of_word_suffix;
    if (this.hf.decoder && eow) text = text.replaceAll(eow, ' ');
    return text;
  }

  streamDecoder(context?: ArrayLike<number>): StreamDecoder {
    if (context !== undefined) checkIds(context, this.vocabSize);
    return this.byteDecoder ? new ByteStreamDecoder(this, context) : new WindowStreamDecoder(this, context);
  }

  byteLength(text: string): number {
    checkText(text);
    return utf8ByteLength(text);
  }
}

/** BOS: the special token that the post-processor's single-sequence template
 *  puts before the text ("<s> $A" → <s>); also inside a Sequence post-processor. */
function templateBos(pp: unknown, idOf: (name: string | null) => number | null): number | null {
  if (!isObject(pp)) return null;
  if (pp.type === 'Sequence' && Array.isArray(pp.processors)) {
    for (const p of pp.processors) { const b = templateBos(p, idOf); if (b !== null) return b; }
    return null;
  }
  if (pp.type === 'TemplateProcessing' && Array.isArray(pp.single)) {
    for (const item of pp.single) {
      if (!isObject(item)) return null;
      if ('Sequence' in item) return null;
      const st = item.SpecialToken;
      if (isObject(st) && typeof st.id === 'string') {
        const spec = isObject(pp.special_tokens) ? pp.special_tokens[st.id] : undefined;
        if (isObject(spec) && Array.isArray(spec.ids) && Number.isInteger(spec.ids[0])) return spec.ids[0] as number;
        return idOf(st.id);
      }
    }
    return null;
  }
  if ((pp.type === 'RobertaProcessing' || pp.type === 'BertProcessing') && Array.isArray(pp.cls) && Number.isInteger(pp.cls[1])) {
    return pp.cls[1] as number;
  }
  return null;
}

function firstKnown(added: AddedToken[], names: string[]): number | null {
  for (const n of names) { const a = added.find((t) => t.content === n); if (a) return a.id; }
  return null;
}

/** Streaming by windows (the text-generation-inference way): the delta of a
 *  push is decode(ids[prefix:]) minus decode(ids[prefix:read]), given out only
 *  when it does not end in U+FFFD (an incomplete UTF-8 sequence from byte
 *  tokens). Both windows start at the same token, so a leading-space strip
 *  applies to both alike, and from the stream's second emission on the window
 *  starts at a token that rendered text, so the strip never reaches past it. */
/** Tokens of a stream decoder's context kept as the start of its window (a decoder's state reaches
 *  back one token for a leading space, up to 4 for one character in byte-fallback pieces). */
const CONTEXT_TOKENS = 8;

class WindowStreamDecoder implements StreamDecoder {
  private ids: number[] = [];
  private prefix = 0;
  private read = 0;
  constructor(private readonly tok: HfTokenizerImpl, context?: ArrayLike<number>) {
    if (context === undefined || context.length === 0) return;
    // the context's last tokens are the window's start: what comes after them is decoded as their
    // continuation. Its tokens of an unfinished character (byte-fallback pieces) stay pending.
    const m = Math.min(CONTEXT_TOKENS, context.length), from = context.length - m;
    this.ids = Array.from({ length: m }, (_, i) => context[from + i]!);
    let read = this.ids.length;
    const pending = tok.pendingTokens(this.ids, 0, read);
    if (pending !== null) {
      // byte-fallback pieces: only an unfinished character at the end is pending (before: trailing invalid
      // bytes were too, and the stream gave their U+FFFDs a second time after the prompt's)
      read -= pending;
    } else if (tok.decodeRange(this.ids, 0, read).endsWith('\uFFFD')) {
      while (read > 0 && this.ids.length - read < 4 && tok.isBytePiece(this.ids[read - 1]!)) {
        read--;
        if (!tok.decodeRange(this.ids, 0, read).endsWith('\uFFFD')) break; // the last whole character
      }
      // a literal U+FFFD in the text, or no shorter clean end: everything counts as shown
      if (read === this.ids.length || tok.decodeRange(this.ids, 0, read).endsWith('\uFFFD')) read = this.ids.length;
    }
    this.read = read;
  }

  push(id: number): string {
    checkId(id, this.tok.vocabSize);
    this.ids.push(id);
    const prev = this.tok.decodeRange(this.ids, this.prefix, this.read);
    const next = this.tok.decodeRange(this.ids, this.prefix, this.ids.length);
    let end = this.ids.length;
    let text = next;
    if (next.endsWith('\uFFFD')) {
      // only an unfinished character (its ≤ 3 byte pieces) is held back; a U+FFFD that later tokens cannot
      // change (an invalid byte, a literal U+FFFD) comes out now (before: held while the text ended in
      // U+FFFD, so a run of invalid bytes came out only at the next clean token, each push decoding the
      // whole growing run again: quadratic)
      const pending = this.tok.pendingTokens(this.ids, this.read, end);
      if (pending === null) return '';
      if (pending > 0) { end -= pending; text = this.tok.decodeRange(this.ids, this.prefix, end); }
    }
    if (text.length <= prev.length || !text.startsWith(prev)) return '';
    this.prefix = this.read;
    this.read = end;
    if (this.prefix > 64) { this.ids = this.ids.slice(this.prefix); this.read -= this.prefix; this.prefix = 0; }
    return text.slice(prev.length);
  }

  flush(): string {
    const prev = this.tok.decodeRange(this.ids, this.prefix, this.read);
    const next = this.tok.decodeRange(this.ids, this.prefix, this.ids.length);
    this.ids = []; this.prefix = 0; this.read = 0;
    return next.startsWith(prev) ? next.slice(prev.length) : '';
  }
}

/** GPT-2's bytes_to_unicode, read backwards: the character a byte-level piece has for each byte. Bytes
 *  that are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') are themselves; the other 68, in order, are
 *  U+0100 on. */
const UNICODE_TO_BYTE: ReadonlyMap<string, number> = (() => {
  const m = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    m.set(String.fromCharCode(printable ? b : 256 + extra++), b);
  }
  return m;
})();

/** Streaming for a ByteLevel decoder (GPT-2 style): the pieces' bytes through one streaming UTF-8
 *  decoder, which gives every complete character and every invalid byte (as U+FFFD) at once and holds
 *  back only an unfinished character (a lead byte and the ≤ 2 continuation bytes it may still take).
 *  Each push costs its token's bytes (before: the window decoder held back any trailing U+FFFD, so a run
 *  of invalid bytes printed nothing until it ended and each push decoded the whole run again: quadratic);
 *  the deltas and flush() are exactly decode(all ids), as one-shot and streaming UTF-8 decoding agree. */
class ByteStreamDecoder implements StreamDecoder {
  private dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  constructor(private readonly tok: HfTokenizerImpl, context?: ArrayLike<number>) {
    if (context === undefined || context.length === 0) return;
    // the context counts as shown but its unfinished character stays pending. The decoder's state after
    // a text is that after its last 3 bytes (an unfinished character starts at a lead byte no more than
    // 3 bytes from the end, and decoding from any earlier byte agrees from the first non-continuation
    // byte on), so those are fed and what they give is dropped.
    const tail: number[] = [];
    for (let i = context.length - 1; i >= 0 && tail.length < 3; i--) {
      const b = tok.idBytes(context[i]!);
      for (let j = b.length - 1; j >= 0 && tail.length < 3; j--) tail.unshift(b[j]!);
    }
    this.dec.decode(Uint8Array.from(tail), { stream: true });
  }

  push(id: number): string {
    checkId(id, this.tok.vocabSize);
    return this.dec.decode(this.tok.idBytes(id), { stream: true });
  }

  flush(): string {
    return this.dec.decode(); // ends the stream (an unfinished character → U+FFFD) and starts a new one
  }
}

/** Reads and parses a JSON file; a missing file or bad JSON → a tokenizer error. */
function readJson(file: string, named = false): unknown {
  // a FIFO would block the read forever; a broken link is named as one (folder-file.ts). A file the caller
  // named itself (`named`: loadTokenizer('/dev/stdin')) may be a pipe or a device; a model folder's may not
  const state = folderFileState(file);
  if (state === 'absent') throw tokenizerError(file, 'no such file');
  if (state !== 'file' && !(named && state.special)) throw tokenizerError(file, state.why);
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw tokenizerError(file, code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(e)})`, e);
  }
  try { return JSON.parse(text); } catch (e) {
    throw tokenizerError(file, `not valid JSON (${e instanceof Error ? e.message : String(e)})`, e);
  }
}

/** The error for an `eosId` option at or beyond the tokenizer's ids (given its vocabulary size), where
 *  the id is not the caller's own option (a model folder's config.json). */
type BadEos = (tokenizerVocab: number) => Error;

/** Loads a Hugging Face tokenizer: `path` is a tokenizer.json or a folder
 *  holding one (a tokenizer_config.json beside it is read for its
 *  bos_token/eos_token names when present). Reads only local files.
 *  `badEos` (@internal, for model folders): the error for an `eosId` that the tokenizer lacks. */
export async function loadTokenizer(path: string, opts: TokenizerOptions = {}, badEos?: (tokenizerVocab: number) => Error): Promise<Tokenizer> {
  if (typeof path !== 'string' || path.length === 0) throw errors.option('tokenizer', 'a path to tokenizer.json or to a folder holding one', path);
  let file = path;
  let isDir = false;
  try { isDir = statSync(path).isDirectory(); } catch (e) {
    throw tokenizerError(path, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : `cannot be read (${String(e)})`, e);
  }
  if (isDir) {
    file = join(path, 'tokenizer.json');
    if (folderFileState(file) === 'absent') throw tokenizerError(path, 'the folder has no tokenizer.json');
  }
  const json = readJson(file, !isDir);
  let config: unknown = null;
  const cfgFile = join(dirname(file), 'tokenizer_config.json');
  // absent: none; anything else there is read (a broken link or a FIFO is refused by readJson)
  if (folderFileState(cfgFile) !== 'absent') config = readJson(cfgFile);
  return new HfTokenizerImpl(json, file, opts, config, badEos);
}

/** A tokenizer from an already parsed tokenizer.json object (`source` names it in errors). */
/** SentencePiece's word-boundary mark. */
const META = '\u2581';
/** Words longer than this are cut before their "▁"s (HfTokenizerImpl.splitMeta); shorter ones go whole. */
const META_CUT_FROM = 256;
/** `w` cut before every "▁" that follows another character: "▁a▁▁b" → ["▁a", "▁▁b"]. */
function cutBeforeMeta(w: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = 1; i < w.length; i++) if (w[i] === META && w[i - 1] !== META) { out.push(w.slice(from, i)); from = i; }
  out.push(w.slice(from));
  return out;
}

export function tokenizerFromJson(json: unknown, opts: TokenizerOptions = {}, source = 'tokenizer.json', config: unknown = null): Tokenizer {
  return new HfTokenizerImpl(json, source, opts, config);
}
