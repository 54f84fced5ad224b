// XXH64 (seed 0), the hash a zstd frame's optional content checksum is made of: the frame ends with the
// low 32 bits of XXH64 of its decompressed content, little-endian (RFC 8878 §3.1.1). fzstd, the zstd
// decoder the corpus reader uses, skips those bytes unchecked; compression.ts checks them with this.
//
// The 32-byte stripe loop, where the time goes, runs on pairs of 32-bit halves (JavaScript has no
// 64-bit integer arithmetic short of BigInt, ~20× slower here); the few steps per frame after it use
// BigInt. Written from the algorithm's description (four accumulators over 32-byte stripes, merge,
// tail of 8-, 4- and 1-byte steps, avalanche); checked against the zstd CLI's frame checksums in
// test/corpus-zstd.test.ts.

const P1 = 0x9e3779b185ebca87n, P2 = 0xc2b2ae3d27d4eb4fn, P3 = 0x165667b19e3779f9n, P4 = 0x85ebca77c2b2ae63n, P5 = 0x27d4eb2f165667c5n;
const M64 = (1n << 64n) - 1n;
const P1H = 0x9e3779b1, P1L = 0x85ebca87, P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const TWO32 = 4294967296;

const mul = (a: bigint, b: bigint) => (a * b) & M64;
const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M64;
const round = (acc: bigint, lane: bigint) => mul(rotl((acc + mul(lane, P2)) & M64, 31n), P1);
const merge = (acc: bigint, v: bigint) => (mul(acc ^ round(0n, v), P1) + P4) & M64;

/** Streaming XXH64 with seed 0. */
export class Xxh64 {
  // the four accumulators as [high, low] 32-bit halves, unsigned
  private readonly v = new Float64Array(8);
  private readonly tail = new Uint8Array(32);
  private tailLen = 0;
  private total = 0;

  constructor() { this.reset(); }

  /** Start again (a new frame). */
  reset(): void {
    const init = [(P1 + P2) & M64, P2, 0n, (-P1) & M64];
    for (let i = 0; i < 4; i++) { this.v[2 * i] = Number(init[i] >> 32n); this.v[2 * i + 1] = Number(init[i] & 0xffffffffn); }
    this.tailLen = 0; this.total = 0;
  }

  update(data: Uint8Array): void {
    this.total += data.length;
    let off = 0;
    if (this.tailLen > 0) {
      const take = Math.min(32 - this.tailLen, data.length);
      this.tail.set(data.subarray(0, take), this.tailLen);
      this.tailLen += take; off = take;
      if (this.tailLen < 32) return;
      this.stripes(this.tail, 0, 32);
      this.tailLen = 0;
    }
    const whole = (data.length - off) & ~31;
    if (whole > 0) this.stripes(data, off, whole);
    off += whole;
    if (off < data.length) { this.tail.set(data.subarray(off), 0); this.tailLen = data.length - off; }
  }

  /** The hash of everything given since the last reset. */
  digest(): bigint {
    const v = this.v;
    const lane = (i: number) => (BigInt(v[2 * i]) << 32n) | BigInt(v[2 * i + 1]);
    let acc: bigint;
    if (this.total >= 32) {
      const v1 = lane(0), v2 = lane(1), v3 = lane(2), v4 = lane(3);
      acc = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M64;
      acc = merge(merge(merge(merge(acc, v1), v2), v3), v4);
    } else acc = P5;
    acc = (acc + BigInt(this.total)) & M64;
    const t = this.tail, n = this.tailLen;
    const u32 = (p: number) => BigInt((t[p] | (t[p + 1] << 8) | (t[p + 2] << 16) | (t[p + 3] << 24)) >>> 0);
    let p = 0;
    for (; p + 8 <= n; p += 8) acc = (mul(rotl(acc ^ round(0n, u32(p) | (u32(p + 4) << 32n)), 27n), P1) + P4) & M64;
    if (p + 4 <= n) { acc = (mul(rotl(acc ^ mul(u32(p), P1), 23n), P2) + P3) & M64; p += 4; }
    for (; p < n; p++) acc = mul(rotl(acc ^ mul(BigInt(t[p]), P5), 11n), P1);
    acc = mul(acc ^ (acc >> 33n), P2);
    acc = mul(acc ^ (acc >> 29n), P3);
    return acc ^ (acc >> 32n);
  }

  /** The stripes of `len` bytes (a multiple of 32) at `off`: acc = rotl(acc + lane·P2, 31)·P1 on each
   *  accumulator, in 32-bit halves. */
  private stripes(d: Uint8Array, off: number, len: number): void {
    const v = this.v;
    for (let p = off, end = off + len; p < end; p += 32) {
      for (let k = 0; k < 8; k += 2) {
        const q = p + 4 * k;
        const ll = (d[q] | (d[q + 1] << 8) | (d[q + 2] << 16) | (d[q + 3] << 24)) >>> 0;
        const lh = (d[q + 4] | (d[q + 5] << 8) | (d[q + 6] << 16) | (d[q + 7] << 24)) >>> 0;
        // acc += lane · P2
        mul64(lh, ll, P2H, P2L);
        let sl = v[k + 1] + rl, sh = v[k] + rh;
        if (sl >= TWO32) { sl -= TWO32; sh += 1; }
        if (sh >= TWO32) sh -= TWO32;
        // rotl 31, then · P1
        mul64(((sh << 31) | (sl >>> 1)) >>> 0, ((sl << 31) | (sh >>> 1)) >>> 0, P1H, P1L);
        v[k] = rh; v[k + 1] = rl;
      }
    }
  }
}

// mul64's result (module scope: no allocation per call)
let rh = 0, rl = 0;
/** (ah·2³² + al)·(bh·2³² + bl) mod 2⁶⁴ → rh, rl; all unsigned 32-bit. The low halves' full product is
 *  made exactly from 16-bit pieces (each partial product < 2³², their sums < 2⁵³); the cross terms only
 *  matter mod 2³² (Math.imul). */
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0;                       // < 2^33
  const t = a0 * b0 + (mid % 65536) * 65536;           // < 2^33
  const carry = Math.floor(t / TWO32);
  rl = t - carry * TWO32;
  const hi = a1 * b1 + Math.floor(mid / 65536) + carry; // the high half of al·bl, < 2^32 + 2^18
  rh = (hi + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}
