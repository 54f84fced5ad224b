// Tokenizers: text ↔ token ids for the language models.
//   new ByteTokenizer()                 ids = UTF-8 bytes (256, no BOS/EOS)
//   await loadTokenizer('model-folder') a Hugging Face tokenizer.json
export type { EncodeOptions, StreamDecoder, Tokenizer, TokenizerKind, TokenizerOptions } from './types.js';
export { ByteTokenizer, utf8ByteLength } from './bytes.js';
export { loadTokenizer, tokenizerFromJson } from './hf.js';
