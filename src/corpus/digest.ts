// SHA-256 of the model file (carried by every job, checked by every worker)
// and the default run id: a digest of the inputs, the model and the options.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import type { InputFile } from './inputs.js';

export async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** 16 hex digits naming a run: the same inputs (paths, sizes, mtimes), model and options give the same id. */
export function runIdOf(files: InputFile[], modelSha: string, options: Record<string, unknown>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({
    files: files.map((f) => [f.path === '-' ? '-' : resolve(f.path), f.size, f.mtimeMs]),
    model: modelSha,
    options: Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))),
  }));
  return h.digest('hex').slice(0, 16);
}
