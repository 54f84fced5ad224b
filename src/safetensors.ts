// safetensors reader and writer (https://huggingface.co/docs/safetensors format:
// u64 little-endian header length N, N bytes of JSON header, then raw data).
//
// The reader treats every file as untrusted: the header length, each tensor's
// shape and data offsets are checked against the real file size before
// anything is allocated, so a hostile header cannot make it allocate more than
// the file holds, read out of range, or loop.
import { accessSync, closeSync, constants as fsConstants, fstatSync, openSync, readSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { tempPathBeside } from './temp-path.js';
import { dirname } from 'node:path';
import { errors, escapeControl, excerpt, kindOf, listNames, quote } from './errors.js';

/** The safetensors dtypes this reader knows. */
export type StDType = 'F32' | 'F64' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';
export type StData = Float32Array | Float64Array | Int32Array | Uint8Array;

export interface StTensorInfo {
  name: string;
  dtype: StDType;
  shape: number[];
  /** byte range within the data section */
  begin: number;
  end: number;
}

/** A tensor read from or written to a safetensors file. */
export interface StTensor {
  /** dtype in the file */
  dtype: StDType;
  /** shape */
  shape: number[];
  /** elements, row-major (F16/BF16 widened to Float32Array) */
  data: StData;
}

/** Bytes per element of each dtype this reader understands. */
const ITEM_SIZE: Record<StDType, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1 };
/** The format caps the header at 100 MB; a larger claim is refused before reading it. */
export const MAX_HEADER_BYTES = 100_000_000;

const isDType = (s: unknown): s is StDType => typeof s === 'string' && Object.hasOwn(ITEM_SIZE, s);

export interface StHeader { tensors: Map<string, StTensorInfo>; metadata: Record<string, string>; dataStart: number }

/** The first key the top-level object of valid JSON text `text` has twice, or null. Only the top level: the
 *  tensor names (and __metadata__). */
export function firstDuplicateKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0, keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string: find its closing quote (escapes skipped)
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1 && keyNext) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        keyNext = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) { // { [
      depth++;
      if (depth === 1) keyNext = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c && depth === 1) keyNext = true; // , between members
  }
  return null;
}

