// Inputs → one ordered stream of documents (and skipped lines): plain files
// are one document each, JSONL and Parquet one per line/row.
import { isUtf8 } from 'node:buffer';
import { errors } from '../errors.js';
import { openBytes } from './compression.js';
import { expandInputs, type InputFile } from './inputs.js';
import { DEFAULT_MAX_DOC_BYTES, readJsonl, type FieldNames } from './jsonl.js';
import { readParquet } from './parquet.js';
import type { CorpusItem, ReadOptions } from './types.js';

export interface ReadProgress {
  /** bytes read from disk so far (compressed size for .gz/.zst) */
  rawBytes: number;
  /** total size on disk of the inputs (0 when unknown, e.g. stdin) */
  totalRawBytes: number;
}

/** The file's bytes, or null when it holds more than `max` bytes (reading stops there). */
async function readWhole(file: InputFile, onRaw: (n: number) => void, max: number, stdin?: NodeJS.ReadableStream): Promise<Uint8Array | null> {
  const parts: Buffer[] = [];
  let n = 0;
  const s = openBytes(file.path, file.compression, onRaw, stdin);
  try {
    for await (const c of s) {
      n += (c as Buffer).length;
      if (n > max) return null;
      parts.push(c as Buffer);
    }
  } catch (e) { throw errors.corpus(`cannot read ${file.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); } finally { if (file.path !== '-') s.destroy(); }
  return Buffer.concat(parts);
}

/** The byte offset of the first byte that is not part of valid UTF-8, or -1 when all of it is valid. */
export function firstBadUtf8(bytes: Uint8Array): number {
  if (isUtf8(bytes)) return -1;
  // the lenient decoder puts U+FFFD where bytes are bad; one that stands for a real EF BF BD is passed over
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  let off = 0, i = 0;
  for (let at = text.indexOf('\uFFFD'); at >= 0; at = text.indexOf('\uFFFD', at + 1)) {
    off += Buffer.byteLength(text.slice(i, at)); i = at;
    if (!(bytes[off] === 0xef && bytes[off + 1] === 0xbf && bytes[off + 2] === 0xbd)) return off;
  }
  return 0; // not reached: isUtf8 found a bad byte
}

/** Every item of the files, in order. A bad line is a skipped item, or an error with `strict`. */
export async function* readFiles(files: InputFile[], options: ReadOptions = {}, progress?: ReadProgress): AsyncGenerator<CorpusItem> {
  const maxDocBytes = options.maxDocBytes ?? DEFAULT_MAX_DOC_BYTES;
  const f: FieldNames = { textField: options.textField ?? 'text', idField: options.idField ?? 'id', maxDocBytes };
  const onRaw = (n: number) => { if (progress) progress.rawBytes += n; };
  for (const file of files) {
    let items: AsyncIterable<CorpusItem>;
    if (file.format === 'parquet') items = readParquet(file.path, f, onRaw);
    else if (file.format === 'jsonl') items = readJsonl(openBytes(file.path, file.compression, onRaw, options.stdin), file.path, f);
    else {
      const name = file.path === '-' ? '-' : file.path;
      const bytes = await readWhole(file, onRaw, maxDocBytes, options.stdin);
      items = (async function* () {
        if (bytes === null) { yield { skip: { source: name, line: 1, reason: `document longer than ${maxDocBytes} bytes (--max-doc-bytes)` } }; return; }
        const bad = options.textOnly ? firstBadUtf8(bytes) : -1;
        if (bad >= 0) { yield { skip: { source: name, line: 1, reason: `not valid UTF-8 at byte ${bad} (a tokenized model scores text)` } }; return; }
        yield { doc: { id: name, source: name, bytes } };
      })();
    }
    try {
      for await (const it of items) {
        if (it.skip && options.strict) throw errors.corpus(`${it.skip.source}:${it.skip.line}: ${it.skip.reason} (--strict)`);
        yield it;
      }
    } catch (e) {
      if ((e as { code?: string }).code === 'E_CORPUS') throw e;
      throw errors.corpus(`${file.path}: ${(e as Error).message}`, e);
    }
  }
}

/** expandInputs + readFiles. */
export function readCorpus(inputs: string[], options: ReadOptions = {}, progress?: ReadProgress): AsyncGenerator<CorpusItem> {
  const files = expandInputs(inputs, options);
  if (progress) progress.totalRawBytes = files.reduce((a, x) => a + x.size, 0);
  return readFiles(files, options, progress);
}
