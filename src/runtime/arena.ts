// Allocation in the shared WebAssembly.Memory. The coordinator owns every
// byte: kernels and workers only ever see offsets handed to them.
//
//   [0, base)            the WASM module's own static data / stack
//   [base, persistentTop) packed weights and tables, kept for the model's life
//   [persistentTop, top)  per-forward buffers (windows, scratch), reset each call
import { errors } from '../errors.js';

const PAGE = 65536;
const ALIGN = 64; // cache-line aligned buffers; also satisfies v128 alignment

export class Arena {
  readonly memory: WebAssembly.Memory;
  private persistentTop: number;
  private top: number;
  private readonly maxBytes: number;

  constructor(memory: WebAssembly.Memory, base: number, maxBytes: number) {
    this.memory = memory;
    this.persistentTop = align(base);
    this.top = this.persistentTop;
    this.maxBytes = maxBytes;
  }

  /** Bytes in use. */
  get used(): number { return this.top; }

  private bump(bytes: number, what: string, hint = 'use smaller chunks or a smaller window'): number {
    const off = align(this.top);
    const end = off + bytes;
    if (end > this.maxBytes) {
      throw errors.memory(`${what} needs ${fmtBytes(bytes)} more, but the shared WASM memory is limited to ${fmtBytes(this.maxBytes)} (${fmtBytes(off)} in use); ${hint}`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return off;
  }

  /** Memory kept until the arena is dropped (weights). Only before any transient allocation.
   *  `hint`: what the E_MEMORY error advises (default: smaller chunks or window). */
  persistent(bytes: number, what: string, hint?: string): number {
    if (this.top !== this.persistentTop) throw new Error('Arena: persistent allocation after transient ones');
    const off = this.bump(bytes, what, hint);
    this.persistentTop = this.top;
    return off;
  }

  /** Memory valid until the next reset() (one forward call). */
  transient(bytes: number, what: string): number { return this.bump(bytes, what); }

  reset(): void { this.top = this.persistentTop; }

  /** The end of the persistent region now (for rewind). */
  persistentMark(): number { return this.persistentTop; }

  /** Drops every allocation made since persistentMark() returned `mark`, persistent and transient (a
   *  model whose packing failed half way). */
  rewind(mark: number): void {
    if (mark > this.persistentTop) throw new Error('Arena: rewind past the persistent region');
    this.persistentTop = mark;
    this.top = mark;
  }

  f32(off: number, n: number): Float32Array { return new Float32Array(this.memory.buffer, off, n); }
  f64(off: number, n: number): Float64Array { return new Float64Array(this.memory.buffer, off, n); }
}

export const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