/** Validate a header against the total file size (bytes). */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, label: string): StHeader {
  const dataStart = 8 + headerBytes.length;
  const dataLen = fileSize - dataStart;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw errors.safetensors(label, `header is not valid UTF-8 JSON (${escapeControl((e as Error).message.slice(0, 200))})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw errors.safetensors(label, 'header must be a JSON object');
  // JSON.parse keeps the last of two equal keys: a tensor named twice would load as one without a word
  const dup = firstDuplicateKey(new TextDecoder().decode(headerBytes));
  if (dup !== null) throw errors.safetensors(label, `header names ${quote(dup)} twice`);
  const tensors = new Map<string, StTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw errors.safetensors(label, '__metadata__ must be an object of strings');
      metadata = {};
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw errors.safetensors(label, `__metadata__ entry ${quote(k)} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object') throw errors.safetensors(label, `entry ${quote(name)} must be an object`);
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string') throw errors.safetensors(label, `tensor ${quote(name)} has no dtype`);
    if (!isDType(dtype)) throw errors.dtype(label, name, dtype);
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      throw errors.safetensors(label, `tensor ${quote(name)} has an invalid shape ${excerpt(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]) {
      throw errors.safetensors(label, `tensor ${quote(name)} has invalid data_offsets ${excerpt(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLen) {
      throw errors.safetensors(label, `tensor ${quote(name)} claims bytes [${begin}, ${end}) but the file holds only ${Math.max(0, dataLen)} data bytes (truncated or corrupt)`);
    }
    // numel·itemsize must equal the byte range. Products are plain doubles: a
    // hostile shape can only overshoot 2^53, never wrap around into a match.
    const bytes = (shape as number[]).reduce((a, s) => a * s, ITEM_SIZE[dtype]);
    if (bytes !== end - begin) {
      throw errors.safetensors(label, `tensor ${quote(name)}: shape ${(shape as number[]).length <= 16 ? `[${(shape as number[]).join(', ')}]` : excerpt(shape)} of ${dtype} needs ${bytes} bytes but data_offsets give ${end - begin}`);
    }
    tensors.set(name, { name, dtype, shape: [...(shape as number[])], begin, end });
  }
  checkLayout(tensors, dataLen, label);
  return { tensors, metadata, dataStart };
}

/** The data section must be the tensors' bytes laid end to end, in some order, and nothing else (the
 *  format's rule: no overlap, no hole, no trailing bytes). Each range was checked on its own above; this
 *  catches two tensors reading the same bytes (a header naming one tensor twice — JSON.parse keeps the
 *  last entry, so the first one's bytes are left over — or offsets shifted into a neighbour), which
 *  would otherwise load and compute with the wrong weights. */
function checkLayout(tensors: Map<string, StTensorInfo>, dataLen: number, label: string): void {
  const order = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0, prev: StTensorInfo | null = null;
  for (const t of order) {
    if (t.begin < at) {
      throw errors.safetensors(label, `tensor ${quote(t.name)} (bytes [${t.begin}, ${t.end})) overlaps tensor ${quote(prev!.name)} (bytes [${prev!.begin}, ${prev!.end})): corrupt header`);
    }
    if (t.begin > at) {
      throw errors.safetensors(label, `bytes [${at}, ${t.begin}) of the data belong to no tensor (before ${quote(t.name)}): corrupt header, or a tensor named twice`);
    }
    at = t.end; prev = t;
  }
  if (at !== dataLen) {
    throw errors.safetensors(label, `the data section holds ${dataLen} bytes but the tensors end at byte ${at}: ${dataLen - at} bytes belong to no tensor (corrupt header, or a tensor named twice)`);
  }
}

function decode(dtype: StDType, bytes: Uint8Array, label: string, name: string): StData {
  // `bytes` is a fresh, aligned copy: typed views over its buffer are safe.
  const buf = bytes.buffer, off = bytes.byteOffset, len = bytes.byteLength;
  switch (dtype) {
    case 'F32': return new Float32Array(buf, off, len / 4);
    case 'F64': return new Float64Array(buf, off, len / 8);
    case 'I32': return new Int32Array(buf, off, len / 4);
    case 'U8': return new Uint8Array(buf, off, len);
    case 'I64': {
      const src = new BigInt64Array(buf, off, len / 8);
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) throw errors.safetensors(label, `tensor ${quote(name)}: I64 value ${v} does not fit in 32 bits`);
        out[i] = Number(v);
      }
      return out;
    }
    case 'F16': {
      const src = new Uint16Array(buf, off, len / 2);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]);
      return out;
    }
    case 'BF16': {
      const src = new Uint16Array(buf, off, len / 2);
      const out = new Float32Array(src.length);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
      return out;
    }
  }
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** What identifies a file's contents cheaply: device, inode, size, modification time (ns). */
export interface FileStamp {
  /** device id */
  dev: number;
  /** inode number */
  ino: number;
  /** size in bytes */
  size: number;
  /** modification time, nanoseconds (from the millisecond float Node gives) */
  mtimeNs: bigint;
}

/** The stamp of an fstat/stat result. */
export function fileStamp(st: { dev: number; ino: number; size: number; mtimeMs: number }): FileStamp {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: BigInt(Math.round(st.mtimeMs * 1e6)) };
}

/** Whether two stamps are of the same, unchanged file. */
export function sameFile(a: FileStamp, b: FileStamp): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

/** An open safetensors file: header validated up front, tensors read on demand. */
export class SafetensorsFile {
  /** the file's path */
  readonly path: string;
  /** every tensor's name, dtype, shape and byte range */
  readonly tensors: Map<string, StTensorInfo>;
  /** the header's `__metadata__` */
  readonly metadata: Record<string, string>;
  /** file size in bytes */
  readonly size: number;
  /** the file's device, inode, size and modification time when opened: a later open of the same path
   *  that differs reads another file (`sameFile`) */
  readonly stamp: FileStamp;
  private fd: number | null;
  private readonly dataStart: number;

  private constructor(path: string, fd: number, stamp: FileStamp, header: StHeader) {
    this.path = path; this.fd = fd; this.size = stamp.size; this.stamp = stamp;
    this.tensors = header.tensors; this.metadata = header.metadata; this.dataStart = header.dataStart;
  }

