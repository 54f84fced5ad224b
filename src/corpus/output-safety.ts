// Guards for the corpus writer's outputs: never overwrite an input or the
// model, never write over something that is not a regular file. Every output
// (--out, --summary-json, OUT.partial, OUT.partial.json, OUT.partial.gz) is
// compared (device, inode) with every file the run reads — the files named on
// the command line, those found by walking its directories, and the model.
// The temporary files are also checked without following links: a stale
// OUT.partial that is a symlink (or a FIFO, a directory…) is refused, never
// written through.
import { lstatSync, statSync, type Stats } from 'node:fs';
import { errors } from '../errors.js';
import type { InputFile } from './inputs.js';

function statIfExists(p: string, follow = true): Stats | null {
  try { return follow ? statSync(p) : lstatSync(p); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw errors.corpus(`cannot check ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export interface OutputCheck {
  /** --out */
  out: string;
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
  for (const [label, p, follow] of [['--out', c.out, true], ...c.temporaries.map((t) => ['--out', t, false]), ...(c.others ?? []).map((o) => [o.label, o.path, true])] as [string, string, boolean][]) {
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
