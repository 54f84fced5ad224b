// JSONL (one JSON object per line) → documents: the text field becomes the
// document's UTF-8 bytes, the id field its id (FILE:LINE when absent). A line
// that is not a JSON object or lacks a string text field is a skipped item.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { CorpusItem } from './types.js';

export interface FieldNames { textField: string; idField: string }

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
  if (typeof text === 'string') bytes = Buffer.from(text, 'utf8');
  else if (text instanceof Uint8Array) bytes = text;
  else return { skip: { source, line, reason: `field ${JSON.stringify(f.textField)} is ${typeof text}, not a string` } };
  const rawId = rec[f.idField];
  const id = typeof rawId === 'string' ? rawId : typeof rawId === 'number' || typeof rawId === 'bigint' ? String(rawId) : `${source}:${line}`;
  return { doc: { id, source, bytes } };
}

/** The items of a JSONL byte stream, line by line (line numbers from 1). */
export async function* readJsonl(stream: Readable, source: string, f: FieldNames): AsyncGenerator<CorpusItem> {
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) {
      line++;
      if (text.trim() === '') { yield { skip: { source, line, reason: 'empty line' } }; continue; }
      let value: unknown;
      try { value = JSON.parse(text); } catch (e) {
        yield { skip: { source, line, reason: `not JSON (${(e as Error).message})` } };
        continue;
      }
      yield recordToItem(value, source, line, f);
    }
  } finally { rl.close(); stream.destroy(); }
}
