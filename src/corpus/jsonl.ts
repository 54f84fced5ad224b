// JSONL (one JSON object per line) → documents: the text field becomes the
// document's UTF-8 bytes, the id field its id (FILE:LINE when absent). A line
// that is not a JSON object or lacks a string text field is a skipped item.
//
// Decoding rules: lines end at LF only (a CRLF's CR is dropped; a lone CR is
// an ordinary character, never a line break); a UTF-8 byte-order mark at the
// start of the file is dropped; a line that is not valid UTF-8, or whose text
// holds a lone surrogate (a "\ud800" escape), is a bad record (skipped, or an
// error with --strict) — never scored with U+FFFD in place of the bytes. A
// line longer than --max-doc-bytes (default 64 MiB) is a bad record too: the
// reader keeps at most that many bytes of a line in memory and skips the rest
// up to the next LF without building a string of it.
import type { Readable } from 'node:stream';
import type { CorpusItem } from './types.js';

/** Default cap on a JSONL line / a plain document / a Parquet text, in bytes. */
export const DEFAULT_MAX_DOC_BYTES = 64 * 1024 * 1024;

export interface FieldNames { textField: string; idField: string; maxDocBytes?: number }

/** One parsed line → a document or the reason it is skipped. */
export function recordToItem(value: unknown, source: string, line: number, f: FieldNames): CorpusItem {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { skip: { source, line, reason: `not a JSON object (${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value})` } };
  }
  const rec = value as Record<string, unknown>;
  const text = rec[f.textField];
  if (text === undefined) return { skip: { source, line, reason: `no ${JSON.stringify(f.textField)} field` } };
  if (text === null) return { skip: { source, line, reason: `field ${JSON.stringify(f.textField)} is null` } };
  let bytes: Uint8Array;
  if (typeof text === 'string') {
    if (!(text as unknown as { isWellFormed(): boolean }).isWellFormed()) return { skip: { source, line, reason: `field ${JSON.stringify(f.textField)} holds a lone surrogate (not valid Unicode)` } };
    bytes = Buffer.from(text, 'utf8');
  } else if (text instanceof Uint8Array) {
    // bytes (a Parquet column without a string type): text only when they are UTF-8, as every other text here
    // (before: passed on unchecked — the byte LM scored binary data, a tokenized model failed the whole run)
    try { utf8.decode(text); } catch { return { skip: { source, line, reason: `field ${JSON.stringify(f.textField)} holds bytes that are not valid UTF-8` } }; }
    bytes = text;
  }
  else return { skip: { source, line, reason: `field ${JSON.stringify(f.textField)} is ${typeof text}, not a string` } };
  const max = f.maxDocBytes ?? DEFAULT_MAX_DOC_BYTES;
  if (bytes.length > max) return { skip: { source, line, reason: `text longer than ${max} bytes (--max-doc-bytes)` } };
  const rawId = rec[f.idField];
  const id = typeof rawId === 'string' ? rawId : typeof rawId === 'number' || typeof rawId === 'bigint' ? String(rawId) : `${source}:${line}`;
  return { doc: { id, source, bytes } };
}

/** The source text of the number that is top-level field `key`'s value in the JSON object `line`
 *  (the last such field, as JSON.parse keeps the last of duplicate keys); undefined when it is not a
 *  number or the line is not the object JSON.parse read. */
export function rawTopLevelNumber(line: string, key: string): string | undefined {
  const n = line.length;
  let i = line.indexOf('{') + 1, found: string | undefined;
  if (i === 0) return undefined;
  const space = () => { while (i < n && (line[i] === ' ' || line[i] === '\t' || line[i] === '\r' || line[i] === '\n')) i++; };
  const string = () => { const from = i++; while (i < n && line[i] !== '"') i += line[i] === '\\' ? 2 : 1; i++; return line.slice(from, i); };
  const value = () => {
    if (line[i] === '"') { string(); return; }
    if (line[i] === '{' || line[i] === '[') {
      for (let depth = 0; i < n;) {
        const c = line[i];
        if (c === '"') { string(); continue; }
        i++;
        if (c === '{' || c === '[') depth++;
        else if ((c === '}' || c === ']') && --depth === 0) return;
      }
      return;
    }
    while (i < n && line[i] !== ',' && line[i] !== '}' && line[i] !== ' ' && line[i] !== '\t' && line[i] !== '\r') i++;
  };
  for (;;) {
    space();
    if (line[i] !== '"') return found;
    const k = JSON.parse(string()) as string;
    space();
    if (line[i] !== ':') return found;
    i++; space();
    const from = i;
    value();
    if (k === key) { const raw = line.slice(from, i); found = /^-?[0-9]/.test(raw) ? raw : undefined; }
    space();
    if (line[i] !== ',') return found;
    i++;
  }
}

