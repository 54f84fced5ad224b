// Row-wise LayerNorm and elementwise kernels. All take (rows, cols) and row
// strides in elements; pointers are byte offsets.
import { loadN, storeN, hsum, actv_inline, actv64, act32, madd, act_rows, exp_f64x2 } from './common';

// ------------------------------------------------------------------ LayerNorm
//   x     // [rows, n] row stride ldx
//   gamma // [n], beta // [n]
//   y     // [rows, n] row stride ldy; y == x (in place) is allowed
// Mean and variance (biased, two-pass) are summed in f64; the output pass is f32.

export function f32_layernorm__wasmsimd(rows: i32, n: i32, x: usize, ldx: i32, gamma: usize, beta: usize,
                                        y: usize, ldy: i32, eps: f64): void {
  const n4 = n & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    let s0 = f64x2.splat(0), s1 = s0;
    let i = 0;
    for (; i < n4; i += 4) {
      const v = v128.load(xr + (<usize>i << 2));
      s0 = f64x2.add(s0, f64x2.promote_low_f32x4(v));
      s1 = f64x2.add(s1, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
    }
    s0 = f64x2.add(s0, s1);
    let sum = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
    for (; i < n; i++) sum += <f64>load<f32>(xr + (<usize>i << 2));
    const mean = sum / <f64>n;
    const mv = f64x2.splat(mean);
    s0 = f64x2.splat(0); s1 = s0;
    i = 0;
    for (; i < n4; i += 4) {
      const v = v128.load(xr + (<usize>i << 2));
      const d0 = f64x2.sub(f64x2.promote_low_f32x4(v), mv);
      const d1 = f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)), mv);
      s0 = f64x2.add(s0, f64x2.mul(d0, d0));
      s1 = f64x2.add(s1, f64x2.mul(d1, d1));
    }
    s0 = f64x2.add(s0, s1);
    let ss = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
    for (; i < n; i++) { const d = <f64>load<f32>(xr + (<usize>i << 2)) - mean; ss += d * d; }
    const inv = 1.0 / sqrt<f64>(ss / <f64>n + eps);
    const mf = f32x4.splat(<f32>mean), invf = f32x4.splat(<f32>inv);
    i = 0;
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      const t = f32x4.mul(f32x4.sub(v128.load(xr + o), mf), invf);
      v128.store(yr + o, madd(t, v128.load(gamma + o), v128.load(beta + o)));
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      const t = (load<f32>(xr + o) - <f32>mean) * <f32>inv;
      store<f32>(yr + o, t * load<f32>(gamma + o) + load<f32>(beta + o));
    }
  }
}

export function f32_layernorm__scalar(rows: i32, n: i32, x: usize, ldx: i32, gamma: usize, beta: usize,
                                      y: usize, ldy: i32, eps: f64): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    let sum: f64 = 0;
    for (let i = 0; i < n; i++) sum += <f64>load<f32>(xr + (<usize>i << 2));
    const mean = sum / <f64>n;
    let ss: f64 = 0;
    for (let i = 0; i < n; i++) { const d = <f64>load<f32>(xr + (<usize>i << 2)) - mean; ss += d * d; }
    const inv = <f32>(1.0 / sqrt<f64>(ss / <f64>n + eps));
    const mf = <f32>mean;
    for (let i = 0; i < n; i++) {
      const o = <usize>i << 2;
      const t = (load<f32>(xr + o) - mf) * inv;
      store<f32>(yr + o, t * load<f32>(gamma + o) + load<f32>(beta + o));
    }
  }
}

// ------------------------------------------------------------------ RMSNorm
//   x     // [rows, n] row stride ldx
//   gamma // [n]
//   y     // [rows, n] row stride ldy; y == x (in place) is allowed
// y = x · 1/sqrt(mean(x²) + eps) · gamma. The sum of squares is taken in f64; the output pass is f32.

export function f32_rmsnorm__wasmsimd(rows: i32, n: i32, x: usize, ldx: i32, gamma: usize, y: usize, ldy: i32, eps: f64): void {
  const n4 = n & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    let s0 = f64x2.splat(0), s1 = s0;
    let i = 0;
    for (; i < n4; i += 4) {
      const v = v128.load(xr + (<usize>i << 2));
      const a = f64x2.promote_low_f32x4(v);
      const b = f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
      s0 = f64x2.add(s0, f64x2.mul(a, a));
      s1 = f64x2.add(s1, f64x2.mul(b, b));
    }
    s0 = f64x2.add(s0, s1);
    let ss = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
    for (; i < n; i++) { const t = <f64>load<f32>(xr + (<usize>i << 2)); ss += t * t; }
    const inv = <f32>(1.0 / sqrt<f64>(ss / <f64>n + eps));
    const invf = f32x4.splat(inv);
    i = 0;
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      v128.store(yr + o, f32x4.mul(f32x4.mul(v128.load(xr + o), invf), v128.load(gamma + o)));
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, load<f32>(xr + o) * inv * load<f32>(gamma + o));
    }
  }
}

