// A Hugging Face tokenizer.json for Mistral's 32k SentencePiece BPE, rebuilt
// from the data that mistral-tokenizer-js@1.0.0 ships (a devDependency pinned
// by package-lock, so it exists on a fresh clone after `npm ci`):
//   model: BPE, vocab = its vocabById (id = row), merges = its merge pairs in
//          priority order, byte_fallback, fuse_unk, unk "<unk>";
//   normalizer: Sequence[Prepend "▁", Replace " " → "▁"]; no pre-tokenizer;
//   post_processor: TemplateProcessing "<s> $A" (<s> = 1);
//   decoder: Sequence[Replace "▁" → " ", ByteFallback, Fuse, Strip one leading " "];
//   added tokens <unk> 0, <s> 1, </s> 2 (special).
// This is the layout of Mistral-7B-v0.1's tokenizer.json, which the fla-hub
// RetNets ship. Used by the tokenizer tests and by benchmarks that write a
// model folder.
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The parts of mistral-tokenizer-js that we use (it ships no types). */
export interface MistralTokenizerJs {
  /** token string by id (32000 rows) */
  vocabById: string[];
  /** token string → id */
  vocabByString: Map<string, number>;
  /** "left right" (joined by one space) → merge priority (lower merges first) */
  merges: Map<string, number>;
  /** ids; BOS (1) first unless addBos is false; [] for the empty string */
  encode(prompt: string, addBos?: boolean, addPrecedingSpace?: boolean): number[];
  decode(ids: number[], addBos?: boolean, addPrecedingSpace?: boolean): string;
}

let cached: Promise<MistralTokenizerJs> | null = null;

/** mistral-tokenizer-js, imported once (the module decodes ~650 KB of base64 on load). */
export function loadMistralTokenizerJs(): Promise<MistralTokenizerJs> {
  // A non-literal specifier: the package has no .d.ts, and the interface above
  // states what we rely on.
  const specifier: string = 'mistral-tokenizer-js';
  cached ??= import(specifier).then((m: { default: MistralTokenizerJs }) => m.default);
  return cached;
}

/** Splits a merges key "a b" into [a, b]. Tokens could in principle contain a
 *  space, so every space is tried and the split whose halves and whose join
 *  are all in the vocabulary is taken. */
function splitMerge(key: string, vocab: Map<string, number>): [string, string] | null {
  for (let i = key.indexOf(' '); i >= 0; i = key.indexOf(' ', i + 1)) {
    const a = key.slice(0, i), b = key.slice(i + 1);
    if (vocab.has(a) && vocab.has(b) && vocab.has(a + b)) return [a, b];
  }
  return null;
}

/** The tokenizer.json object (plain JSON data). */
export async function buildMistralTokenizerJson(): Promise<Record<string, unknown>> {
  const m = await loadMistralTokenizerJs();
  const vocab: Record<string, number> = {};
  m.vocabById.forEach((tok, id) => { vocab[tok] = id; });
  const ranked: { pair: [string, string]; prio: number }[] = [];
  for (const [key, prio] of m.merges) {
    const pair = splitMerge(key, m.vocabByString);
    if (pair === null) throw new Error(`mistral-tokenizer-js merge ${JSON.stringify(key)} does not split into two vocabulary tokens whose join is a token`);
    ranked.push({ pair, prio });
  }
  ranked.sort((x, y) => x.prio - y.prio);
  const special = (id: number, content: string) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: ranked.map((r) => r.pair),
    },
  };
}

/** Writes the tokenizer.json to `path` (a file path, or an existing folder:
 *  then `path/tokenizer.json`); creates the parent folder. Returns the file
 *  written. About 1.9 MB. */
export async function writeMistralTokenizerJson(path: string): Promise<string> {
  let file = path;
  try { if (statSync(path).isDirectory()) file = join(path, 'tokenizer.json'); } catch { /* a new file */ }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(await buildMistralTokenizerJson()));
  return file;
}
