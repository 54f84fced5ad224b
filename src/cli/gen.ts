// Generated inputs for benchmarks: a RowSource whose rows are a cheap
// deterministic function of (seed, sequence, position, channel), so inputs of
// any length cost no memory, and a sink that only checks the output is finite.
import { cpus, availableParallelism } from 'node:os';
import type { RowSink, RowSource } from '../index.js';
import { hugePages } from '../wasm/huge-pages.js';

export function generatedSource(B: number, L: number, d: number, seed = 1): RowSource {
  return {
    lengths: Array.from({ length: B }, () => L),
    read(seq, start, into) {
      for (let i = 0; i < into.length; i++) {
        // xorshift-style integer hash → [-1, 1)
        let h = (Math.imul(seq * 0x9e3779b1 + start * d + i, 0x85ebca6b) ^ seed) >>> 0;
        h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35) >>> 0; h ^= h >>> 16;
        into[i] = h / 2 ** 31 - 1;
      }
    },
  };
}

export function discardSink(): RowSink & { rows: number } {
  const s = {
    rows: 0,
    write(_seq: number, _start: number, rows: Float32Array) {
      for (let i = 0; i < rows.length; i += 97) if (!Number.isFinite(rows[i])) throw new Error('non-finite output');
      s.rows += rows.length;
    },
  };
  return s;
}

export function machine() {
  // OPENBLAS_CORETYPE picks OpenBLAS's kernels (twice the sgemm rate or half, blas-kernels.ts): recorded where set
  const coretype = process.env.OPENBLAS_CORETYPE;
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), node: process.version, platform: `${process.platform}-${process.arch}`,
    pages: hugePages(), ...(coretype !== undefined ? { OPENBLAS_CORETYPE: coretype } : {}) };
}
