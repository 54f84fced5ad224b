// Work planning for the chunk-parallel runtime: chunks → slabs → windows.
//
// A *chunk* is the unit of the retention maths (C tokens; the last one of a
// sequence may be shorter). A *slab* is a fixed run of whole chunks of one
// sequence and the unit of a worker task: its projections and MLP run as one
// GEMM over the slab's rows. Slabs are cut from the start of each sequence
// and depend only on (L, C) — never on the worker count or the window size —
// so every chunk's arithmetic sees the same operands in the same order and
// outputs are bitwise identical for any workers/window setting. A *window* is
// a run of slabs (possibly spanning sequences) that goes through all layers
// before the next window starts; its size bounds memory.

/** Rows a slab aims for: enough for an efficient GEMM, small enough to balance work. */
export const SLAB_ROWS = 256;

export interface Slab {
  /** sequence index in the batch */
  seq: number;
  /** first token of the slab within its sequence (absolute position) */
  start: number;
  /** tokens in the slab */
  len: number;
  /** chunk size of this run */
  C: number;
  /** row of the slab's first token in the window buffers */
  row: number;
  /** index of the slab's first chunk within the window's chunk list */
  chunk0: number;
}

export interface Window {
  slabs: Slab[];
  rows: number;
  chunks: number;
  /** true for the window that ends each sequence listed */
  endsSeq: number[];
}

export const chunksOf = (len: number, C: number) => Math.ceil(len / C);

/** Chunks per slab for chunk size C. */
export const slabChunks = (C: number) => Math.max(1, Math.floor(SLAB_ROWS / C));

/** The windows for sequences of the given lengths, all chunked with `chunkSize(L)`.
 *  `windowRows` and `windowChunks` are budgets: a window holds whole slabs, at least one. */
export function* planWindows(lengths: readonly number[], chunkSize: (L: number) => number, windowRows: number, windowChunks = Infinity): Generator<Window> {
  let cur: Window = { slabs: [], rows: 0, chunks: 0, endsSeq: [] };
  for (let seq = 0; seq < lengths.length; seq++) {
    const L = lengths[seq];
    const C = chunkSize(L);
    const per = slabChunks(C) * C;
    for (let start = 0; start < L; start += per) {
      const len = Math.min(per, L - start);
      if (cur.slabs.length > 0 && (cur.rows + len > windowRows || cur.chunks + chunksOf(len, C) > windowChunks)) {
        yield cur;
        cur = { slabs: [], rows: 0, chunks: 0, endsSeq: [] };
      }
      cur.slabs.push({ seq, start, len, C, row: cur.rows, chunk0: cur.chunks });
      cur.rows += len;
      cur.chunks += chunksOf(len, C);
      if (start + len >= L) cur.endsSeq.push(seq);
    }
  }
  if (cur.slabs.length) yield cur;
}
