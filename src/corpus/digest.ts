// SHA-256 of the model file (carried by every job, checked by every worker)
// and the default run id: a digest of the inputs, the model and the options.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { InputFile } from './inputs.js';

export async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** SHA-256 naming a model: of the file, or for a model folder (a list of its files) of each file's
 *  name and SHA-256 in order — any changed byte of config, weights or tokenizer changes it. */
export async function modelSha256(files: string | string[]): Promise<string> {
  if (typeof files === 'string') return fileSha256(files);
  const h = createHash('sha256');
  for (const f of files) h.update(`${basename(f)}\0${await fileSha256(f)}\n`);
  return h.digest('hex');
}

/** The queue and output run id: letters, digits, _ . - (at most 64). */
export const RUN_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** The options with undefined ones dropped, keys sorted (a stable JSON form). */
export function sortedDefined(options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** The input files as the run's identity names them: [absolute path, size, mtime]. */
export function inputIdentity(files: InputFile[]): [string, number, number][] {
  return files.map((f) => [f.path === '-' ? '-' : resolve(f.path), f.size, f.mtimeMs]);
}

/** 16 hex digits naming a run: the same inputs (paths, sizes, mtimes), model and options give the same id. */
export function runIdOf(files: InputFile[], modelSha: string, options: Record<string, unknown>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({
    files: inputIdentity(files),
    model: modelSha,
    options: sortedDefined(options),
  }));
  return h.digest('hex').slice(0, 16);
}
