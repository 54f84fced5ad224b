// Byte streams of input files, decompressed: gzip with node:zlib (multi-member
// files too), zstd with fzstd's streaming decompressor (Node 20 has no zstd),
// loaded on the first .zst chunk (importing the library does not load it).
import { createReadStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Decompress } from 'fzstd';
import type { Compression } from './inputs.js';

/** A Transform that zstd-decompresses its input. */
export function zstdDecompressStream(): Transform {
  let dec: Decompress | undefined;
  const decoder = async (): Promise<Decompress> => {
    if (dec === undefined) {
      const { Decompress } = await import('fzstd');
      dec = new Decompress((data) => { if (data.length > 0) t.push(Buffer.from(data)); }); // a copy: the decoder may reuse its window
    }
    return dec;
  };
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      decoder().then((d) => { d.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)); cb(); }).catch((e) => cb(new Error(`zstd: ${(e as Error).message}`)));
    },
    flush(cb) {
      decoder().then((d) => { d.push(new Uint8Array(0), true); cb(); }).catch((e) => cb(new Error(`zstd: ${(e as Error).message}`)));
    },
  });
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
