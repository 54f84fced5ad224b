// Scoring one shard: a ragged batch through the LM's worker pool (one
// streamed pass over all documents, so many short documents keep every
// worker busy) → one output record per document. A pure function of the
// documents, the model and the options; the local run and the queue worker
// both call it, so their outputs agree byte for byte.
import { errors } from '../errors.js';
import type { RetNetLM } from '../lm/retnet-lm.js';
import type { BackendName, Precision } from '../options.js';
import type { CorpusDoc, DocRecord } from './types.js';

export interface ShardScoreOptions {
  backend?: BackendName;
  chunkSize?: number;
  perToken?: boolean;
  /** 'bf16': bfloat16 operands of the big products (absent: 'f32' — the job decides, never the scoring process's RETNET_PRECISION) */
  precision?: Precision;
}

/** Progress within a shard: tokens done of all (`onProgress`), and each document as its score is done (`onScored`). */
export interface ShardProgress {
  onProgress?: (done: number, total: number) => void;
  onScored?: (index: number) => void;
}

export async function scoreDocs(lm: RetNetLM, docs: Pick<CorpusDoc, 'id' | 'source' | 'bytes'>[], options: ShardScoreOptions, progress?: ShardProgress | ((done: number, total: number) => void), signal?: AbortSignal): Promise<DocRecord[]> {
  const p: ShardProgress = typeof progress === 'function' ? { onProgress: progress } : progress ?? {};
  let results;
  try {
    results = await lm.score(docs.map((d) => d.bytes), {
      backend: options.backend, chunkSize: options.chunkSize, precision: options.precision ?? 'f32', perToken: options.perToken === true, onProgress: p.onProgress, onScored: p.onScored, signal,
    });
  } catch (e) {
    // a text the tokenizer refuses (a character a BPE without byte fallback lacks): name the document,
    // found by encoding them one by one (only on this error path)
    if ((e as { code?: string }).code === 'E_INPUT' && /cannot encode/.test((e as Error).message) && lm.tokenizer.kind !== 'bytes') {
      const dec = new TextDecoder('utf-8', { ignoreBOM: true });
      for (const d of docs) {
        try { lm.tokenizer.encode(dec.decode(d.bytes)); } catch (de) {
          throw errors.input(`document ${JSON.stringify(d.id)} (${d.source}): ${(de as Error).message}`);
        }
      }
    }
    throw e;
  }
  return results.map((r, i) => {
    // a non-finite score (weights that overflow float32 on this text) is an error naming the document, never "bits": null
    if (!Number.isFinite(r.bits) || (r.logprobs && !r.logprobs.every(Number.isFinite))) {
      throw errors.input(`document ${JSON.stringify(docs[i].id)} (${docs[i].source}): the model's score is ${r.bits} (not finite): its weights overflow float32 arithmetic on this text`);
    }
    const rec: DocRecord = { id: docs[i].id, source: docs[i].source, bytes: r.bytes!, bits: r.bits, bits_per_byte: r.bitsPerByte! };
    if (lm.tokenizer.kind !== 'bytes') Object.assign(rec, { tokens: r.tokens, nll: r.nll, ppl: r.perplexity });
    if (r.logprobs) rec.logprobs = Array.from(r.logprobs);
    return rec;
  });
}
