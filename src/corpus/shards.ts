// The shard planner: consecutive documents grouped into shards of about
// `shardBytes` of text (a longer document is a shard of its own). Shards are
// the unit of work everywhere: a ragged batch on one machine, a BullMQ job on
// many. The plan depends only on the documents and shardBytes, so a resumed
// or restarted run cuts the same shards with the same indices.
import type { CorpusDoc, CorpusItem, SkippedItem } from './types.js';

/** A run of whole documents scored as one ragged batch (one queue job). */
export interface Shard {
  /** 0, 1, 2, … in input order */
  index: number;
  /** ordinal of the shard's first document among all documents */
  first: number;
  /** the documents, in input order */
  docs: CorpusDoc[];
  /** total text bytes */
  bytes: number;
}

/** Text bytes per shard by default (4 MiB). */
export const DEFAULT_SHARD_BYTES = 4 << 20;
/** Upper bound on documents per shard (bounds per-shard bookkeeping for tiny documents). */
export const MAX_SHARD_DOCS = 16384;

/** Cut a stream of documents into shards of about `shardBytes` text bytes (a longer document is a shard of its own); skipped items go to `onSkip`. */
export async function* planShards(items: AsyncIterable<CorpusItem>, shardBytes: number, onSkip?: (s: SkippedItem) => void): AsyncGenerator<Shard> {
  let index = 0, first = 0, docs: CorpusDoc[] = [], bytes = 0;
  const cut = (): Shard => {
    const s = { index: index++, first, docs, bytes };
    first += docs.length; docs = []; bytes = 0;
    return s;
  };
  for await (const it of items) {
    if (it.skip) { onSkip?.(it.skip); continue; }
    const n = it.doc.bytes.length;
    if (docs.length > 0 && (bytes + n > shardBytes || docs.length >= MAX_SHARD_DOCS)) yield cut();
    docs.push(it.doc); bytes += n;
  }
  if (docs.length > 0) yield cut();
}
