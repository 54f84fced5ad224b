// Safe output files for every CLI command that writes (run --out, score
// --jsonl, drift --out-dir, bench --json, …). Two rules:
//   1. An output never aliases an input: real files are compared (device +
//      inode after following links), so a symlink or a hard link to the
//      input or the model is refused like the same path is.
//   2. Nothing we did not create is ever deleted or truncated: output goes to
//      a fresh temporary file beside the target and is renamed over it only
//      on success; on failure only that temporary file is removed. A target
//      that exists and is not a regular file (FIFO, device, directory, a
//      symlink to one) is refused up front.
//
// API
//   checkOutputTarget(out, inputs, flag = '--out', { createDir?, kind? }) → string
//     Call before any work. `inputs`: the files the command reads, each
//     { label, path, output? } (label is the flag or 'FILE'; undefined paths
//     and '-' are skipped; output: true for another output of the command,
//     named as such in the message). Throws a UsageError (exit 2) naming both paths when `out`
//     is the same file as an input; when `out` exists but is not a regular
//     file, is a dangling symlink, or its folder is missing / not writable.
//     Returns the path to write: `out` with symlinks resolved (writing
//     through a symlink replaces the file it points to, not the link).
//     { createDir: true }: the folder may be missing if it can be created
//     (mkdir -p dirname(result) before writing).
//     { kind: 'bench-json' | 'summary-json' | 'jsonl' | 'safetensors' }: an
//     existing non-empty `out` must already hold that (an earlier output of
//     the same command, recognised by its fields), else a UsageError.
//   checkOutputDir(dir, files, inputs, flag = '--out-dir') → void
//     The same for a folder the command will create (mkdir -p) and fill with
//     `files`: the folder, or its nearest existing ancestor, must be a
//     writable directory, and each dir/file passes checkOutputTarget.
//   AtomicOutput.create(target) → { tempPath, commit(), abort() }
//     A new, empty temporary file beside `target` (created exclusively, with
//     the target's permission bits when it exists). Write to tempPath, then
//     commit() (rename over target) or abort() (remove tempPath only). Live
//     temporary files are also removed if the process exits or gets
//     SIGINT/SIGTERM/SIGHUP before commit (the signal is handled when the
//     event loop next turns; then its default action ends the process).
//   writeFileAtomic(target, data) → void
//     create + writeFileSync(tempPath) + commit, abort on any error.
import { accessSync, closeSync, constants, lstatSync, mkdirSync, openSync, readSync, realpathSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempPathBeside } from '../temp-path.js';
import { DRIFT_CSV_COLUMNS, DRIFT_PLOT_TITLE, DRIFT_STUDY } from './drift-row.js';
import { isScoresFile, placeOf } from '../corpus/output-safety.js';
import { UsageError } from './command.js';

