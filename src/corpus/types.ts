// Shapes shared by the corpus pipeline: readers → shard planner → scorer →
// ordered writer (datatrove-style separate steps of one pipeline).

/** One document of a corpus: its id, where it came from, and its text as bytes. */
export interface CorpusDoc {
  id: string;
  /** the input file (or '-') it was read from */
  source: string;
  bytes: Uint8Array;
}

/** A line or row that could not be turned into a document. */
export interface SkippedItem {
  source: string;
  /** 1-based line (JSONL) or row (Parquet) number */
  line: number;
  reason: string;
}

export type CorpusItem = { doc: CorpusDoc; skip?: undefined } | { doc?: undefined; skip: SkippedItem };

/** One output record, in input order: the `--out` JSONL line. */
export interface DocRecord {
  id: string;
  source: string;
  bytes: number;
  bits: number;
  bits_per_byte: number;
  /** tokenized models (fla-hub): token count with the BOS, −Σ ln p in nats, perplexity exp(nll / (tokens − 1)) */
  tokens?: number;
  nll?: number;
  ppl?: number;
  logprobs?: number[];
}

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
  /** where '-' reads from (default process.stdin) */
  stdin?: NodeJS.ReadableStream;
  /** paths a directory walk must not pick up (the output and its temporary files) */
  exclude?: string[];
}