  /** Open a file and validate its header against the file size (untrusted input). */
  static open(path: string): SafetensorsFile {
    let fd: number;
    // opened without blocking, then looked at: a plain open of a FIFO blocks until a writer comes (before:
    // `info x.safetensors` on a FIFO hung for ever); O_NONBLOCK changes nothing for a regular file's reads
    try { fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK); } catch (e) {
      throw errors.safetensors(path, `cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      const st = fstatSync(fd);
      if (st.isDirectory()) throw errors.safetensors(path, 'is a directory, not a safetensors file');
      if (!st.isFile()) throw errors.safetensors(path, `is ${st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device'}, not a regular file (a safetensors file is read at offsets)`);
      const size = st.size;
      if (size < 8) throw errors.safetensors(path, `file is ${size} bytes; a safetensors file starts with an 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      readExact(fd, lenBuf, 0, path);
      const n = lenBuf.readBigUInt64LE(0);
      // a real header length is small (its top bytes are 0): eight bytes of plain text mean a text file, e.g. a
      // model folder's config.json given instead of the folder
      if (lenBuf.every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127))) {
        // a Git LFS pointer (a clone made without git-lfs): the file stands in for weights never downloaded
        if (lenBuf.toString('latin1') === 'version ' && size < 1024) {
          const head = Buffer.alloc(size); readExact(fd, head, 0, path);
          if (head.toString('latin1').startsWith('version https://git-lfs.github.com/spec/')) {
            throw errors.safetensors(path, 'is a Git LFS pointer, not the weights (a clone made without git-lfs): fetch them with `git lfs pull` in that clone, or download the model with `hf download ORG/NAME`');
          }
        }
        throw errors.safetensors(path, `begins with text (${JSON.stringify(lenBuf.toString('latin1'))}), not a safetensors file's header length: a JSON or text file? (for a Hugging Face model folder, pass the folder)`);
      }
      if (n > BigInt(MAX_HEADER_BYTES)) throw errors.safetensors(path, `header length ${n} exceeds the format's ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
      if (n > BigInt(size - 8)) throw errors.safetensors(path, `header length ${n} exceeds the ${size - 8} bytes after the length field (truncated or corrupt)`);
      const hb = Buffer.alloc(Number(n));
      readExact(fd, hb, 8, path);
      return new SafetensorsFile(path, fd, fileStamp(st), parseHeader(hb, size, path));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Whether the file has this tensor. */
  has(name: string): boolean { return this.tensors.has(name); }

  /** Dtype, shape and byte range of one tensor (E_SAFETENSORS if absent). */
  info(name: string): StTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw errors.safetensors(this.path, `no tensor named ${quote(name)} (it has ${listNames([...this.tensors.keys()])})`);
    return t;
  }

  /** Read one whole tensor (converted: F16/BF16 → Float32Array, I64 → Int32Array). */
  read(name: string): StTensor {
    const t = this.info(name);
    return { dtype: t.dtype, shape: [...t.shape], data: this.readElements(name, 0, (t.end - t.begin) / ITEM_SIZE[t.dtype]) };
  }

  /** Read `count` elements starting at element `start` of a tensor (for streaming large inputs). */
  readElements(name: string, start: number, count: number): StData {
    const t = this.info(name);
    const item = ITEM_SIZE[t.dtype];
    const total = (t.end - t.begin) / item;
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(count) && start >= 0 && count >= 0 && start + count <= total)) {
      throw errors.safetensors(this.path, `element range [${start}, ${start + count}) is outside tensor ${quote(name)} of ${total} elements`);
    }
    const bytes = new Uint8Array(count * item);
    if (this.fd === null) throw errors.safetensors(this.path, 'file is closed');
    readExact(this.fd, bytes, this.dataStart + t.begin + start * item, this.path);
    return decode(t.dtype, bytes, this.path, name);
  }

  /** The BF16 bits of a BF16 tensor, as stored (no widening). */
  readBf16Bits(name: string): Uint16Array {
    const t = this.info(name);
    if (t.dtype !== 'BF16') throw errors.safetensors(this.path, `tensor ${quote(name)} is ${t.dtype}, not BF16`);
    const bytes = new Uint8Array(t.end - t.begin);
    if (this.fd === null) throw errors.safetensors(this.path, 'file is closed');
    readExact(this.fd, bytes, this.dataStart + t.begin, this.path);
    return new Uint16Array(bytes.buffer, 0, bytes.length / 2);
  }

  /** Where a tensor's element `start` lies in the file (a byte offset), for reading parts of it later
   *  without parsing the header again. */
  byteOffset(name: string, start = 0): number {
    const t = this.info(name);
    return this.dataStart + t.begin + start * ITEM_SIZE[t.dtype];
  }

  /** Close the file. */
  close(): void {
    if (this.fd !== null) { closeSync(this.fd); this.fd = null; }
  }
}

function readExact(fd: number, into: Uint8Array, position: number, label: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw errors.safetensors(label, `unexpected end of file at byte ${position + done} (truncated)`);
    done += n;
  }
}

/** Read every tensor of a file. */
export function readSafetensors(path: string,
  /** called with the header's tensor names before any tensor is read (a load that will refuse the file by its
   *  names throws here, before reading gigabytes of another model's weights) */
  checkNames?: (names: ReadonlyMap<string, unknown>) => void): {
  /** every tensor, by name */
  tensors: Map<string, StTensor>;
  /** the header's `__metadata__` */
  metadata: Record<string, string>;
} {
  const f = SafetensorsFile.open(path);
  try {
    checkNames?.(f.tensors);
    const tensors = new Map<string, StTensor>();
    for (const name of f.tensors.keys()) tensors.set(name, f.read(name));
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}

// ---------------------------------------------------------------- writing

export type WritableDType = 'F32' | 'F64' | 'I32' | 'U8';
export interface StTensorSpec { name: string; dtype: WritableDType; shape: readonly number[] }

const dtypeOf = (data: StData): WritableDType => {
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Uint8Array && !(data instanceof Uint8ClampedArray)) return 'U8';
  throw errors.input(`safetensors data must be a Float32Array, Float64Array, Int32Array or Uint8Array (got ${kindOf(data)})`);
};

/** A tensor spec the format can hold: a name that is not empty nor the header's own __metadata__,
 *  a shape of non-negative integers, a dtype the writer knows; names unique. */
function checkSpecs(specs: readonly StTensorSpec[]): void {
  const seen = new Set<string>();
  for (const { name, dtype, shape } of specs) {
    if (typeof name !== 'string' || name === '') throw errors.input('safetensors: a tensor needs a non-empty name');
    if (name === '__metadata__') throw errors.input('safetensors: "__metadata__" cannot name a tensor (the header keeps it for its metadata)');
    if (seen.has(name)) throw errors.input(`safetensors: two tensors named ${quote(name)}`);
    seen.add(name);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw errors.input(`safetensors: tensor ${quote(name)} has shape ${JSON.stringify(shape)}; a shape is non-negative integers`);
    if (!Object.hasOwn(ITEM_SIZE, dtype)) throw errors.input(`safetensors: tensor ${quote(name)} has dtype ${String(dtype)}, which the writer does not write`);
  }
}

/** A safetensors file written piece by piece: the header (all shapes) first,
 *  then each tensor's elements at any offset, so outputs larger than memory
 *  can be streamed out. */
export class SafetensorsWriter {
  private fd: number | null;
  private readonly layout = new Map<string, { spec: StTensorSpec; begin: number; count: number }>();
  private readonly dataStart: number;
  /** the output path */
  readonly path: string;

  constructor(path: string, specs: readonly StTensorSpec[], metadata: Record<string, string> = {},
    /** open flags and mode: 'w' (default: create or truncate `path`), or 'wx' (a new file only) */
    open: { flags?: 'w' | 'wx'; mode?: number } = {}) {
    this.path = path;
    checkSpecs(specs);
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw errors.input(`safetensors: metadata ${quote(k)} must be a string (got ${typeof v}); the format holds strings only`);
    const header: Record<string, unknown> = {};
    if (Object.keys(metadata).length) header.__metadata__ = metadata;
    let offset = 0;
    for (const spec of specs) {
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const bytes = count * ITEM_SIZE[spec.dtype];
      header[spec.name] = { dtype: spec.dtype, shape: [...spec.shape], data_offsets: [offset, offset + bytes] };
      this.layout.set(spec.name, { spec, begin: offset, count });
      offset += bytes;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // data section 8-byte aligned
    const hb = Buffer.from(json, 'utf8');
    const lenBuf = Buffer.alloc(8);
    lenBuf.writeBigUInt64LE(BigInt(hb.length));
    this.fd = openSync(path, open.flags ?? 'w', open.mode ?? 0o666);
    writeAll(this.fd, lenBuf, 0);
    writeAll(this.fd, hb, 8);
    this.dataStart = 8 + hb.length;
    // Extend the file to its final size so every range can be written in any order.
    if (offset > 0) writeAll(this.fd, new Uint8Array(1), this.dataStart + offset - 1);
  }

  /** Write `data` as elements [start, start + data.length) of tensor `name`. */
  write(name: string, start: number, data: StData): void {
    const t = this.layout.get(name);
    if (!t) throw errors.input(`SafetensorsWriter: no tensor named ${quote(name)}`);
    if (dtypeOf(data) !== t.spec.dtype) throw errors.input(`SafetensorsWriter: tensor ${name} is ${t.spec.dtype} but got ${dtypeOf(data)} data`);
    if (start < 0 || start + data.length > t.count) throw errors.input(`SafetensorsWriter: range [${start}, ${start + data.length}) outside ${name} (${t.count} elements)`);
    if (this.fd === null) throw errors.input('SafetensorsWriter: file is closed');
    const item = ITEM_SIZE[t.spec.dtype];
    writeAll(this.fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), this.dataStart + t.begin + start * item);
  }

  /** Close the file (every tensor must have been written). */
  close(): void {
    if (this.fd !== null) { closeSync(this.fd); this.fd = null; }
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
}

/** Write whole tensors to a file in one go. A regular file (new, or replaced, also through a symlink)
 *  is written beside its target under a temporary name and renamed over it only once complete, with
 *  the old file's permissions: a failure (a bad tensor, a full disk) or a crash midway leaves the previous
 *  file as it was (a crash may leave the `.NAME.PID-XXXXXXXX.tmp` file beside it). Anything else (a FIFO,
 *  /dev/null) is written in place. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, { shape: readonly number[]; data: StData }>,
  metadata: Record<string, string> = {},
): void {
  // the arguments as E_INPUT (before: save(5) or a null tensor map failed as Node's TypeError)
  if (typeof path !== 'string' || path === '') throw errors.input(`safetensors: the path must be a non-empty string (got ${path === '' ? '""' : typeof path})`);
  if (tensors === null || typeof tensors !== 'object') throw errors.input(`safetensors: tensors must be an object of { shape, data } by name (got ${tensors === null ? 'null' : typeof tensors})`);
  if (metadata === null || typeof metadata !== 'object') throw errors.input(`safetensors: metadata must be an object of strings (got ${metadata === null ? 'null' : typeof metadata})`);
  for (const [name, t] of Object.entries(tensors)) {
    if (t === null || typeof t !== 'object' || !Array.isArray(t.shape)) throw errors.input(`safetensors: tensor ${quote(name)} must be { shape: number[], data: a typed array }`);
  }
  const specs = Object.entries(tensors).map(([name, t]) => ({ name, dtype: dtypeOf(t.data), shape: t.shape }));
  checkSpecs(specs);
  for (const { name, shape } of specs) { // every element given: a short array would leave zeros in the file
    const n = shape.reduce((a, b) => a * b, 1), got = tensors[name]!.data.length;
    if (got !== n) throw errors.input(`safetensors: tensor ${quote(name)} has shape [${shape.join(', ')}] (${n} elements) but ${got} elements of data`);
  }
  const writeAllTensors = (w: SafetensorsWriter) => { for (const [name, t] of Object.entries(tensors)) w.write(name, 0, t.data); };
  let target = path, mode = 0o666, regular = true, exists = false;
  try {
    target = realpathSync(path);
    const st = statSync(target);
    exists = true;
    regular = st.isFile();
    mode = st.mode & 0o777;
  } catch { /* a new file */ }
  const inPlace = () => {
    const w = new SafetensorsWriter(path, specs, metadata);
    try { writeAllTensors(w); } finally { w.close(); }
  };
  if (exists && statSync(target).isDirectory()) throw Object.assign(new Error(`cannot write ${path}: it is a directory (give a file path)`), { code: 'EISDIR' });
  if (!regular) { inPlace(); return; }
  if (exists) accessSync(target, fsConstants.W_OK); // a file we may not write stays refused
  const temp = tempPathBeside(target);
  let w: SafetensorsWriter;
  try {
    w = new SafetensorsWriter(temp, specs, metadata, { flags: 'wx', mode });
  } catch (e) {
    // a directory we cannot add a file to (the file itself writable): in place, as before
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'EACCES' || c === 'EPERM' || c === 'EROFS') { inPlace(); return; }
    // name the file asked for, not the temporary one beside it (the errno code stays on the error)
    if (c === 'ENOENT' || c === 'ENOTDIR') throw Object.assign(new Error(`cannot write ${path}: its folder ${dirname(target)} does not exist (${c})`, { cause: e }), { code: c });
    throw e;
  }
  try {
    writeAllTensors(w);
    w.close();
    renameSync(temp, target);
  } catch (e) {
    w.close();
    rmSync(temp, { force: true });
    throw e;
  }
}