export interface NamedInput {
  /** how the user named it: '--input', '--model', 'FILE' */
  label: string;
  /** undefined (not given) and '-' (stdin) are skipped */
  path: string | URL | undefined;
  /** another output of the same command (score's --out beside --summary-json), not something it reads */
  output?: boolean;
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** What a non-regular file is, in words. */
function kind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** A directory must exist, be a directory and be writable (we create the temporary file in it). */
function checkWritableDir(dir: string, what: string): void {
  let st: Stats;
  try { st = statSync(dir); } catch (e) { throw new UsageError(`${what}: folder ${dir} cannot be used (${code(e)})`); }
  if (!st.isDirectory()) throw new UsageError(`${what}: ${dir} is ${kind(st)}, not a folder`);
  try { accessSync(dir, constants.W_OK | constants.X_OK); } catch (e) { throw new UsageError(`${what}: cannot write in folder ${dir} (${code(e)})`); }
}

/** What a command writes to an output file. An existing non-empty file is replaced only when it already
 *  holds that (an earlier run's output of the same command): a mistyped name, an input file taken as the
 *  option's value (`score --jsonl a.txt b.txt`), or a user's own JSON / safetensors file is refused instead
 *  of overwritten. Before, any parseable JSON and any safetensors header passed, so `bench --json
 *  package.json` or `run --out my-model.safetensors` replaced the user's file with exit 0. */
export type OutputKind = 'bench-json' | 'summary-json' | 'jsonl' | 'safetensors' | 'drift';

const KIND_WORDS: Record<OutputKind, string> = {
  'bench-json': 'an earlier `retnet bench --json` output (JSON with "suite": "retnet bench")',
  'summary-json': 'an earlier `retnet score --summary-json` output (JSON with run_id, bits_per_byte, …)',
  jsonl: 'score records (JSON Lines with bits_per_byte, or their .gz)',
  safetensors: 'an earlier `retnet run` output (safetensors with the one tensor "output")',
  drift: 'an earlier `retnet drift` output (drift.csv with its header, drift.json with "study": "retnet drift", drift.svg with its title)',
};

/** The metadata entry `retnet run` writes into its output, so that a later run knows the file as its own. */
export const RUN_OUTPUT_MARK = { written_by: 'retnet run' } as const;

/** Up to `n` bytes from the start of the file at `path`. */
function head(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    let got = 0;
    for (let r = 1; got < n && r > 0; got += r) r = readSync(fd, b, got, n - got, got);
    return b.subarray(0, got);
  } finally { closeSync(fd); }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The whole file as JSON (files over 64 MiB are not ours: neither output grows that large). */
function jsonOf(path: string, size: number): unknown {
  return size <= 64 * 2 ** 20 ? JSON.parse(head(path, size).toString('utf8')) : undefined;
}

/** What `retnet run --out` writes: one F32 tensor "output" of shape [B, L, d], and in __metadata__ the
 *  RUN_OUTPUT_MARK (outputs written before the mark: the model, input, key and options entries, which
 *  every run wrote). Any other safetensors file (a checkpoint, an input) is the user's. */
function isRunOutput(path: string, size: number): boolean {
  const b = head(path, 8);
  if (b.length !== 8) return false;
  const n = b.readBigUInt64LE(0);
  if (n > BigInt(Math.min(size - 8, 2 ** 20))) return false; // run writes a header of a few hundred bytes
  const h = JSON.parse(head(path, 8 + Number(n)).subarray(8).toString('utf8')) as unknown;
  if (!isObject(h)) return false;
  const { __metadata__: meta, ...tensors } = h;
  const names = Object.keys(tensors);
  const out = tensors.output;
  if (names.length !== 1 || !isObject(out) || out.dtype !== 'F32' || !Array.isArray(out.shape) || out.shape.length !== 3) return false;
  if (!isObject(meta)) return false;
  return meta.written_by === RUN_OUTPUT_MARK.written_by || ['model', 'input', 'key', 'options'].every((k) => typeof meta[k] === 'string');
}

/** Whether `path` is a regular file holding output of this kind (an earlier run's). */
export function holdsOutput(path: string, kind: OutputKind): boolean {
  try { const st = lstatSync(path); return st.isFile() && st.size > 0 && holdsKind(path, st.size, kind); } catch { return false; }
}

/** Whether the regular file at `path` (size bytes, > 0) already holds output of this kind. */
function holdsKind(path: string, size: number, kind: OutputKind): boolean {
  try {
    if (kind === 'safetensors') return isRunOutput(path, size);
    if (kind === 'bench-json') {
      // bench has written this "suite" field since its first version
      const j = jsonOf(path, size);
      return isObject(j) && j.suite === 'retnet bench' && Array.isArray(j.rows);
    }
    if (kind === 'drift') {
      // by the file's name: what drift writes under it (before: any file named drift.csv, drift.json or
      // drift.svg in the --out-dir folder was replaced)
      const name = basename(path);
      if (name === 'drift.json') { const j = jsonOf(path, size); return isObject(j) && j.study === DRIFT_STUDY; }
      if (name === 'drift.csv') return head(path, Math.min(size, 1 << 16)).toString('utf8').startsWith(DRIFT_CSV_COLUMNS.join(',') + '\n');
      if (name === 'drift.svg') {
        // the whole plot (up to 16 MiB): its title comes near the end (byte ~95,700 of 96,300 at L = 512; before:
        // only the first 64 KiB were read, so a rerun refused its own earlier plot)
        if (size > 1 << 24) return false;
        const text = head(path, size).toString('utf8');
        return /^\s*<svg[\s>]/.test(text) && text.includes(DRIFT_PLOT_TITLE);
      }
      return false;
    }
    if (kind === 'summary-json') {
      // corpusSummaryJson's fields (the file's documented shape, kept without an added marker): a run id, the
      // output and the totals; a value may be null (JSON's NaN, e.g. bits_per_byte of an empty corpus)
      const j = jsonOf(path, size);
      return isObject(j) && typeof j.run_id === 'string' && typeof j.out === 'string'
        && ['documents', 'bytes', 'bits', 'bits_per_byte', 'resumed_documents', 'shards', 'peak_rss_bytes'].every((k) => k in j);
    }
    // score records (or their gzip): a corpus file of JSON lines given as --out is not one (before:
    // any JSON object line, or any gzip, was taken for an earlier run's output and replaced)
    return isScoresFile(path);
  } catch {
    return false;
  }
}

/** The start of a file, for a message. */
function beginning(path: string): string {
  try { return JSON.stringify(head(path, 24).toString('latin1')); } catch { return '(unreadable)'; }
}

export function checkOutputTarget(out: string, inputs: readonly NamedInput[], flag = '--out', opts: { createDir?: boolean; kind?: OutputKind } = {}): string {
  if (out === '') throw new UsageError(`${flag} needs a file name`);
  // '-' is stdin as an input; as an output it would be a file named '-' in the current folder
  // (score's records go to stdout without the flag; before, run's --out - was told the same)
  if (out === '-') throw new UsageError(`${flag} -: an output here is a file (give its name)${opts.kind === 'jsonl' ? '; without the flag, score prints its records on stdout' : ''}`);
  // a compression extension on an output written plain would hold text its readers refuse: only score
  // --out writes gzip (for a .gz name); every other output is written uncompressed
  const gzOk = opts.kind === 'jsonl' && flag === '--out';
  if (opts.kind && (gzOk ? /\.(zst|zstd|bz2|xz|lz4|br)$/i : /\.(gz|zst|zstd|bz2|xz|lz4|br)$/i).test(out)) {
    throw new UsageError(`${flag} ${out}: ${gzOk ? 'only gzip compression is written (name the file .gz, or leave the extension off for plain text)' : 'this output is written uncompressed (leave the compression extension off)'}`);
  }
  const what = `${flag} ${out}`;
  let target = resolve(out);
  let lst: Stats | undefined;
  try { lst = lstatSync(out); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${what}: cannot be used (${code(e)})`);
  }
  let st: Stats | undefined;
  if (lst) {
    try { st = statSync(out); } catch (e) {
      throw new UsageError(`${what} is a symlink that leads nowhere (${code(e)}); give the real file name`);
    }
    if (!st.isFile()) throw new UsageError(`${what} exists and is ${kind(st)}; refusing to replace it (give a regular file name)`);
    target = realpathSync(out);
    for (const input of inputs) {
      if (input.path === undefined || input.path === '-') continue;
      const p = input.path instanceof URL ? fileURLToPath(input.path) : input.path;
      let ist: Stats;
      try { ist = statSync(p); } catch { continue; } // a missing input fails later, as an input
      if (ist.dev === st.dev && ist.ino === st.ino) {
        // two outputs on one file: the second write would replace the first's (before: called an input)
        throw new UsageError(`${what} is the same file as ${input.label} ${p}${resolve(out) === resolve(p) ? '' : ' (through a link)'}; ${input.output ? 'give each output its own file' : 'refusing to overwrite an input'}`);
      }
    }
    if (opts.kind && st.size > 0 && !holdsKind(target, st.size, opts.kind)) {
      throw new UsageError(`${what} exists and is not ${KIND_WORDS[opts.kind]} (it begins ${beginning(target)}); refusing to replace it: give a new name, or remove the file first`);
    }
    // a file made read-only stays as it is, refused before any work (before: the work ran, then the write
    // failed with EACCES, the results were lost, and drift left a CSV that no longer matched its JSON)
    try { accessSync(target, constants.W_OK); } catch {
      throw new UsageError(`${what} exists and is read-only; refusing to replace it: make it writable, or give another name`);
    }
  } else {
    // a file not made yet is the same as another name not made yet when both name the same place
    // (its folder through any links, and its name): e.g. --out X --summary-json X, where the second
    // write would replace the first's records
    const place = placeOf(out);
    for (const input of inputs) {
      if (input.path === undefined || input.path === '-') continue;
      const p = input.path instanceof URL ? fileURLToPath(input.path) : input.path;
      if (placeOf(p) === place) throw new UsageError(`${what} names the same file as ${input.label} ${p}; give each its own file`);
    }
  }
  if (opts.createDir) checkCreatableDir(dirname(target), what); else checkWritableDir(dirname(target), what);
  return target;
}

/** A folder that exists (then it must be writable) or can be made with
 *  mkdir -p (its nearest existing ancestor must be a writable folder).
 *  Returns whether it exists. */
function checkCreatableDir(dir: string, what: string): boolean {
  let existing = resolve(dir);
  for (;;) {
    try { statSync(existing); break; } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${what}: folder ${existing} cannot be used (${code(e)})`);
    }
    const up = dirname(existing);
    if (up === existing) break;
    existing = up;
  }
  const exists = existing === resolve(dir);
  checkWritableDir(existing, exists ? what : `${what} (to be created in ${existing})`);
  if (!exists) {
    // write access is not creatability (root passes access() on /proc and /sys, where mkdir fails — and
    // Node's recursive mkdir of /proc/x never returns): make the first missing folder and remove it again
    const first = join(existing, resolve(dir).slice(existing.length).split(/[\\/]/).filter(Boolean)[0]!);
    try { mkdirSync(first); rmdirSync(first); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new UsageError(`${what}: cannot create folder ${first} (${code(e)})`);
    }
  }
  return exists;
}