export function f32_rmsnorm__scalar(rows: i32, n: i32, x: usize, ldx: i32, gamma: usize, y: usize, ldy: i32, eps: f64): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    let ss: f64 = 0;
    for (let i = 0; i < n; i++) { const t = <f64>load<f32>(xr + (<usize>i << 2)); ss += t * t; }
    const inv = <f32>(1.0 / sqrt<f64>(ss / <f64>n + eps));
    for (let i = 0; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, load<f32>(xr + o) * inv * load<f32>(gamma + o));
    }
  }
}

// ---------------------------------------------------------------- cross-chunk scan step
//   state    // [n] float64, updated in place: state ← g·state + delta
//   delta    // [n] float32 (a chunk's summary ΔS|Δz)
//   incoming // [n] float32: the state before the update, rounded to float32 (the chunk's incoming state)
// The same float64 operations as the JavaScript scan (a product, then a sum; no fused multiply-add),
// so the carried state is bit for bit the same. `incoming` may be `delta` itself (the runtime keeps
// one buffer for both): each delta is read before the incoming value over it is written.

export function f64_scan_step__wasmsimd(n: i32, g: f64, state: usize, delta: usize, incoming: usize): void {
  const gv = f64x2.splat(g);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const sp = state + (<usize>i << 3);
    const s0 = v128.load(sp), s1 = v128.load(sp + 16);
    const d = v128.load(delta + (<usize>i << 2));
    v128.store(incoming + (<usize>i << 2), v128.shuffle<f32>(f32x4.demote_f64x2_zero(s0), f32x4.demote_f64x2_zero(s1), 0, 1, 4, 5));
    v128.store(sp, f64x2.add(f64x2.mul(gv, s0), f64x2.promote_low_f32x4(d)));
    v128.store(sp + 16, f64x2.add(f64x2.mul(gv, s1), f64x2.promote_low_f32x4(v128.shuffle<f32>(d, d, 2, 3, 0, 1))));
  }
  for (; i < n; i++) {
    const sp = state + (<usize>i << 3);
    const v = load<f64>(sp);
    const d = <f64>load<f32>(delta + (<usize>i << 2));
    store<f32>(incoming + (<usize>i << 2), <f32>v);
    store<f64>(sp, g * v + d);
  }
}

export function f64_scan_step__scalar(n: i32, g: f64, state: usize, delta: usize, incoming: usize): void {
  for (let i = 0; i < n; i++) {
    const sp = state + (<usize>i << 3);
    const v = load<f64>(sp);
    const d = <f64>load<f32>(delta + (<usize>i << 2));
    store<f32>(incoming + (<usize>i << 2), <f32>v);
    store<f64>(sp, g * v + d);
  }
}

// ---------------------------------------------------------------- log-sum-exp
//   z   // [rows, n] float32, row stride ldz (logits)
//   out // [rows] float64: log Σ_j exp(z[r, j]) = max + log Σ exp(z − max), the sum on f64 lanes
// (exp_f64x2: relative error < 1e-13, arguments clamped at −700, where e^x < 1e-304 adds nothing);
// a NaN or +∞ logit gives NaN, every logit −∞ gives NaN, as the scalar formula does.

export function f64_logsumexp__wasmsimd(rows: i32, n: i32, z: usize, ldz: i32, out: usize): void {
  const n4 = n & ~3;
  for (let r = 0; r < rows; r++) {
    const zr = z + (<usize>r * <usize>ldz << 2);
    let mv = f32x4.splat(-Infinity);
    let i = 0;
    for (; i < n4; i += 4) mv = f32x4.max(mv, v128.load(zr + (<usize>i << 2)));
    let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; i < n; i++) m = max(m, load<f32>(zr + (<usize>i << 2)));
    const m64 = <f64>m, mm = f64x2.splat(m64);
    let s0 = f64x2.splat(0), s1 = s0;
    i = 0;
    for (; i < n4; i += 4) {
      const v = v128.load(zr + (<usize>i << 2));
      s0 = f64x2.add(s0, exp_f64x2(f64x2.sub(f64x2.promote_low_f32x4(v), mm)));
      s1 = f64x2.add(s1, exp_f64x2(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)), mm)));
    }
    s0 = f64x2.add(s0, s1);
    let s = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
    for (; i < n; i++) s += Math.exp(<f64>load<f32>(zr + (<usize>i << 2)) - m64);
    store<f64>(out + (<usize>r << 3), m64 + Math.log(s));
  }
}

