// The tokenizer layer: text ↔ token ids for the language models. Two kinds:
// 'bytes' (ids are the UTF-8 bytes, the byte LM) and 'hf' (a Hugging Face
// tokenizer.json, e.g. the fla-hub RetNets' Mistral 32k SentencePiece BPE).

/** 'bytes': ids are UTF-8 bytes (the byte LM); 'hf': a Hugging Face tokenizer.json. */
export type TokenizerKind = 'bytes' | 'hf';

/** Options of Tokenizer.encode. */
export interface EncodeOptions {
  /** Prepend the BOS token. Default: true when the tokenizer has one
   *  (`bosId !== null`); ignored when it has none. */
  addBos?: boolean;
}

/** Token-by-token decoding for generation: the text that each new token
 *  completes. The concatenated deltas (plus `flush()`) equal
 *  `decode(all ids)`: a UTF-8 character split over byte-fallback tokens comes
 *  out whole once its last byte arrives (an invalid byte comes out as U+FFFD at once), and the one leading space that
 *  SentencePiece decoding strips is stripped once, at the start of the stream. */
export interface StreamDecoder {
  /** The text that token `id` adds ('' while a character is incomplete or
   *  the token renders as nothing, e.g. a special token). */
  push(id: number): string;
  /** The end of the stream: text still held back (an incomplete UTF-8
   *  sequence comes out as U+FFFD). The decoder starts a new stream afterwards. */
  flush(): string;
}

/** Text ↔ token ids for a language model. */
export interface Tokenizer {
  /** which kind of tokenizer */
  readonly kind: TokenizerKind;
  /** Number of ids: every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** the beginning-of-sequence id added to text (null: none) */
  readonly bosId: number | null;
  /** the end-of-sequence id that ends generation (null: none) */
  readonly eosId: number | null;
  /** Token ids of `text` (BOS first when `addBos`, see EncodeOptions). */
  encode(text: string, opts?: EncodeOptions): Int32Array;
  /** Text of `ids`; special tokens (BOS, EOS, …) render as nothing, bytes
   *  that are not valid UTF-8 as U+FFFD. Throws E_INPUT on an id outside
   *  [0, vocabSize). */
  decode(ids: ArrayLike<number>): string;
  /** A new streaming decoder (see StreamDecoder). `context`: ids already shown (a prompt); the text
   *  the decoder then gives continues that text — e.g. a SentencePiece word token after it keeps its
   *  leading space, which a fresh decoder drops as the start of a text. */
  streamDecoder(context?: ArrayLike<number>): StreamDecoder;
  /** UTF-8 length of `text` in bytes: the denominator of bits per byte
   *  (a lone surrogate counts 3, as U+FFFD, like TextEncoder). */
  byteLength(text: string): number;
}

/** Options of loadTokenizer: ids that replace the tokenizer's own BOS/EOS; null = none. Without them
 *  the tokenizer's files decide, as in transformers: BOS from tokenizer_config.json's `add_bos_token`
 *  and `bos_token`, else the tokenizer.json template; EOS from `eos_token`. A model folder passes its
 *  config.json's `eos_token_id` (generation stops there, as in transformers' generate) and leaves
 *  BOS to the tokenizer. */
export interface TokenizerOptions {
  /** the BOS id to use (null: none) */
  bosId?: number | null;
  /** the EOS id to use (null: none) */
  eosId?: number | null;
}
