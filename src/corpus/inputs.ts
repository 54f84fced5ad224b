// Command-line inputs → the ordered list of files to read: directories are
// walked recursively in sorted order (filtered by an --include glob), and
// each file gets its format from its name.
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { errors } from '../errors.js';
import { isScoresFile, placeOf } from './output-safety.js';

export type InputFormat = 'plain' | 'jsonl' | 'parquet';
export type Compression = 'none' | 'gzip' | 'zstd';

/** One input file, as found by {@link expandInputs}. */
export interface InputFile {
  /** as given (or as found under a given directory); '-' is stdin */
  path: string;
  /** how it is read */
  format: InputFormat;
  /** how it is compressed */
  compression: Compression;
  /** size and mtime on disk (0 for stdin): part of the run id */
  size: number;
  /** modification time in ms (0 for stdin) */
  mtimeMs: number;
}

/** Format of a file from its name: *.jsonl, *.ndjson and *.json, each also .gz or .zst (JSON Lines — a
 *  `.json` file as well, as dataset hubs write them: before, `data.json` was one plain document while
 *  `data.json.gz` was JSONL), *.parquet; anything else is one plain document. */
export function formatOf(path: string): { format: InputFormat; compression: Compression } {
  const p = path.toLowerCase();
  if (p.endsWith('.parquet')) return { format: 'parquet', compression: 'none' };
  const compression: Compression = p.endsWith('.gz') ? 'gzip' : p.endsWith('.zst') ? 'zstd' : 'none';
  const base = compression === 'none' ? p : p.slice(0, p.lastIndexOf('.'));
  if (base.endsWith('.jsonl') || base.endsWith('.ndjson') || base.endsWith('.json')) return { format: 'jsonl', compression };
  return { format: 'plain', compression: 'none' };
}

/** A glob (`*`, `?`, `**`, `[...]`) → RegExp. Without a '/', it matches the file's
 *  name; with one, its path relative to the walked directory. */
export function globMatcher(glob: string): (relPath: string) => boolean {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') { re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*'; i += glob[i + 2] === '/' ? 2 : 1; } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else { re += '[' + glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']'; i = end; }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`);
  const byName = !glob.includes('/');
  return (rel) => rx.test(byName ? rel.slice(rel.lastIndexOf('/') + 1) : rel);
}

function statOrThrow(p: string) {
  try { return statSync(p); } catch (e) { throw errors.corpus(`cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
}

function walk(dir: string, root: string, match: (rel: string) => boolean, exclude: Set<string>, excludeScores: Set<string>, out: InputFile[], onSkip?: (line: string) => void): void {
  let raw;
  try { raw = readdirSync(dir, { withFileTypes: true, encoding: 'buffer' }); } catch (e) { throw errors.corpus(`cannot read directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  // names read as bytes: one that is not UTF-8 cannot be named by a path string (read as text it becomes
  // U+FFFD, a path that does not exist): an error naming its bytes (before: the file was dropped as "a
  // symbolic link that leads nowhere", not counted, exit 0 even with --strict; a folder: "cannot read"), raised
  // only for an entry that would be read: a folder to walk, or a file past the filters below
  const entries = raw.map((e) => {
    const bytes = e.name as unknown as Buffer, name = bytes.toString('utf8');
    const bad = Buffer.from(name, 'utf8').equals(bytes) ? null
      : () => errors.corpus(`${dir}: holds a ${e.isDirectory() ? 'folder' : 'file'} whose name is not UTF-8 (bytes ${JSON.stringify(bytes.toString('latin1'))} read as Latin-1); rename it (documents are named by their path), or leave it out of the inputs`);
    return { name, e, bad };
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // this folder's real path, once: where its files land (placeOf), so that the output's temporaries named
  // through a linked folder (`--out lnk/o.jsonl`, lnk → this folder) are known here under its own name
  let real: string | undefined;
  try { real = realpathSync(dir); } catch { real = undefined; }
  for (const { name, e, bad } of entries) {
    const p = join(dir, name);
    if (e.isDirectory()) { if (bad) throw bad(); walk(p, root, match, exclude, excludeScores, out, onSkip); continue; }
    // regular files, and symbolic links to regular files (links to directories are not followed)
    if (!e.isFile() && !e.isSymbolicLink()) { onSkip?.(`${p}: not a regular file (${e.isFIFO() ? 'a FIFO' : e.isSocket() ? 'a socket' : 'a device'}); skipped`); continue; }
    // this run's temporaries, and --out when it holds an earlier run's scores (scored again, they would
    // score the scores); any other file at --out's path is an input, which the output checks then refuse
    const key = real !== undefined ? join(real, name) : placeOf(p);
    if (exclude.has(key)) continue;
    if (excludeScores.has(key) && isScoresFile(p)) continue;
    const rel = relative(root, p).split('\\').join('/');
    if (!match(rel)) continue;
    if (bad) throw bad();
    // said, not dropped without a word (a git-annex file not fetched, a link loop, a linked folder)
    let st;
    try { st = statSync(p); } catch (err) { onSkip?.(`${p}: a symbolic link that leads nowhere (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}); skipped`); continue; }
    if (!st.isFile()) { onSkip?.(`${p}: a symbolic link to ${st.isDirectory() ? 'a folder (links to folders are not followed; name it as an input to read it)' : 'something that is not a regular file'}; skipped`); continue; }
    out.push({ path: p, ...formatOf(p), size: st.size, mtimeMs: st.mtimeMs });
  }
}

/** Expand the inputs (files, directories, '-') into the files to read, in order. */
export function expandInputs(inputs: string[], options: { include?: string; exclude?: string[]; excludeScores?: string[]; onSkip?: (line: string) => void } = {}): InputFile[] {
  if (inputs.filter((p) => p === '-').length > 1) throw errors.corpus("stdin ('-') can be given only once");
  const match = options.include === undefined ? () => true : globMatcher(options.include);
  const exclude = new Set((options.exclude ?? []).map(placeOf));
  const excludeScores = new Set((options.excludeScores ?? []).map(placeOf));
  const out: InputFile[] = [];
  for (const p of inputs) {
    if (p === '-') { out.push({ path: '-', format: 'plain', compression: 'none', size: 0, mtimeMs: 0 }); continue; }
    const st = statOrThrow(p);
    if (st.isDirectory()) walk(p, p, match, exclude, excludeScores, out, options.onSkip);
    else if (st.isFile()) out.push({ path: p, ...formatOf(p), size: st.size, mtimeMs: st.mtimeMs });
    else throw errors.corpus(`${p}: not a regular file or directory`);
  }
  return out;
}
