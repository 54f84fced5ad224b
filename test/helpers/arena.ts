// Test-only bump allocator over the shared memory, above ARENA_BASE: the kernel
// tests allocate with alloc() and free in LIFO order with mark()/reset(). (The
// library's allocator is src/runtime/arena.ts, owned by the coordinator.)
import { ARENA_BASE } from '../../src/wasm/loader.js';

export class Arena {
  private top: number;
  constructor(readonly memory: WebAssembly.Memory, readonly base = ARENA_BASE, readonly limit = 0x1_0000_0000) {
    if (base < ARENA_BASE) throw new RangeError(`Arena base ${base} is below ARENA_BASE ${ARENA_BASE}`);
    this.top = base;
  }
  /** Allocates `bytes` (aligned to `align`, default 16), growing the memory when needed; returns the byte offset. */
  alloc(bytes: number, align = 16): number {
    if (!(bytes >= 0) || !Number.isInteger(bytes)) throw new RangeError(`Arena.alloc: bad size ${bytes}`);
    const p = Math.ceil(this.top / align) * align;
    const end = p + bytes;
    if (end > this.limit) throw new RangeError(`Arena.alloc: ${bytes} bytes do not fit below ${this.limit}`);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / 65536));
    this.top = end;
    return p;
  }
  f32(n: number): { ptr: number; view: Float32Array } {
    const ptr = this.alloc(n * 4);
    return { ptr, view: new Float32Array(this.memory.buffer, ptr, n) };
  }
  f64(n: number): { ptr: number; view: Float64Array } {
    const ptr = this.alloc(n * 8, 16);
    return { ptr, view: new Float64Array(this.memory.buffer, ptr, n) };
  }
  /** A fresh Float32Array view of [ptr, ptr + 4n) (views must be re-made after the memory grows). */
  viewF32(ptr: number, n: number): Float32Array { return new Float32Array(this.memory.buffer, ptr, n); }
  viewF64(ptr: number, n: number): Float64Array { return new Float64Array(this.memory.buffer, ptr, n); }
  mark(): number { return this.top; }
  reset(mark = this.base): void { this.top = mark; }
  get used(): number { return this.top - this.base; }
}
