// Weights stored as BF16 (bfloat16, the top 16 bits of a float32) kept as BF16: a [rows, cols]
// matrix of BF16 bits, either resident (a Uint16Array) or read from its file on demand (a large
// model's layers: the only resident copy is then the runtime's packed one in the shared WASM memory).
// Widening is exact (bits << 16), so any consumer may widen on use; nothing here rounds.

/** A [rows, cols] row-major matrix of BF16 values. */
export class Bf16Matrix {
  readonly length: number;
  private readonly src: Uint16Array | (() => Uint16Array);

  /** `src`: the bits (resident), or a function returning them (read on each use, e.g. from the file);
   *  `rowReader`: for a file-backed matrix, rows [r0, r0 + n) alone (rowsInto reads only those), into
   *  `into` when given (n·cols values) and returned. */
  constructor(readonly rows: number, readonly cols: number, src: Uint16Array | (() => Uint16Array),
    private readonly rowReader?: (r0: number, n: number, into?: Uint16Array) => Uint16Array) {
    this.length = rows * cols;
    if (src instanceof Uint16Array && src.length !== this.length) throw new Error(`Bf16Matrix: ${src.length} values for [${rows}, ${cols}]`);
    this.src = src;
  }

  /** Whether the bits are held in memory (else read on each `bits()`). */
  get resident(): boolean { return this.src instanceof Uint16Array; }

  /** The BF16 bits [rows, cols] (a fresh array when file-backed: do not keep it). */
  bits(): Uint16Array {
    if (this.src instanceof Uint16Array) return this.src;
    const b = this.src();
    if (b.length !== this.length) throw new Error(`Bf16Matrix: the reader returned ${b.length} values for [${this.rows}, ${this.cols}]`);
    return b;
  }

  /** Whether rowBits/rowsInto read only the rows asked for (resident, or file-backed with a row reader);
   *  else each call reads the whole matrix. */
  get readsRows(): boolean { return this.src instanceof Uint16Array || this.rowReader !== undefined; }

  /** The BF16 bits of rows [r0, r0 + n): a view of the resident bits, or (file-backed with a row reader)
   *  those rows alone read from the file (a fresh array: do not keep it); without a row reader, the
   *  whole matrix is read and the rows' part returned. With `into` (n·cols values) they are written
   *  there and `into` is returned: a file-backed matrix reads straight into it, no array in between. */
  rowBits(r0: number, n: number, into?: Uint16Array): Uint16Array {
    if (!Number.isInteger(r0) || !Number.isInteger(n) || r0 < 0 || n < 0 || r0 + n > this.rows) throw new RangeError(`Bf16Matrix: rows ${r0}…${r0 + n - 1} of ${this.rows}`);
    const c = this.cols;
    if (into && into.length !== n * c) throw new RangeError(`Bf16Matrix: ${into.length} values to read ${n} rows of ${c} into`);
    let rb: Uint16Array;
    if (this.src instanceof Uint16Array) rb = this.src.subarray(r0 * c, (r0 + n) * c);
    else if (this.rowReader) {
      rb = this.rowReader(r0, n, into);
      if (rb.length !== n * c) throw new Error(`Bf16Matrix: the row reader returned ${rb.length} values for ${n} rows of ${c}`);
    } else rb = this.bits().subarray(r0 * c, (r0 + n) * c);
    if (into && rb !== into) into.set(rb);
    return into ?? rb;
  }

  /** Widened exactly to float32 (a new array). */
  toFloat32(): Float32Array { return widenBf16(this.bits()); }

  /** Rows [r0, r0 + n) widened into `into` at `off` (float32 or float64; exact either way). `bits`: the
   *  whole matrix's bits when the caller holds them; a file-backed matrix with a row reader reads only the rows. */
  rowsInto(r0: number, n: number, into: Float32Array | Float64Array, off = 0, bits?: Uint16Array): void {
    const t = bf16Table(), c = this.cols;
    if (!bits && !(this.src instanceof Uint16Array) && this.rowReader) {
      const rb = this.rowReader(r0, n);
      if (rb.length !== n * c) throw new Error(`Bf16Matrix: the row reader returned ${rb.length} values for ${n} rows of ${c}`);
      for (let i = 0; i < n * c; i++) into[off + i] = t[rb[i]];
      return;
    }
    const b = bits ?? this.bits(), s = r0 * c;
    for (let i = 0; i < n * c; i++) into[off + i] = t[b[s + i]];
  }
}

export const isBf16 = (w: unknown): w is Bf16Matrix => w instanceof Bf16Matrix;

let table: Float32Array | null = null;
/** All 65,536 BF16 values as float32 (256 KiB): index by the bits. */
export function bf16Table(): Float32Array {
  if (table) return table;
  const u = new Uint32Array(65536);
  for (let i = 0; i < 65536; i++) u[i] = i << 16;
  table = new Float32Array(u.buffer);
  return table;
}

/** Float32 of BF16 bits (exact). */
export function widenBf16(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/** The values as a float array: BF16 widened on use (exact), float arrays as they are. */
export function floatsOf<T extends Float32Array | Float64Array>(w: T | Bf16Matrix): T | Float32Array {
  return w instanceof Bf16Matrix ? w.toFloat32() : w;
}

/** The largest |value| of BF16 bits, as bits without the sign (finite magnitudes order as these bits; a
 *  result ≥ 0x7f80 means some value is NaN or ±Infinity). Two values per 32-bit read: over 100 M values
 *  67–75 ms against 113–134 for one value per read (a scratch timing, 2026-12-07, AMD EPYC VM). */
export function bf16MaxAbsBits(bits: Uint16Array): number {
  let i0 = 0, n = bits.length, mlo = 0, mhi = 0;
  if (n > 0 && bits.byteOffset % 4 !== 0) { mlo = bits[0]! & 0x7fff; i0 = 1; }
  const pairs = (n - i0) >>> 1;
  const w = new Uint32Array(bits.buffer, bits.byteOffset + 2 * i0, pairs);
  for (let i = 0; i < pairs; i++) {
    const x = w[i]!, lo = x & 0x7fff, hi = (x >>> 16) & 0x7fff;
    mlo = lo > mlo ? lo : mlo; mhi = hi > mhi ? hi : mhi;
  }
  if (i0 + 2 * pairs < n) mhi = Math.max(mhi, bits[n - 1]! & 0x7fff);
  return Math.max(mlo, mhi);
}

/** Index of the first BF16 value that is NaN or ±Infinity (exponent bits all ones), −1 if none. */
export function firstBadBf16(bits: Uint16Array): number {
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7f80) === 0x7f80) return i;
  return -1;
}