export function f64_logsumexp__scalar(rows: i32, n: i32, z: usize, ldz: i32, out: usize): void {
  for (let r = 0; r < rows; r++) {
    const zr = z + (<usize>r * <usize>ldz << 2);
    let m: f64 = -Infinity;
    for (let i = 0; i < n; i++) { const v = <f64>load<f32>(zr + (<usize>i << 2)); if (v > m || isNaN(v)) m = v; }
    let s: f64 = 0;
    for (let i = 0; i < n; i++) s += Math.exp(<f64>load<f32>(zr + (<usize>i << 2)) - m);
    store<f64>(out + (<usize>r << 3), m + Math.log(s));
  }
}

// ---------------------------------------------------------------- activation
//   x // [rows, cols] row stride ldx, in place: x = act(x)

export function f32_act__wasmsimd(rows: i32, cols: i32, x: usize, ldx: i32, act: i32): void { act_rows(rows, cols, x, ldx, act, false); }

/** The former f32_act__wasmsimd: transcendental activations as two f64x2 halves (kept for the
 *  activation benchmark and as a second reference in the tests). */
export function f32_act__f64x2(rows: i32, cols: i32, x: usize, ldx: i32, act: i32): void { act_rows(rows, cols, x, ldx, act, true); }

export function f32_act__scalar(rows: i32, cols: i32, x: usize, ldx: i32, act: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    for (let i = 0; i < cols; i++) { const p = xr + (<usize>i << 2); store<f32>(p, act32(load<f32>(p), act)); }
  }
}

// ---------------------------------------------------------------------- gate
//   g // [rows, cols] row stride ldg;  o // [rows, cols] row stride ldo;  o = act(g) ⊙ o

// @ts-ignore: decorator
@inline function gate_rows_f32x4(rows: i32, cols: i32, g: usize, ldg: i32, o: usize, ldo: i32, code: i32): void {
  for (let r = 0; r < rows; r++) {
    const gr = g + (<usize>r * <usize>ldg << 2);
    const or = o + (<usize>r * <usize>ldo << 2);
    let i = 0;
    for (; i + 8 <= cols; i += 8) { // two vectors per step, as act_rows_f32x4
      const b = <usize>i << 2;
      const x = actv_inline(v128.load(gr + b), code), y = actv_inline(v128.load(gr + b, 16), code);
      v128.store(or + b, f32x4.mul(x, v128.load(or + b)));
      v128.store(or + b, f32x4.mul(y, v128.load(or + b, 16)), 16);
    }
    for (; i + 4 <= cols; i += 4) {
      const b = <usize>i << 2;
      v128.store(or + b, f32x4.mul(actv_inline(v128.load(gr + b), code), v128.load(or + b)));
    }
    if (i < cols) {
      const b = <usize>i << 2, m = cols - i;
      storeN(or + b, f32x4.mul(actv_inline(loadN(gr + b, m), code), loadN(or + b, m)), m);
    }
  }
}

export function f32_gate__wasmsimd(rows: i32, cols: i32, g: usize, ldg: i32, o: usize, ldo: i32, act: i32): void {
  switch (act) { // a constant code per copy of the loop
    case 0: gate_rows_f32x4(rows, cols, g, ldg, o, ldo, 0); return;
    case 1: gate_rows_f32x4(rows, cols, g, ldg, o, ldo, 1); return;
    case 2: gate_rows_f32x4(rows, cols, g, ldg, o, ldo, 2); return;
    case 3: gate_rows_f32x4(rows, cols, g, ldg, o, ldo, 3); return;
    case 4: gate_rows_f32x4(rows, cols, g, ldg, o, ldo, 4); return;
    case 5: gate_rows_f32x4(rows, cols, g, ldg, o, ldo, 5); return;
    default: gate_rows_f32x4(rows, cols, g, ldg, o, ldo, 0); return;
  }
}

