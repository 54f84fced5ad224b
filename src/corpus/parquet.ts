// Parquet → documents with hyparquet (+ hyparquet-compressors for zstd,
// gzip, brotli, lz4), one row group at a time so memory stays bounded by the
// largest row group, not the file. Both are loaded on the first Parquet file
// (importing the library does not load them).
import { errors } from '../errors.js';
import { recordToItem, type FieldNames } from './jsonl.js';
import type { CorpusItem } from './types.js';

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** what a STRING value that is not valid UTF-8 decodes to (hyparquet's own parser would put U+FFFD in) */
const BAD_UTF8 = Object.freeze({ badUtf8: true });
const stringFromBytes = (b: Uint8Array | undefined): unknown => {
  if (!b) return b;
  try { return strict.decode(b); } catch { return BAD_UTF8; }
};

/** The items of a Parquet file, row by row (row numbers from 1); `onRaw(n)` advances progress. */
export async function* readParquet(path: string, f: FieldNames, onRaw?: (n: number) => void): AsyncGenerator<CorpusItem> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  let file, metadata;
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
  } catch (e) { throw errors.corpus(`${path}: not a readable Parquet file (${(e as Error).message})`); }
  const top = parquetSchema(metadata).children.map((c) => c.element.name);
  if (!top.includes(f.textField)) {
    throw errors.corpus(`${path}: no column ${JSON.stringify(f.textField)} (columns: ${top.join(', ')}); name the text column with --text-field`);
  }
  const columns = top.includes(f.idField) ? [f.textField, f.idField] : [f.textField];
  const sizePerRow = file.byteLength / Math.max(1, Number(metadata.num_rows));
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const n = Number(rg.num_rows);
    let rows;
    try {
      // strings decoded strictly (stringFromBytes, above): a value that is not valid UTF-8 is a bad record,
      // as in JSONL (before: hyparquet's lenient decoding scored it with U+FFFD in place)
      rows = await parquetReadObjects({ file, metadata, columns, rowStart, rowEnd: rowStart + n, compressors, rowFormat: 'object', parsers: { stringFromBytes } });
    } catch (e) { throw errors.corpus(`${path}: rows ${rowStart + 1}–${rowStart + n}: ${(e as Error).message}`); }
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as Record<string, unknown>, line = rowStart + i + 1;
      const bad = columns.find((k) => row[k] === BAD_UTF8) ?? null;
      yield bad !== null ? { skip: { source: path, line, reason: `column ${JSON.stringify(bad)} is not valid UTF-8` } } : recordToItem(row, path, line, f);
    }
    onRaw?.(Math.round(n * sizePerRow));
    rowStart += n;
  }
}
