// Byte streams of input files, decompressed: gzip with node:zlib (multi-member
// files too), zstd with fzstd's streaming decompressor (Node 20 has no zstd),
// loaded on the first .zst chunk (importing the library does not load it).
import { createReadStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Decompress } from 'fzstd';
import type { Compression } from './inputs.js';
import { Xxh64 } from './xxh64.js';

/** A Transform that zstd-decompresses its input, frame by frame, checking each frame's content
 *  checksum where it has one. fzstd decodes, but skips the checksum unread: a flipped bit in a literal
 *  came out as other text, scored with exit 0. So the frames are walked here (header, block headers,
 *  checksum; RFC 8878 §3.1.1), each zstd frame goes to a decoder of its own (pushed as `final` at its
 *  end, so all its output is out when the push returns), and its output is hashed (XXH64) and compared
 *  with the checksum. Skippable frames are skipped. */
export function zstdDecompressStream(): Transform {
  let fzstd: typeof import('fzstd') | undefined;
  let dec: Decompress | undefined;
  const hash = new Xxh64();
  // where the walk is: a frame header being gathered, a block header, a block's content, the checksum,
  // or a skippable frame's data; `need` bytes to go; `head` gathers headers and the checksum
  let phase: 'frame' | 'block-header' | 'block' | 'checksum' | 'skip' = 'frame';
  let need = 0, head: number[] = [], at = 0, frameAt = 0, checked = false, lastBlock = false, frames = 0;
  const fail = (why: string): never => { throw new Error(`zstd: ${why} (frame ${frames + 1}, at byte ${frameAt})`); };
  const u32 = (b: number[], p: number) => (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
  /** bytes of a zstd frame header, from its first 5 bytes; -1: a skippable frame (8-byte header) */
  const headerBytes = (b: number[]): number => {
    const magic = u32(b, 0);
    if (magic >>> 4 === 0x184d2a5) return -1;
    if (magic !== 0xfd2fb528) fail(`not a zstd frame: magic number ${magic.toString(16).padStart(8, '0')}`);
    const fhd = b[4], fcs = fhd >> 6, single = (fhd >> 5) & 1, dict = fhd & 3;
    if (fhd & 8) fail('reserved bit of the frame header set');
    return 5 + (single ? 0 : 1) + [0, 1, 2, 4][dict] + (fcs === 0 ? single : [0, 2, 4, 8][fcs]);
  };
  const emit = (data: Uint8Array) => { if (data.length > 0) { hash.update(data); t.push(Buffer.from(data)); } }; // a copy: the decoder may reuse its window
  const endFrame = (checksum: number[] | null) => {
    dec!.push(checksum ? Uint8Array.from(checksum) : new Uint8Array(0), true);
    if (checksum) {
      const want = u32(checksum, 0), got = Number(hash.digest() & 0xffffffffn);
      if (got !== want) fail(`content checksum mismatch (the frame says ${want.toString(16).padStart(8, '0')}, its content hashes to ${got.toString(16).padStart(8, '0')}): the file is corrupt`);
    }
    dec = undefined; frames++; phase = 'frame'; head = [];
  };
  // Backpressure: a block's content is fed, then, while the reader has not taken what is buffered (the
  // Transform's readable side at its high-water mark), the walk waits for the next _read. A frame decodes
  // one block (at most 128 KiB of output) at a time, so a small file that expands enormously (9 KB of zstd
  // holding 300 MB of one byte) is never held whole (before: ~300 MB in memory at once).
  let wake: (() => void) | null = null;
  const drained = () => new Promise<void>((res) => { wake = res; });
  const full = () => t.readableLength >= t.readableHighWaterMark && !t.destroyed;
  const feed = async (c: Uint8Array) => {
    let p = 0;
    while (p < c.length) {
      if (phase === 'frame') {
        if (head.length === 0) frameAt = at + p;
        head.push(c[p++]);
        if (head.length < 5 || (head.length < 8 && u32(head, 0) >>> 4 === 0x184d2a5)) continue;
        const hb = headerBytes(head);
        if (hb < 0) { // a skippable frame: its data is passed over (an empty one ends here)
          need = u32(head, 4); head = [];
          if (need === 0) frames++; else phase = 'skip';
          continue;
        }
        if (head.length < hb) continue;
        checked = ((head[4] >> 2) & 1) === 1;
        dec = new fzstd!.Decompress(emit);
        hash.reset();
        dec.push(Uint8Array.from(head));
        head = []; phase = 'block-header';
      } else if (phase === 'block-header') {
        head.push(c[p++]);
        if (head.length < 3) continue;
        const bh = head[0] | (head[1] << 8) | (head[2] << 16), type = (bh >> 1) & 3, size = bh >>> 3;
        lastBlock = (bh & 1) === 1;
        if (type === 3) fail('reserved block type');
        if (size > 131072) fail(`block of ${size} bytes (at most 128 KiB)`);
        dec!.push(Uint8Array.from(head));
        head = []; need = type === 1 ? 1 : size; phase = 'block';
        if (need === 0) blockDone();
      } else if (phase === 'block') {
        const n = Math.min(need, c.length - p);
        dec!.push(c.subarray(p, p + n));
        p += n; need -= n;
        if (need === 0) blockDone();
        while (full()) await drained();
      } else if (phase === 'checksum') {
        head.push(c[p++]);
        if (head.length === 4) endFrame(head);
      } else {
        const n = Math.min(need, c.length - p);
        p += n; need -= n;
        if (need === 0) { frames++; phase = 'frame'; }
      }
    }
    at += c.length;
  };
  const blockDone = () => {
    if (!lastBlock) { phase = 'block-header'; return; }
    if (checked) { phase = 'checksum'; head = []; } else endFrame(null);
  };
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const go = async () => { fzstd ??= await import('fzstd'); await feed(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)); };
      go().then(() => cb(), (e) => cb(new Error((e as Error).message.startsWith('zstd: ') ? (e as Error).message : `zstd: ${(e as Error).message}`)));
    },
    flush(cb) {
      if (phase === 'frame' && head.length === 0) { cb(); return; }
      cb(new Error(`zstd: the file ends inside frame ${frames + 1} (from byte ${frameAt}): truncated`));
    },
  });
  // the reader wants more: the walk (if waiting) goes on; then the Transform's own _read
  const ownRead = t._read.bind(t);
  t._read = (n: number) => { const w = wake; wake = null; w?.(); ownRead(n); };
  return t;
}

/** The file's bytes after decompression; `onRaw(n)` counts the bytes read from disk (progress). */
export function openBytes(path: string, compression: Compression, onRaw?: (n: number) => void, stdin?: NodeJS.ReadableStream): Readable {
  const raw = (path === '-' ? (stdin ?? process.stdin) : createReadStream(path, { highWaterMark: 1 << 20 })) as Readable;
  if (onRaw) raw.on('data', (c: Buffer) => onRaw(c.length));
  if (compression === 'none') return raw;
  const dec = compression === 'gzip' ? createGunzip() : zstdDecompressStream();
  raw.on('error', (e) => dec.destroy(e));
  return raw.pipe(dec);
}
