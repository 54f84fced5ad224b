// A tokenizer.json of one token per printable ASCII character ('<unk>' 0, '<s>' 1, '</s>' 2, ' '..'~'
// 3..97) and three longer pieces ('ab' 98, 'b c' 99, 'abc ' 100; encoding never makes them): 101 ids,
// for model folders whose vocabulary is small (the fla fixtures': 128).
export const CHAR_TOKENIZER_VOCAB = 101;

export function charTokenizerJson(): unknown {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let c = 32; c < 127; c++) vocab[String.fromCharCode(c)] = c - 29;
  vocab.ab = 98; vocab['b c'] = 99; vocab['abc '] = 100;
  return {
    version: '1.0', normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, special: true })),
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}