export function f32_gate__scalar(rows: i32, cols: i32, g: usize, ldg: i32, o: usize, ldo: i32, act: i32): void {
  for (let r = 0; r < rows; r++) {
    const gr = g + (<usize>r * <usize>ldg << 2);
    const or = o + (<usize>r * <usize>ldo << 2);
    for (let i = 0; i < cols; i++) {
      const b = <usize>i << 2;
      store<f32>(or + b, act32(load<f32>(gr + b), act) * load<f32>(or + b));
    }
  }
}

// ------------------------------------------------------------------ residual
//   a // [rows, cols] row stride lda;  y // [rows, cols] row stride ldy;  y += a

export function f32_add__wasmsimd(rows: i32, cols: i32, a: usize, lda: i32, y: usize, ldy: i32): void {
  for (let r = 0; r < rows; r++) {
    const ar = a + (<usize>r * <usize>lda << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    let i = 0;
    for (; i + 4 <= cols; i += 4) {
      const b = <usize>i << 2;
      v128.store(yr + b, f32x4.add(v128.load(yr + b), v128.load(ar + b)));
    }
    for (; i < cols; i++) { const b = <usize>i << 2; store<f32>(yr + b, load<f32>(yr + b) + load<f32>(ar + b)); }
  }
}

export function f32_add__scalar(rows: i32, cols: i32, a: usize, lda: i32, y: usize, ldy: i32): void {
  for (let r = 0; r < rows; r++) {
    const ar = a + (<usize>r * <usize>lda << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    for (let i = 0; i < cols; i++) { const b = <usize>i << 2; store<f32>(yr + b, load<f32>(yr + b) + load<f32>(ar + b)); }
  }
}

// -------------------------------------------------------------- row scaling
//   x // [rows, cols] row stride ldx;  y // [rows, cols] row stride ldy (may be x)
//   s // row i's scale at s + i·sinc floats (sinc may be negative: a table read backwards)
//   y[i,:] = s_i · x[i,:]      (the CBLAS engine's decay-scaled copies of k and q)

export function f32_scale_rows__wasmsimd(rows: i32, cols: i32, x: usize, ldx: i32, s: usize, sinc: i32, y: usize, ldy: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    const c = load<f32>(s + <usize>(r * sinc << 2)), cv = f32x4.splat(c);
    let i = 0;
    for (; i + 4 <= cols; i += 4) { const b = <usize>i << 2; v128.store(yr + b, f32x4.mul(v128.load(xr + b), cv)); }
    for (; i < cols; i++) { const b = <usize>i << 2; store<f32>(yr + b, load<f32>(xr + b) * c); }
  }
}

export function f32_scale_rows__scalar(rows: i32, cols: i32, x: usize, ldx: i32, s: usize, sinc: i32, y: usize, ldy: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    const yr = y + (<usize>r * <usize>ldy << 2);
    const c = load<f32>(s + <usize>(r * sinc << 2));
    for (let i = 0; i < cols; i++) { const b = <usize>i << 2; store<f32>(yr + b, load<f32>(xr + b) * c); }
  }
}

// -------------------------------------------------------- masked row sums
//   a // [rows, cols] row stride lda, in place
//   m // row i's mask at m + i·ldm floats (ldm may be negative: the decay table slid one to the left per row)
//   a[i,:] ⊙= m_i;  r[i] = Σ_c a[i,c]
//   SIMD: four lane sums (column c in lane c mod 4) in blocks of 32 columns, then lanes (0+1)+(2+3);
//   scalar: in column order.

export function f32_mask_rowsum__wasmsimd(rows: i32, cols: i32, m: usize, ldm: i32, a: usize, lda: i32, r: usize): void {
  for (let i = 0; i < rows; i++) {
    const ar = a + (<usize>i * <usize>lda << 2);
    const mr = m + <usize>(i * ldm << 2);
    // lanes summed in blocks of 32 columns from zero, then across blocks: a row's float32 error
    // grows like 8 + cols/32 (+ the final 4-lane sum) instead of cols/4
    let acc = f32x4.splat(0);
    let c = 0;
    const c4 = cols & ~3;
    while (c < c4) {
      const ce = min(c4, c + 32);
      let blk = f32x4.splat(0);
      for (; c < ce; c += 4) {
        const b = <usize>c << 2;
        const t = f32x4.mul(v128.load(ar + b), v128.load(mr + b));
        v128.store(ar + b, t);
        blk = f32x4.add(blk, t);
      }
      acc = f32x4.add(acc, blk);
    }
    if (c < cols) {
      const b = <usize>c << 2, n = cols - c;
      const t = f32x4.mul(loadN(ar + b, n), loadN(mr + b, n)); // lanes ≥ n are 0·0
      storeN(ar + b, t, n);
      acc = f32x4.add(acc, t);
    }
    store<f32>(r + (<usize>i << 2), hsum(acc));
  }
}

