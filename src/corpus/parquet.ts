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
  // the text column holds strings or bytes: BYTE_ARRAY, plain or annotated as a string (before: a UUID or a
  // FIXED_LEN_BYTE_ARRAY column was read as text — the UUID's formatted string, or raw bytes)
  const textEl = parquetSchema(metadata).children.find((c) => c.element.name === f.textField)!.element;
  const logical = textEl.logical_type?.type, converted = textEl.converted_type;
  if (textEl.type !== 'BYTE_ARRAY' || (logical !== undefined && !['STRING', 'ENUM', 'JSON'].includes(logical)) || (converted !== undefined && !['UTF8', 'ENUM', 'JSON'].includes(converted))) {
    throw errors.corpus(`${path}: column ${JSON.stringify(f.textField)} is ${[textEl.type ?? 'a group', logical ?? converted].filter(Boolean).join(' ')}, not text (a BYTE_ARRAY column, plain or STRING); name the text column with --text-field`);
  }
  // the footer's row counts against what the column chunks hold (before: a 1.2 KB file claiming 1e9 rows ran
  // the process out of memory, and one claiming 0 rows dropped its rows without a word)
  const total = metadata.row_groups.reduce((a, rg) => a + Number(rg.num_rows), 0);
  if (Number(metadata.num_rows) !== total) throw errors.corpus(`${path}: the footer says ${metadata.num_rows} rows but its row groups hold ${total}: a corrupt file`);
  const sizePerRow = file.byteLength / Math.max(1, Number(metadata.num_rows));
  let rowStart = 0;
  for (const [g, rg] of metadata.row_groups.entries()) {
    const n = Number(rg.num_rows);
    for (const cc of rg.columns) {
      const name = cc.meta_data?.path_in_schema?.join('.');
      if (name === undefined || !columns.includes(name)) continue;
      // a repeated column holds one value per element, not per row (the older list layout): not comparable
      if (parquetSchema(metadata).children.find((c) => c.element.name === name)?.element.repetition_type === 'REPEATED') continue;
      const values = Number(cc.meta_data!.num_values);
      if (values !== n) throw errors.corpus(`${path}: row group ${g} says ${n} rows, but its column ${JSON.stringify(name)} holds ${values} values: a corrupt file`);
    }
    let rows;
    try {
      // strings decoded strictly (stringFromBytes, above): a value that is not valid UTF-8 is a bad record,
      // as in JSONL (before: hyparquet's lenient decoding scored it with U+FFFD in place)
      rows = await parquetReadObjects({ file, metadata, columns, rowStart, rowEnd: rowStart + n, compressors, rowFormat: 'object', parsers: { stringFromBytes } });
    } catch (e) { throw errors.corpus(`${path}: rows ${rowStart + 1}–${rowStart + n}: ${(e as Error).message}`); }
    if (rows.length !== n) throw errors.corpus(`${path}: row group ${g} says ${n} rows, but ${rows.length} were read: a corrupt file`);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as Record<string, unknown>, line = rowStart + i + 1;
      const bad = columns.find((k) => row[k] === BAD_UTF8) ?? null;
      yield bad !== null ? { skip: { source: path, line, reason: `column ${JSON.stringify(bad)} is not valid UTF-8` } } : recordToItem(row, path, line, f);
    }
    onRaw?.(Math.round(n * sizePerRow));
    rowStart += n;
  }
}