/** A decoded line: its text, TOO_LONG (longer than the cap) or BAD_UTF8. */
export const TOO_LONG = null, BAD_UTF8 = undefined;
export type Line = string | typeof TOO_LONG | typeof BAD_UTF8;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The lines of a byte stream, split at LF (a CRLF's CR dropped), decoded, one
 *  batch per chunk read. Each chunk is split and decoded before anything is
 *  yielded, so the stream's buffers die young (a consumer that holds a view
 *  of a chunk across many lines would have them promoted and kept until a
 *  full GC: +56 MiB of RSS on a 64 MiB corpus). */
export async function* splitLines(stream: AsyncIterable<Buffer | string>, max: number): AsyncGenerator<Line[]> {
  let parts: Buffer[] = [];
  let len = 0, tooLong = false, first = true;
  const finish = (): Line => {
    if (tooLong) return TOO_LONG;
    let b = parts.length === 1 ? parts[0] : Buffer.concat(parts, len);
    if (b.length > 0 && b[b.length - 1] === 13) b = b.subarray(0, b.length - 1);
    if (b.length > max) return TOO_LONG;
    try { return utf8.decode(b); } catch { return BAD_UTF8; }
  };
  const take = (piece: Buffer) => {
    if (tooLong) return;
    // one byte of slack: a CRLF's CR is counted before it is dropped
    if (len + piece.length > max + 1) { tooLong = true; parts = []; len = 0; return; }
    parts.push(piece); len += piece.length;
  };
  for await (const c of stream) {
    let buf = typeof c === 'string' ? Buffer.from(c) : c;
    if (first && buf.length > 0) {
      first = false;
      if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    }
    const out: Line[] = [];
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
      take(buf.subarray(start, nl));
      out.push(finish());
      parts = []; len = 0; tooLong = false;
      start = nl + 1;
    }
    if (start < buf.length) take(Buffer.from(buf.subarray(start))); // a copy: the chunk is not kept
    yield out;
  }
  if (len > 0 || tooLong) yield [finish()];
}

/** The items of a JSONL byte stream, line by line (line numbers from 1). */
export async function* readJsonl(stream: Readable, source: string, f: FieldNames): AsyncGenerator<CorpusItem> {
  const max = f.maxDocBytes ?? DEFAULT_MAX_DOC_BYTES;
  let line = 0;
  try {
    for await (const batch of splitLines(stream, max)) for (const text of batch) {
      line++;
      if (text === TOO_LONG) { yield { skip: { source, line, reason: `line longer than ${max} bytes (--max-doc-bytes)` } }; continue; }
      if (text === BAD_UTF8) { yield { skip: { source, line, reason: 'not valid UTF-8' } }; continue; }
      if (text.trim() === '') { yield { skip: { source, line, reason: 'empty line' } }; continue; }
      let value: unknown;
      try { value = JSON.parse(text); } catch (e) {
        yield { skip: { source, line, reason: `not JSON (${(e as Error).message})` } };
        continue;
      }
      const id = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[f.idField] : undefined;
      // (-0 too: String(-0) is "0", which would collide with an id 0)
      if (typeof id === 'number' && (!Number.isSafeInteger(id) || Object.is(id, -0))) {
        // a number id beyond 2^53 (a 64-bit row id, a hash) or with a fraction or exponent: JSON.parse rounds
        // it to a double (12345678901234567891 → "12345678901234567000"); the id is its text as written
        const raw = rawTopLevelNumber(text, f.idField);
        if (raw !== undefined) (value as Record<string, unknown>)[f.idField] = raw;
      }
      yield recordToItem(value, source, line, f);
    }
  } finally { stream.destroy(); }
}
