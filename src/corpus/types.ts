// Shapes shared by the corpus pipeline: readers → shard planner → scorer →
// ordered writer (datatrove-style separate steps of one pipeline).

/** One document of a corpus: its id, where it came from, and its text as bytes. */
export interface CorpusDoc {
  /** the id field, or FILE:LINE when the record has none */
  id: string;
  /** the input file (or '-') it was read from */
  source: string;
  /** the text, UTF-8 */
  bytes: Uint8Array;
}

/** A line or row that could not be turned into a document. */
export interface SkippedItem {
  /** the input file */
  source: string;
  /** 1-based line (JSONL) or row (Parquet) number */
  line: number;
  /** why it was skipped */
  reason: string;
}

/** What a corpus reader yields: a document, or a skipped line or row. */
export type CorpusItem =
  | {
    /** the document */
    doc: CorpusDoc;
    /** absent */
    skip?: undefined;
  }
  | {
    /** absent */
    doc?: undefined;
    /** the skipped line or row */
    skip: SkippedItem;
  };

/** One output record, in input order: the `--out` JSONL line. */
export interface DocRecord {
  /** document id */
  id: string;
  /** input file */
  source: string;
  /** UTF-8 length of the text */
  bytes: number;
  /** total bits (−Σ log₂ p over the predicted text) */
  bits: number;
  /** bits per byte */
  bits_per_byte: number;
  /** tokenized models (fla-hub): token count with the BOS, −Σ ln p in nats, perplexity exp(nll / (tokens − 1)) */
  tokens?: number;
  /** −Σ ln p over the predicted tokens, in nats (tokenized models) */
  nll?: number;
  /** perplexity exp(nll / (tokens − 1)) (tokenized models) */
  ppl?: number;
  /** with perToken: ln p of each predicted token */
  logprobs?: number[];
}

/** How corpus readers read JSONL and Parquet records. */
export interface ReadOptions {
  /** JSONL/Parquet field holding the text (default 'text') */
  textField?: string;
  /** JSONL/Parquet field holding the id (default 'id'); missing → FILE:LINE */
  idField?: string;
  /** glob for files found in directories (default: every regular file) */
  include?: string;
  /** a bad line is an error instead of a skipped line */
  strict?: boolean;
  /** longest JSONL line / plain document / Parquet text, in bytes (default 64 MiB): a longer one is a bad record */
  maxDocBytes?: number;
  /** plain files must be UTF-8 text (the model is tokenized): one that is not is a bad record, naming
   *  the first bad byte (default false: any bytes, as the byte LM takes them) */
  textOnly?: boolean;
  /** where '-' reads from (default process.stdin) */
  stdin?: NodeJS.ReadableStream;
  /** paths a directory walk must not pick up (the output and its temporary files) */
  exclude?: string[];
}
