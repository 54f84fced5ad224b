// The ordered, atomic, resumable output: records go to OUT.partial (plain
// JSONL) strictly in document order, whatever order shards finish in; a
// sidecar OUT.partial.json names the run. `finish()` fsyncs and renames the
// partial file to OUT (gzip-compressing it first for *.gz), so OUT only ever
// exists complete. `--resume` keeps the complete lines of a partial file made
// by the same run, so no document is written twice or lost.
import { chmodSync, closeSync, constants, createReadStream, createWriteStream, fsyncSync, ftruncateSync, lstatSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { hostname } from 'node:os';
import { errors } from '../errors.js';
import type { DocRecord } from './types.js';

export const partialPath = (out: string) => `${out}.partial`;
export const partialMetaPath = (out: string) => `${out}.partial.json`;
/** OUT.partial.lock: {pid, host, started} of the run writing OUT.partial while it runs. */
export const partialLockPath = (out: string) => `${out}.partial.lock`;

/** Write all of `data` at the file's position (O_APPEND: its end). writeSync may write less than asked
 *  (a full disk, a file-size limit: `ulimit -f`) and says so only in its return value; the next call then
 *  fails with the reason (ENOSPC, EFBIG). Before, one call's short count passed as success and a cut
 *  output was renamed into place with exit 0. */
export function writeAll(fd: number, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  for (let done = 0; done < buf.length;) {
    const n = writeSync(fd, buf, done, buf.length - done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}

/** Whether process `pid` exists on this host (EPERM: it exists, owned by another user). */
function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** A process's start (Linux: /proc/PID/stat's starttime, clock ticks since boot, with the boot's id), or
 *  null where there is no /proc. With it a lock names its process, not only a pid that a later process
 *  (a restarted container, a wrapped pid counter) may have taken. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after "pid (comm) ": state is field 3
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return `${boot}:${fields[19]}`; // field 22, starttime
  } catch { return null; }
}

/** Whether process `pid` has exited and waits to be reaped (Linux: state Z in /proc/PID/stat): a run
 *  killed a moment ago still answers kill(pid, 0) until its parent reaps it. */
function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch { return false; }
}

/** Whether the process that wrote a lock (pid, and its start where recorded) still runs. */
function holderAlive(pid: number, start: unknown): boolean {
  if (!alive(pid) || zombie(pid)) return false;
  if (typeof start !== 'string') return true; // a lock without it: the pid is all we know
  const now = processStart(pid);
  return now === null || now === start;
}

/** Take OUT.partial.lock for this process: created exclusively; a lock of a process that is gone
 *  (a run killed by SIGKILL) is replaced; one of a live process, or of another host, refuses the run. */