export function checkOutputDir(dir: string, files: readonly string[], inputs: readonly NamedInput[], flag = '--out-dir', kind?: OutputKind): void {
  if (dir === '') throw new UsageError(`${flag} needs a folder name`);
  // as for a file output (before: a folder named '-' was made in the current folder)
  if (dir === '-') throw new UsageError(`${flag} -: the output here is a folder (give its name)`);
  if (checkCreatableDir(dir, `${flag} ${dir}`)) for (const f of files) checkOutputTarget(join(dir, f), inputs, `${flag} file`, { kind });
}

// ---------------------------------------------------------------- atomic files

const live = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let watching = false;

function removeLive(): void {
  for (const p of live) { try { unlinkSync(p); } catch { /* already gone */ } }
  live.clear();
}
// Installed with the first temporary file and kept until exit, so a signal
// that arrives while the event loop is busy is never lost (it is handled at
// the next turn, even after a commit): temporary files are removed, then the
// signal's default action ends the process.
function onSignal(sig: NodeJS.Signals): void {
  removeLive();
  for (const s of SIGNALS) process.off(s, onSignal);
  process.kill(process.pid, sig);
}
function watch(): void {
  if (watching) return;
  watching = true;
  process.on('exit', removeLive);
  for (const s of SIGNALS) process.on(s, onSignal);
}

