// Guards for --out: never overwrite an input, never write over something that
// is not a regular file. (The CLI may grow one shared helper for every
// command's outputs; this is the corpus writer's copy of the same rule,
// a (dev, ino) comparison against every input file.)
import { statSync, type Stats } from 'node:fs';
import { errors } from '../errors.js';
import type { InputFile } from './inputs.js';

function statIfExists(p: string): Stats | null {
  try { return statSync(p); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw errors.corpus(`cannot check ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Throws when `out` (or one of its temporary files) exists and is not a regular
 *  file, or is the same file (same device and inode) as one of the inputs. */
export function refuseOutputOverInputs(out: string, temporaries: string[], inputs: InputFile[]): void {
  const targets = [out, ...temporaries].map((p) => ({ p, st: statIfExists(p) })).filter((t) => t.st !== null);
  for (const t of targets) if (!t.st!.isFile()) throw errors.corpus(`--out ${out}: ${t.p} exists and is not a regular file`);
  if (targets.length === 0) return;
  for (const f of inputs) {
    if (f.path === '-') continue;
    const st = statIfExists(f.path);
    if (!st) continue;
    for (const t of targets) {
      if (st.dev === t.st!.dev && st.ino === t.st!.ino) throw errors.corpus(`--out ${out}: ${t.p} is the input ${f.path}; refusing to overwrite an input`);
    }
  }
}