function takeLock(out: string): string {
  const lock = partialLockPath(out), me = { pid: process.pid, host: hostname(), started: new Date().toISOString(), pstart: processStart(process.pid) ?? undefined };
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
      try { writeAll(fd, JSON.stringify(me) + '\n'); } finally { closeSync(fd); }
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw errors.corpus(`cannot create ${lock}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const st = lstatIfExists(lock);
    if (st !== null && !st.isFile()) throw errors.corpus(`${lock} exists and is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; refusing to write through it (remove it)`);
    let held: { pid?: unknown; host?: unknown; started?: unknown; pstart?: unknown } = {};
    try { held = JSON.parse(readFileSync(lock, 'utf8')) as typeof held; } catch { /* unreadable: a run that died while creating it */ }
    const pid = typeof held.pid === 'number' && Number.isSafeInteger(held.pid) && held.pid > 0 ? held.pid : null;
    // a lock without its contents yet is another run between creating and writing it (if recent)
    if (pid === null && st !== null && Date.now() - st.mtimeMs < 10_000) throw errors.corpus(`${out} is being written by another run that is just starting (${lock} is new); wait for it to end`);
    if (pid !== null && held.host !== hostname()) {
      throw errors.corpus(`${out} is being written by a run on host ${JSON.stringify(held.host)} (pid ${pid}, started ${String(held.started)}); if that run has ended, remove ${lock}`);
    }
    if (pid !== null && holderAlive(pid, held.pstart)) throw errors.corpus(`${out} is being written by another run (pid ${pid}, started ${String(held.started)}); wait for it to end, or stop it and run again with --resume`);
    // the run that held it is gone: remove that lock — the file read above, not one another run has
    // just put in its place (two runs taking over one stale lock: the second would remove the first's)
    const now = lstatIfExists(lock);
    if (now !== null && st !== null && (now.ino !== st.ino || now.dev !== st.dev)) {
      throw errors.corpus(`${out} is being written by another run that is just starting (${lock} was replaced meanwhile); wait for it to end`);
    }
    rmSync(lock, { force: true });
  }
}

/** Remove OUT.partial.lock if this process holds it. */
function dropLock(out: string): void {
  const lock = partialLockPath(out);
  try {
    const held = JSON.parse(readFileSync(lock, 'utf8')) as { pid?: unknown; host?: unknown };
    if (held.pid === process.pid && held.host === hostname()) rmSync(lock, { force: true });
  } catch { /* gone, or not ours */ }
}

/** Totals over records: what the summary reports. */
export interface Totals {
  documents: number; bytes: number; bits: number;
  /** bytes the model predicted: every byte after a BOS, all but the first token's without one (bytes − 1 for the byte LM) */
  scoredBytes: number;
  /** tokenized models: tokens, −Σ ln p (nats) and predicted tokens over all documents */
  tokens: number; nll: number; predicted: number;
}
export const zeroTotals = (): Totals => ({ documents: 0, bytes: 0, bits: 0, scoredBytes: 0, tokens: 0, nll: 0, predicted: 0 });
export function addRecord(t: Totals, r: Pick<DocRecord, 'bytes' | 'bits' | 'bits_per_byte' | 'tokens' | 'nll'>): void {
  t.documents++; t.bytes += r.bytes; t.bits += r.bits;
  t.scoredBytes += predictedBytes(r);
  if (typeof r.tokens === 'number' && typeof r.nll === 'number') {
    t.tokens += r.tokens; t.nll += r.nll; t.predicted += Math.max(0, r.tokens - 1);
  }
}

/** The bytes a record's bits/byte divides by (bits ÷ bits_per_byte, an integer up to rounding; 0 when
 *  nothing was predicted, bits_per_byte 0 by convention): the summary's denominator is the sum of the
 *  records' own, whatever the tokenizer does with BOS (before: every byte when a record had tokens). */
export function predictedBytes(r: Pick<DocRecord, 'bits' | 'bits_per_byte'>): number {
  return r.bits_per_byte > 0 && r.bits > 0 ? Math.round(r.bits / r.bits_per_byte) : 0;
}

/** A record read back from a partial file, checked to have the fields a finished run writes. */
function parseRecordLine(line: string): DocRecord | null {
  try {
    const r = JSON.parse(line) as DocRecord;
    if (typeof r?.id !== 'string' || typeof r.source !== 'string' || !Number.isInteger(r.bytes) || typeof r.bits !== 'number') return null;
    return r;
  } catch { return null; }
}

/** Two 32-bit FNV-1a lanes (different offset bases) over a record's id, source and byte count: what a
 *  resumed record must match at its position in the inputs. 64 bits: a shifted or foreign record passes
 *  by chance with probability ~2⁻⁶⁴ per record. */
export function recordKey(id: string, source: string, bytes: number): [number, number] {
  const s = `${id}\u0000${source}\u0000${bytes}`;
  let a = 0x811c9dc5, b = 0x050c5d1f;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return [a >>> 0, b >>> 0];
}

/** What a scan of a partial file found: the byte length of its complete, valid lines (the prefix kept on
 *  resume), their totals, and per record its key (recordKey, two lanes). */
interface PartialScan { keepBytes: number; totals: Totals; count: number; keys: Uint32Array }

/** Scan a partial file: its complete, valid lines (the prefix kept on resume), at most `limit` of them. */
async function scanPartial(path: string, limit = Infinity): Promise<PartialScan> {
  const totals = zeroTotals();
  let keys = new Uint32Array(2 * 1024), count = 0;
  let keepBytes = 0, offset = 0, carry: Buffer = Buffer.alloc(0);
  const done = () => ({ keepBytes, totals, count, keys });
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    let buf: Buffer = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
      if (count >= limit) return done();
      const rec = parseRecordLine(buf.toString('utf8', start, nl));
      if (!rec) return done();
      addRecord(totals, rec);
      if (2 * count === keys.length) { const k2 = new Uint32Array(2 * keys.length); k2.set(keys); keys = k2; }
      const [ka, kb] = recordKey(rec.id, rec.source, rec.bytes);
      keys[2 * count] = ka; keys[2 * count + 1] = kb;
      keepBytes = offset + nl + 1;
      count++;
      start = nl + 1;
    }
    offset += start;
    carry = buf.subarray(start);
    buf = carry;
  }
  return done();
}

/** What a run is: its id, and what its output depends on. A partial file is
 *  resumed only when every field matches (whatever the run id says). */
export interface RunIdentity {
  runId: string;
  /** SHA-256 of the model file */
  model: string;
  /** every input file read, in order: [absolute path, size, mtime in ms] */
  inputs: [string, number, number][];
  /** the options that change the records */
  options: Record<string, unknown>;
}

const lstatIfExists = (p: string): Stats | null => {
  try { return lstatSync(p); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; throw e; }
};

/** A new, empty file at `path`, never written through a link: an existing
 *  regular file (a stale partial of ours) is removed first, anything else is
 *  refused; the file is then created with O_EXCL | O_NOFOLLOW. */
function freshFile(path: string): number {
  const st = lstatIfExists(path);
  if (st !== null) {
    if (!st.isFile()) throw errors.corpus(`${path} exists and is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; refusing to write through it (remove it)`);
    unlinkSync(path);
  }
  return openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
}

/** An existing partial file opened for appending, refused unless it is a regular file (no link followed). */
function openExisting(path: string): number {
  const st = lstatIfExists(path);
  if (st === null || !st.isFile()) throw errors.corpus(`${path} is ${st === null ? 'missing' : st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; refusing to resume through it (remove it)`);
  return openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
}

/** Which fields of two identities differ, in words ('' when none). */
function identityDiff(old: Partial<RunIdentity>, now: RunIdentity): string {
  const diff: string[] = [];
  if (old.runId !== now.runId) diff.push(`run id ${JSON.stringify(old.runId ?? null)} ≠ ${JSON.stringify(now.runId)}`);
  if (old.model !== now.model) diff.push(`model SHA-256 ${String(old.model ?? 'unknown').slice(0, 16)}… ≠ ${now.model.slice(0, 16)}…`);
  if (JSON.stringify(old.inputs) !== JSON.stringify(now.inputs)) diff.push('the input files (paths, sizes or mtimes) differ');
  if (JSON.stringify(old.options) !== JSON.stringify(now.options)) diff.push(`options ${JSON.stringify(old.options ?? null)} ≠ ${JSON.stringify(now.options)}`);
  return diff.join('; ');
}

export interface OpenWriterOptions {
  /** names the run; a partial file of another run (or another model, inputs or options) is never resumed */
  identity: RunIdentity;
  /** keep a partial file of the same run (otherwise start afresh) */
  resume: boolean;
}

/** Writes records in input order to OUT.partial, whatever order shards finish in, and renames it to OUT when complete; records already written are dropped (exactly-once output). */
export class OrderedWriter {
  /** documents already written (by an earlier, interrupted run) when opened — fewer after
   *  checkResumed() found a record that is not the inputs' document at its position */
  resumed: Totals;
  /** totals of every record in the file, resumed ones included */
  readonly totals: Totals;
  private fd: number;
  /** the sink of a writer without a file (toSink) */
  private emit?: (jsonl: string) => void;
  private next: number;
  /** results that arrived before an earlier shard's: first document → records */
  private held = new Map<number, DocRecord[]>();
  private finished = false;
  /** resume: the kept records' keys and end offsets, until checkResumed() has seen them all */
  private kept: PartialScan | null;

  private constructor(
    /** the output path */
    readonly out: string,
    fd: number,
    resumed: Totals,
    kept: PartialScan | null = null,
  ) {
    this.fd = fd;
    this.resumed = { ...resumed };
    this.totals = { ...resumed };
    this.next = resumed.documents;
    this.kept = kept && kept.count > 0 ? kept : null;
  }

  /** Resume: check the kept records against documents first, first+1, … of this run's inputs (their id,
   *  source and byte count; call in document order, before any of them is scored). The sidecar says the
   *  inputs, model and options are the run's, but not that the lines are still its lines: a line deleted
   *  or duplicated by hand, or paths spelled another way (`./a.jsonl` for `a.jsonl`: the same files, other
   *  `source`s), would shift or mix every record after it. At the first record that is not its document the
   *  file is cut back to the records before it, which are kept, and scoring starts there. Returns what was
   *  done, in words (for the log), or null. */
  async checkResumed(first: number, docs: readonly { id: string; source: string; bytes: Uint8Array | number }[]): Promise<string | null> {
    const k = this.kept;
    if (k === null) return null;
    for (let j = 0; j < docs.length && first + j < k.count; j++) {
      const i = first + j, d = docs[j];
      if (i < this.checkedUpTo) continue;
      const [a, b] = recordKey(d.id, d.source, typeof d.bytes === 'number' ? d.bytes : d.bytes.length);
      if (a === k.keys[2 * i] && b === k.keys[2 * i + 1]) { this.checkedUpTo = i + 1; continue; }
      return this.cutResumed(i, `record ${i + 1} of ${partialPath(this.out)} is not document ${i + 1} of the inputs (${JSON.stringify(d.id)} in ${d.source})`);
    }
    if (this.checkedUpTo >= k.count) this.kept = null; // all seen: the keys are no longer needed
    return null;
  }

  /** Resume, every document read: records beyond the inputs' `documents` (lines added by hand) are cut. */
  async checkResumedEnd(documents: number): Promise<string | null> {
    const k = this.kept;
    if (k === null || documents >= k.count) { this.kept = null; return null; }
    return this.cutResumed(documents, `${partialPath(this.out)} holds ${k.count} records but the inputs have ${documents} documents`, true);
  }

  private checkedUpTo = 0;

  /** Cut the partial file back to its first `n` records and continue from there. */
  private async cutResumed(n: number, why: string, beyondInputs = false): Promise<string> {
    const k = this.kept!;
    if (this.next !== this.resumed.documents || this.held.size > 0) throw errors.corpus(`internal: resumed records checked after new ones were written (${why})`);
    const dropped = k.count - n;
    const scan = await scanPartial(partialPath(this.out), n);
    try { ftruncateSync(this.fd, scan.keepBytes); } catch (e) { throw errors.corpus(`cannot write ${partialPath(this.out)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
    this.resumed = { ...scan.totals };
    Object.assign(this.totals, scan.totals);
    this.next = n;
    this.kept = null;
    return beyondInputs ? `${why}: the ${dropped} records after the last document are dropped`
      : `${why}: the ${n} records before it are kept, the ${dropped} from it on dropped, and the documents from ${n + 1} on scored`;
  }

  /** A writer without a file: the records' JSONL lines go to `emit`, in document order (no partial files, no resume). */
  static toSink(emit: (jsonl: string) => void): OrderedWriter {
    const w = new OrderedWriter('-', -1, zeroTotals());
    w.emit = emit;
    return w;
  }

  /** Open OUT.partial: a new one, or (resume) the one of the same run. */
  static async open(out: string, options: OpenWriterOptions): Promise<OrderedWriter> {
    const part = partialPath(out), meta = partialMetaPath(out);
    takeLock(out); // one run writes OUT.partial at a time
    try {
      return await OrderedWriter.openLocked(out, part, meta, options);
    } catch (e) { dropLock(out); throw e; }
  }

  private static async openLocked(out: string, part: string, meta: string, options: OpenWriterOptions): Promise<OrderedWriter> {
    let resumed = zeroTotals();
    let kept: PartialScan | null = null;
    let fd: number;
    const fail = (e: unknown): never => { throw errors.corpus(`cannot write ${part}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); };
    const id = options.identity;
    let partSt: Stats | null, metaSt: Stats | null;
    try { partSt = lstatIfExists(part); metaSt = lstatIfExists(meta); } catch (e) { return fail(e); }
    for (const [p, st] of [[part, partSt], [meta, metaSt]] as const) {
      if (st !== null && !st.isFile()) throw errors.corpus(`${p} exists and is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; refusing to write through it (remove it)`);
    }
    if (options.resume && partSt !== null && metaSt !== null) {
      let old: Partial<RunIdentity>;
      try { old = JSON.parse(readFileSync(meta, 'utf8')) as Partial<RunIdentity>; } catch { old = {}; }
      if (typeof old !== 'object' || old === null) old = {};
      const diff = identityDiff(old, id);
      if (diff !== '') {
        throw errors.corpus(`cannot resume: ${part} was written by another run (${diff}); remove ${part} and ${meta} to start over`);
      }
      const scan = await scanPartial(part);
      resumed = scan.totals;
      kept = scan;
      try { fd = openExisting(part); ftruncateSync(fd, scan.keepBytes); } catch (e) { if ((e as { code?: string }).code === 'E_CORPUS') throw e; return fail(e); }
    } else {
      // an interrupted run's records are not thrown away by a run that did not ask to resume (nor is a live
      // run's file, should two runs share an output): start over only after removing them
      if (partSt !== null && partSt.size > 0 && options.resume) {
        // asked to resume, but the run's identity (the sidecar) is gone: its records cannot be checked
        throw errors.corpus(`cannot resume: ${part} holds ${partSt.size} bytes of records but ${meta}, which says which run wrote them, is missing; `
          + `remove ${part} to start over`);
      }
      if (partSt !== null && partSt.size > 0) {
        throw errors.corpus(`${part} holds ${partSt.size} bytes of records of an interrupted (or running) run, written ${partSt.mtime.toISOString()}; `
          + `continue it with --resume (resume: true), or remove ${part} and ${meta} to start over`);
      }
      try {
        const m = freshFile(meta);
        try { writeAll(m, JSON.stringify(id) + '\n'); fsyncSync(m); } finally { closeSync(m); }
        fd = freshFile(part);
      } catch (e) { if ((e as { code?: string }).code === 'E_CORPUS') throw e; return fail(e); }
    }
    return new OrderedWriter(out, fd!, resumed, kept);
  }

  /** The ordinal of the next document to write (= documents in the file). */
  get nextDoc(): number { return this.next; }
  /** Shards of results held back, waiting for an earlier shard. */
  get heldShards(): number { return this.held.size; }

  /** Records of documents first, first+1, …: written now if they are next, else held.
   *  Documents already written (resume, a shard scored twice) are dropped. */
  put(first: number, records: DocRecord[]): void {
    if (first + records.length <= this.next) return;
    if (first > this.next) { if (!this.held.has(first)) this.held.set(first, records); return; }
    this.write(records.slice(this.next - first));
    for (let h = this.held.get(this.next); h !== undefined; h = this.held.get(this.next)) {
      this.held.delete(this.next);
      this.write(h);
    }
  }

  private write(records: DocRecord[]): void {
    if (records.length === 0) return;
    const text = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
    if (this.emit) this.emit(text);
    else try { writeAll(this.fd, text); } catch (e) { throw errors.corpus(`cannot write ${partialPath(this.out)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
    for (const r of records) addRecord(this.totals, r);
    this.next += records.length;
  }

  /** Every document written: fsync, (gzip,) rename to OUT, remove the sidecar. */
  async finish(): Promise<void> {
    if (this.held.size > 0) throw errors.corpus(`internal: ${this.held.size} shard(s) of results never became contiguous (next document ${this.next})`);
    if (this.emit) return;
    const part = partialPath(this.out);
    fsyncSync(this.fd); closeSync(this.fd); this.fd = -1;
    // an output replaced keeps its permissions (before: a chmod 600 scores file came back 644)
    let mode: number | null = null;
    try { mode = statSync(this.out).mode & 0o7777; } catch { /* a new file: the umask's */ }
    if (/\.gz$/i.test(this.out)) {
      const gz = `${part}.gz`;
      await pipeline(createReadStream(part), createGzip(), createWriteStream('', { fd: freshFile(gz) }));
      const f = openSync(gz, 'r'); fsyncSync(f); closeSync(f);
      if (mode !== null) chmodSync(gz, mode);
      renameSync(gz, this.out);
      rmSync(part);
    } else {
      if (mode !== null) chmodSync(part, mode);
      renameSync(part, this.out);
    }
    rmSync(partialMetaPath(this.out), { force: true });
    this.finished = true;
    dropLock(this.out);
  }

  /** Stop without finishing: the partial file stays for --resume, unless it holds no
   *  record (a run that failed before its first document: an empty corpus, Redis
   *  unreachable), when it and its sidecar are removed — nothing to resume. */
  close(): void {
    if (this.fd >= 0) { try { fsyncSync(this.fd); } catch { /* best effort */ } closeSync(this.fd); this.fd = -1; }
    if (!this.emit && this.next === 0 && !this.finished) {
      rmSync(partialPath(this.out), { force: true });
      rmSync(partialMetaPath(this.out), { force: true });
    }
    if (!this.emit) dropLock(this.out);
  }
}