export class AtomicOutput {
  readonly target: string;
  readonly tempPath: string;
  private done = false;

  private constructor(target: string, tempPath: string) { this.target = target; this.tempPath = tempPath; }

  /** A fresh temporary file beside `target` (which should come from checkOutputTarget). */
  static create(target: string): AtomicOutput {
    let mode = 0o666;
    try { const st = statSync(target); if (st.isFile()) mode = st.mode & 0o777; } catch { /* new file */ }
    const tempPath = tempPathBeside(target);
    // handlers first: a signal that lands after the file exists then always finds it in `live`
    // (JS signal handlers run at the next event-loop turn, never inside this synchronous block)
    watch();
    let fd: number;
    try { fd = openSync(tempPath, 'wx', mode); } catch (e) { throw new Error(`cannot write ${target}: ${code(e)}`); }
    live.add(tempPath);
    closeSync(fd);
    return new AtomicOutput(target, tempPath);
  }

  /** Rename the temporary file over the target. */
  commit(): void {
    if (this.done) return;
    try { renameSync(this.tempPath, this.target); } catch (e) { this.abort(); throw new Error(`cannot write ${this.target}: ${code(e)}`); }
    this.finish();
  }

  /** Remove the temporary file (and only it); the target is untouched. */
  abort(): void {
    if (this.done) return;
    try { unlinkSync(this.tempPath); } catch { /* already gone */ }
    this.finish();
  }

  private finish(): void {
    this.done = true;
    live.delete(this.tempPath);
  }
}

/** Write a whole file atomically (temp beside it, then rename). */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const o = AtomicOutput.create(target);
  try {
    writeFileSync(o.tempPath, data);
  } catch (e) {
    o.abort();
    throw new Error(`cannot write ${target}: ${code(e)}`);
  }
  o.commit();
}
