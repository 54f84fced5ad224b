// Guards for the corpus writer's outputs: never overwrite an input or the
// model, never write over something that is not a regular file. Every output
// (--out, --summary-json, OUT.partial, OUT.partial.json, OUT.partial.gz) is
// compared (device, inode) with every file the run reads — the files named on
// the command line, those found by walking its directories, and the model.
// The temporary files are also checked without following links: a stale
// OUT.partial that is a symlink (or a FIFO, a directory…) is refused, never
// written through.
import { closeSync, lstatSync, openSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { constants as zc, gunzipSync } from 'node:zlib';
import { errors } from '../errors.js';
import type { InputFile } from './inputs.js';

/** Where a path lands: its folder's real path (links followed; the file itself not) and its name; the
 *  path made absolute where the folder does not exist (yet). Two names of one place — through a linked
 *  folder, or a file not made yet — compare equal. */
export function placeOf(path: string): string {
  const abs = resolve(path);
  try { return join(realpathSync(dirname(abs)), basename(abs)); } catch { return abs; }
}

/** Whether the regular file at `path` is empty or holds score records (this package's output: a
 *  JSON Lines file, or its gzip, whose first record is an object with a numeric `bits_per_byte` — every
 *  record `score` writes has one, a corpus line has none). What an existing output file must be to be
 *  replaced, and what a walked directory may hold at --out's path without it being an input. */
export function isScoresFile(path: string): boolean {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    let b: Buffer = Buffer.alloc(1 << 20);
    b = b.subarray(0, readSync(fd, b, 0, b.length, 0));
    if (b.length === 0) return true;
    if (b[0] === 0x1f && b[1] === 0x8b) b = gunzipSync(b, { finishFlush: zc.Z_SYNC_FLUSH }); // a prefix of the gzip
    const start = b.subarray(0, 4096).toString('utf8');
    // the first record's fields come before a long per-token array: its start is enough
    const nl = b.indexOf(0x0a);
    if (nl >= 0) {
      const first = JSON.parse(b.subarray(0, nl).toString('utf8')) as Record<string, unknown>;
      return first !== null && typeof first === 'object' && typeof first.bits_per_byte === 'number';
    }
    return /^\{[^\n]*"bits_per_byte"\s*:\s*-?[\d.]/.test(start);
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function statIfExists(p: string, follow = true): Stats | null {
  try { return follow ? statSync(p) : lstatSync(p); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw errors.corpus(`cannot check ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export interface OutputCheck {
  /** --out (undefined: records go to a sink, no file) */
  out?: string;
  /** the writer's temporary files (checked without following links) */
  temporaries: string[];
  /** other outputs (--summary-json): flag → path */
  others?: { label: string; path: string }[];
  /** every input file the run reads */
  inputs: InputFile[];
  /** the model's files (one for a .safetensors model; config, weights and tokenizer of a folder) */
  model: string | string[];
}

/** Throws E_CORPUS when an output exists and is not a regular file (a temporary
 *  one: or is a symbolic link), or is the same file as an input or the model. */
export function refuseOutputsOverInputs(c: OutputCheck): void {
  const targets: { label: string; p: string; st: Stats }[] = [];
  for (const [label, p, follow] of [...(c.out !== undefined ? [['--out', c.out, true]] : []), ...c.temporaries.map((t) => ['--out', t, false]), ...(c.others ?? []).map((o) => [o.label, o.path, true])] as [string, string, boolean][]) {
    const st = statIfExists(p, follow);
    if (st === null) continue;
    if (!follow && st.isSymbolicLink()) throw errors.corpus(`${label} ${c.out}: ${p} exists and is a symbolic link; refusing to write through it (remove it)`);
    if (!st.isFile()) throw errors.corpus(`${label} ${label === '--out' ? c.out : p}: ${p} exists and is not a regular file`);
    targets.push({ label, p, st });
  }
  if (targets.length === 0) return;
  const reads = [...c.inputs.filter((f) => f.path !== '-').map((f) => ({ what: 'the input', path: f.path })), ...(Array.isArray(c.model) ? c.model : [c.model]).map((path) => ({ what: 'the model', path }))];
  for (const r of reads) {
    const st = statIfExists(r.path);
    if (!st) continue;
    for (const t of targets) {
      if (st.dev === t.st.dev && st.ino === t.st.ino) throw errors.corpus(`${t.label} ${t.p} is ${r.what} ${r.path}; refusing to overwrite a file this run reads`);
    }
  }
}