export function f32_mask_rowsum__scalar(rows: i32, cols: i32, m: usize, ldm: i32, a: usize, lda: i32, r: usize): void {
  for (let i = 0; i < rows; i++) {
    const ar = a + (<usize>i * <usize>lda << 2);
    const mr = m + <usize>(i * ldm << 2);
    let acc: f32 = 0;
    for (let c = 0; c < cols; c++) {
      const b = <usize>c << 2;
      const t = load<f32>(ar + b) * load<f32>(mr + b);
      store<f32>(ar + b, t);
      acc += t;
    }
    store<f32>(r + (<usize>i << 2), acc);
  }
}

// -------------------------------------------------------------------- rotary
//   x        // [rows, heads·dk] row stride ldx, in place
//   cos, sin // [rows, dk/2] contiguous (row stride dk/2), computed by JS in f64
//   x[2i] ← x[2i]·c − x[2i+1]·s,  x[2i+1] ← x[2i+1]·c + x[2i]·s

export function f32_rotary__wasmsimd(rows: i32, heads: i32, dk: i32, x: usize, ldx: i32, cos: usize, sin: usize): void {
  const half = dk >> 1;
  const signs = f32x4(-1, 1, -1, 1);
  for (let r = 0; r < rows; r++) {
    const cr = cos + (<usize>r * <usize>half << 2);
    const sr = sin + (<usize>r * <usize>half << 2);
    for (let h = 0; h < heads; h++) {
      const xr = x + ((<usize>r * <usize>ldx + <usize>h * <usize>dk) << 2);
      let i = 0;
      for (; i + 2 <= half; i += 2) { // two pairs per v128
        const p = xr + (<usize>i << 3);
        const v = v128.load(p);
        const c2 = v128.load64_zero(cr + (<usize>i << 2));
        const s2 = v128.load64_zero(sr + (<usize>i << 2));
        const c = v128.shuffle<f32>(c2, c2, 0, 0, 1, 1);
        const s = f32x4.mul(v128.shuffle<f32>(s2, s2, 0, 0, 1, 1), signs);
        const sw = v128.shuffle<f32>(v, v, 1, 0, 3, 2);
        v128.store(p, f32x4.add(f32x4.mul(v, c), f32x4.mul(sw, s)));
      }
      if (i < half) {
        const p = xr + (<usize>i << 3);
        const a = load<f32>(p), b = load<f32>(p, 4);
        const c = load<f32>(cr + (<usize>i << 2)), s = load<f32>(sr + (<usize>i << 2));
        store<f32>(p, a * c - b * s);
        store<f32>(p, b * c + a * s, 4);
      }
    }
  }
}

export function f32_rotary__scalar(rows: i32, heads: i32, dk: i32, x: usize, ldx: i32, cos: usize, sin: usize): void {
  const half = dk >> 1;
  for (let r = 0; r < rows; r++) {
    const cr = cos + (<usize>r * <usize>half << 2);
    const sr = sin + (<usize>r * <usize>half << 2);
    for (let h = 0; h < heads; h++) {
      const xr = x + ((<usize>r * <usize>ldx + <usize>h * <usize>dk) << 2);
      for (let i = 0; i < half; i++) {
        const p = xr + (<usize>i << 3);
        const a = load<f32>(p), b = load<f32>(p, 4);
        const c = load<f32>(cr + (<usize>i << 2)), s = load<f32>(sr + (<usize>i << 2));
        store<f32>(p, a * c - b * s);
        store<f32>(p, b * c + a * s, 4);
      }
    }
  }
}

/** x[i] *= s for i < n (in place, float32 arithmetic): packing's scale of a weight's rows (k's dk^-1/2). */
export function f32_scale__wasmsimd(n: i32, x: usize, s: f32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) { const b = x + (<usize>i << 2); v128.store(b, f32x4.mul(v128.load(b), sv)); }
  for (; i < n; i++) { const b = x + (<usize>i << 2); store<f32>(b, load<f32>(b) * s); }
}
