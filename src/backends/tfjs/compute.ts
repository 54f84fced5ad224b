// The tfjs chunkwise forward (docs/architecture.md §1), written against the tfjs-core API
// so the same code runs on every engine (tfjs-node-gpu, webgpu, tfjs-node, wasm,
// cpu). Reads from the device are async only (webgpu in Node has no dataSync).
// It runs inside the tfjs worker; the main thread never imports it.
//
// Per layer, over a window of W whole chunks (T ≤ W·C tokens, B sequences):
//   pre-norm + one fused q|k|v|g projection     x [B·T, d] → [B·T, 2·dqk + 2·H·dv]
//   rotary (cos/sin in float64 from absolute positions, uploaded as float32)
//   chunks: q, k [B·H·N, C, dk], v [B·H·N, C, dv] (ragged last chunk zero-padded)
//   intra:  A = (q kᵀ) ⊙ D   [B·H·N, C, C];  I = A v;  r = Σ_j A
//   summaries ΔS = (k ⊙ ζ)ᵀ v [B·H·N, dk, dv], Δz = Σ_j ζ_j k_j [B·H·N, dk]
//   scan (incoming S, z of every chunk): float64 on the CPU, or float32 on the
//        device as one matMul with the decay matrix Γ[c, c'] = γ^(s_c − e_c')
//   cross X = (q ⊙ ξ) S_in, row sums (q ⊙ ξ)·z_in; normalisations; group norm;
//   gate; output projection; residual; MLP; residual.
import type * as TF from '@tensorflow/tfjs';
import type { ActName, RetentionFlags } from '../../reference/ops.js';
import type { Dims } from '../../model/config.js';
import { DEFAULT_WINDOW_ELEMS } from './engines.js';

export type Tf = typeof TF;
type T = TF.Tensor;

// ---------------------------------------------------------------- wire format

export interface WireLinear { W: Float32Array /* [out, in] */; b: Float32Array | null; inDim: number; outDim: number }
export interface WireNorm { weight: Float32Array; bias: Float32Array }
export interface WireLayer {
  msr: {
    preNorm: WireNorm; q: WireLinear; k: WireLinear; v: WireLinear; g: WireLinear; o: WireLinear;
    norm: WireNorm; angle: Float64Array /* [dk] */; decay: Float64Array /* [H] */;
  };
  mlp: { norm: WireNorm; linears: WireLinear[] };
}
export interface WireModel { dims: Dims; acts: { msr: ActName; mlp: ActName }; layers: WireLayer[] }

export interface ForwardArgs {
  x: Float32Array;      // [B, L, d]
  B: number; L: number;
  /** 'retention' (debug/tests): layer 0's retention output o after the normalisations,
   *  before the group norm, as [B, L, H·dv]. */
  mode: 'retnet' | 'msr' | 'retention';
  chunkSize: number;    // C (L for the parallel form, 1 for the recurrent one)
  flags: RetentionFlags;
  stateDtype: 'float64' | 'float32';
  /** Bound on the elements of the largest per-window intermediate (default 2^24). */
  windowElems?: number;
}

// ---------------------------------------------------------------- uploaded weights

interface UpNorm { w: T; b: T }
interface UpLinear { Wt: T /* [in, out] */; b: T | null }
interface UpLayer {
  preNorm: UpNorm;
  qkvg: UpLinear;        // [d, 2d + 2·H·dv]; k's columns pre-scaled by dk^-0.5
  o: UpLinear; norm: UpNorm;
  angle: Float64Array; gammas: Float64Array;
  mlpNorm: UpNorm; mlp: UpLinear[];
}
export interface Uploaded { dims: Dims; acts: { msr: ActName; mlp: ActName }; layers: UpLayer[]; tensors: T[] }

export function upload(tf: Tf, m: WireModel): Uploaded {
  const tensors: T[] = [];
  const keep = <X extends T>(t: X): X => { tensors.push(t); return t; };
  const norm = (n: WireNorm): UpNorm => ({ w: keep(tf.tensor1d(n.weight)), b: keep(tf.tensor1d(n.bias)) });
  const lin = (l: WireLinear): UpLinear => ({
    Wt: keep(tf.tidy(() => tf.tensor2d(l.W, [l.outDim, l.inDim]).transpose())),
    b: l.b ? keep(tf.tensor1d(l.b)) : null,
  });
  const { d, dk } = m.dims;
  // k carries dk^-½ in every family: q·(k·s) = (q·s)·k (src/model/arch.ts)
  const layers = m.layers.map((lw): UpLayer => {
    const s = lw.msr;
    // Fuse q|k|v|g: rows stacked [2d + 2·H·dv, d]; k scaled in float64, rounded once.
    const scale = 1 / Math.sqrt(dk);
    const rows = s.q.outDim + s.k.outDim + s.v.outDim + s.g.outDim;
    const W = new Float32Array(rows * d), b = new Float32Array(rows);
    let r = 0;
    for (const [l, sc] of [[s.q, 1], [s.k, scale], [s.v, 1], [s.g, 1]] as const) {
      for (let i = 0; i < l.outDim * d; i++) W[r * d + i] = l.W[i] * sc;
      for (let i = 0; i < l.outDim; i++) b[r + i] = l.b ? l.b[i] * sc : 0;
      r += l.outDim;
    }
    return {
      preNorm: norm(s.preNorm),
      qkvg: lin({ W, b, inDim: d, outDim: rows }),
      o: lin(s.o), norm: norm(s.norm),
      angle: Float64Array.from(s.angle), gammas: Float64Array.from(s.decay, (x) => Math.exp(x)),
      mlpNorm: norm(lw.mlp.norm), mlp: lw.mlp.linears.map(lin),
    };
  });
  return { dims: m.dims, acts: m.acts, layers, tensors };
}

export function release(u: Uploaded): void { for (const t of u.tensors) t.dispose(); u.tensors.length = 0; }

// ---------------------------------------------------------------- small ops

/** LayerNorm over the last axis (biased variance, eps inside the sqrt), robust
 *  to huge rows: float32 moments of a raw row overflow once |x| passes ~1e19,
 *  where the wasm kernels (float64 sums) still give the right answer. So each
 *  row is scaled by a power of two s ≈ 1/max|x| (exact where the engine's pow
 *  is; eps scaled by s² to match, floored at the least normal float32 so a constant row still gives
 *  0·finite = 0) and shifted by its first entry (the variance is shift-free, and
 *  a constant row becomes exactly 0). Rows of ±1e38 then agree with wasm. */
function layerNorm(tf: Tf, x: T, n: UpNorm, epsilon: number): T {
  const amax = tf.maximum(tf.max(tf.abs(x), -1, true), 1e-30);
  const s = tf.pow(2, tf.clipByValue(tf.floor(tf.log(amax).div(-Math.LN2)), -126, 126)); // normal float32 powers of two
  const xs = x.mul(s);
  const xc = xs.sub(xs.slice(xs.shape.map(() => 0), [...xs.shape.slice(0, -1), 1]));
  const { mean, variance } = tf.moments(xc, -1, true);
  const eps = tf.maximum(s.square().mul(epsilon), 1.1754944e-38);
  return xc.sub(mean).mul(tf.rsqrt(variance.add(eps))).mul(n.w).add(n.b);
}

/** RMSNorm over the last axis: x · rsqrt(mean(x²) + eps) · w, with the row scaled by a power of two
 *  first (as layerNorm does) so that float32 squares of huge rows do not overflow. */
function rmsNorm(tf: Tf, x: T, n: UpNorm, eps: number): T {
  const amax = tf.maximum(tf.max(tf.abs(x), -1, true), 1e-30);
  const s = tf.pow(2, tf.clipByValue(tf.floor(tf.log(amax).div(-Math.LN2)), -126, 126));
  const xs = x.mul(s);
  const ms = xs.square().mean(-1, true);
  const e = tf.maximum(s.square().mul(eps), 1.1754944e-38);
  return xs.mul(tf.rsqrt(ms.add(e))).mul(n.w);
}

/** The family's norm (dims.arch): LayerNorm or RMSNorm, with the model's eps (dims.normEps; before,
 *  LayerNorm kept 1e-5 whatever the model said). */
function norm(tf: Tf, x: T, n: UpNorm, dims: Dims, kind: 'layernorm' | 'rmsnorm'): T {
  return kind === 'rmsnorm' ? rmsNorm(tf, x, n, dims.normEps) : layerNorm(tf, x, n, dims.normEps);
}

function linear(tf: Tf, x: T, l: UpLinear): T {
  const y = tf.matMul(x as TF.Tensor2D, l.Wt as TF.Tensor2D);
  return l.b ? y.add(l.b) : y;
}

function act(tf: Tf, x: T, name: ActName): T {
  switch (name) {
    case 'gelu': return x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5); // exact (erf) gelu
    case 'silu': return x.mul(tf.sigmoid(x));
    case 'relu': return tf.relu(x);
    case 'selu': return tf.selu(x);
    case 'sigmoid': return tf.sigmoid(x);
  }
}

/** Rotary on x [B·T, H·dk] at absolute positions pos0 … pos0+T−1. cos/sin in float64. */
function rotary(tf: Tf, x: T, B: number, T_: number, H: number, dk: number, angle: Float64Array, pos0: number, f32Product = false): T {
  const half = dk / 2;
  const cos = new Float32Array(T_ * half), sin = new Float32Array(T_ * half);
  for (let t = 0; t < T_; t++) for (let i = 0; i < half; i++) {
    const a = f32Product ? Math.fround((pos0 + t) * angle[2 * i]) : (pos0 + t) * angle[2 * i];
    cos[t * half + i] = Math.cos(a); sin[t * half + i] = Math.sin(a);
  }
  const c = tf.tensor4d(cos, [1, T_, 1, half]), s = tf.tensor4d(sin, [1, T_, 1, half]);
  // pairs (x[2i], x[2i+1]) → (x0 cos − x1 sin, x1 cos + x0 sin)
  const x5 = x.reshape([B * T_ * H * half, 2]);
  const [x0, x1] = tf.split(x5, 2, 1).map((p) => p.reshape([B, T_, H, half]));
  const y0 = x0.mul(c).sub(x1.mul(s)), y1 = x1.mul(c).add(x0.mul(s));
  return tf.stack([y0, y1], 4).reshape([B * T_, H * dk]);
}

/** [B·T, H·w] → [B·H·N, C, w] with T zero-padded to N·C. */
function toChunks(tf: Tf, a: T, B: number, T_: number, H: number, w: number, N: number, C: number): T {
  let t = a.reshape([B, T_, H, w]).transpose([0, 2, 1, 3]);
  if (N * C > T_) t = tf.pad(t as TF.Tensor4D, [[0, 0], [0, 0], [0, N * C - T_], [0, 0]]);
  return t.reshape([B * H * N, C, w]);
}

// ---------------------------------------------------------------- state

/** Per-layer carried state of all B·H heads: float64 on the CPU or float32 tensors. */
type LayerState =
  | { kind: 'float64'; S: Float64Array /* [B·H, dk, dv] */; z: Float64Array /* [B·H, dk] */ }
  | { kind: 'float32'; S: T /* [B·H, dk·dv] */; z: T /* [B·H, dk] */ };

/** Chunk layout of a window: N chunks, chunk c covers [start[c], start[c] + len[c]). */
interface Window { T: number; N: number; C: number; pos0: number; len: number[]; start: number[] }

// ---------------------------------------------------------------- one MSR layer

/** Decay tables of a window in float64, uploaded as float32:
 *   D [1, H, 1, C·C]: γ^(i−j) for j ≤ i;  ζ [1, H, N·C, 1]: γ^(n_c−1−j) (0 on padding);
 *   ξ [1, H, N·C, 1]: γ^(i+1);  inv [1, H, N·C, 1]: 1/sqrt(c_pos) (normalizeAttn). */
interface Tables { D: Float32Array; zeta: Float32Array; xi: Float32Array; inv: Float32Array | null }

function decayTables(g64: Float64Array, w: Window, normalizeAttn: boolean): Tables {
  const H = g64.length, { N, C, pos0 } = w;
  const D = new Float32Array(H * C * C), zeta = new Float32Array(H * N * C), xi = new Float32Array(H * N * C);
  const inv = normalizeAttn ? new Float32Array(H * N * C) : null;
  for (let hh = 0; hh < H; hh++) {
    const gm = g64[hh];
    const pw = new Float64Array(C + 1);
    pw[0] = 1;
    for (let i = 1; i <= C; i++) pw[i] = Math.pow(gm, i);
    for (let i = 0; i < C; i++) for (let j = 0; j <= i; j++) D[(hh * C + i) * C + j] = pw[i - j];
    for (let c = 0; c < N; c++) {
      const n = w.len[c];
      for (let j = 0; j < C; j++) {
        const o = (hh * N + c) * C + j;
        zeta[o] = j < n ? pw[n - 1 - j] : 0;
        xi[o] = pw[j + 1];
        if (inv) {
          const pos = pos0 + w.start[c] + j;
          const cn = gm === 1 ? pos + 1 : -Math.expm1((pos + 1) * Math.log(gm)) / (1 - gm);
          inv[o] = 1 / Math.sqrt(cn);
        }
      }
    }
  }
  return { D, zeta, xi, inv };
}

/** What the first half of a layer hands to the scan and the second half (a type, not an
 *  interface, so tf.tidy accepts it as a TensorContainer). */
type Intra = { q: T /* [BHN, C, dk] */; g: T /* [B·T, H·dv] */; r: T /* [BHN, C] */; I: T /* [BHN, C, dv] */; dS: T /* [BHN, dk, dv] */; dz: T /* [BHN, dk] */ };

/** Projections, rotary, intra-chunk retention and the chunk summaries (call inside a tidy). */
function intraChunk(tf: Tf, U: UpLayer, u: Uploaded, x: T, B: number, w: Window, tab: Tables): Intra {
  const { H, dk, dv, dqk } = u.dims;
  const { T: T_, N, C, pos0 } = w;
  const BHN = B * H * N;
  const h = norm(tf, x, U.preNorm, u.dims, u.dims.arch.norm);
  const p = linear(tf, h, U.qkvg);
  const [q0, k0, v0, g] = tf.split(p, [dqk, dqk, H * dv, H * dv], 1);
  const f32 = u.dims.arch.angleProduct === 'float32';
  const q = toChunks(tf, rotary(tf, q0, B, T_, H, dk, U.angle, pos0, f32), B, T_, H, dk, N, C);
  const k = toChunks(tf, rotary(tf, k0, B, T_, H, dk, U.angle, pos0, f32), B, T_, H, dk, N, C);
  const v = toChunks(tf, v0, B, T_, H, dv, N, C);

  // intra-chunk
  const A = tf.matMul(q as TF.Tensor3D, k as TF.Tensor3D, false, true)
    .reshape([B, H, N, C * C]).mul(tf.tensor4d(tab.D, [1, H, 1, C * C])).reshape([BHN, C, C]);
  const r = A.sum(2);                                        // [BHN, C]
  const I = tf.matMul(A as TF.Tensor3D, v as TF.Tensor3D);   // [BHN, C, dv]

  // summaries
  const kz = k.reshape([B, H, N * C, dk]).mul(tf.tensor4d(tab.zeta, [1, H, N * C, 1])).reshape([BHN, C, dk]);
  const dS = tf.matMul(kz as TF.Tensor3D, v as TF.Tensor3D, true, false); // [BHN, dk, dv]
  const dz = kz.sum(1);                                                    // [BHN, dk]
  return { q, g, r, I, dS, dz };
}

/** The float64 scan on the CPU: the incoming (S, z) of every chunk as float32 [BHN, dk, dv],
 *  [BHN, dk]; st advances to the state after the window. */
function scan64(st: { S: Float64Array; z: Float64Array }, dSd: Float32Array, dzd: Float32Array, g64: Float64Array, B: number, w: Window, dk: number, dv: number): { Sf: Float32Array; zf: Float32Array } {
  const H = g64.length, N = w.N, BHN = B * H * N, SZ = dk * dv;
  const Sf = new Float32Array(BHN * SZ), zf = new Float32Array(BHN * dk);
  for (let bh = 0; bh < B * H; bh++) {
    const gm = g64[bh % H];
    const S = st.S.subarray(bh * SZ, (bh + 1) * SZ), z = st.z.subarray(bh * dk, (bh + 1) * dk);
    for (let c = 0; c < N; c++) {
      const i = bh * N + c;
      Sf.set(S, i * SZ); zf.set(z, i * dk);
      const gn = Math.pow(gm, w.len[c]);
      for (let e = 0; e < SZ; e++) S[e] = gn * S[e] + dSd[i * SZ + e];
      for (let e = 0; e < dk; e++) z[e] = gn * z[e] + dzd[i * dk + e];
    }
  }
  return { Sf, zf };
}

/** The float32 scan on the device as one matMul (call inside a tidy): the incoming S [BHN, dk, dv]
 *  and z [BHN, dk, 1] of every chunk; st's tensors are replaced by the state after the window. */
function scan32(tf: Tf, st: { S: T; z: T }, dS: T, dz: T, g64: Float64Array, B: number, w: Window, dk: number, dv: number): { Sin: T; zin: T } {
  const H = g64.length, { T: T_, N } = w, BHN = B * H * N;
  // Γ [H, N+1, N]: Γ[c, c'] = γ^(s_c − e_c') for c' < c (row N is the window's end);
  // P [H, N+1]: γ^(s_c) for the state carried in.
  const G = new Float32Array(H * (N + 1) * N), P = new Float32Array(H * (N + 1));
  for (let hh = 0; hh < H; hh++) for (let c = 0; c <= N; c++) {
    const s = c < N ? w.start[c] : T_;
    P[hh * (N + 1) + c] = Math.pow(g64[hh], s);
    for (let c2 = 0; c2 < c; c2++) G[(hh * (N + 1) + c) * N + c2] = Math.pow(g64[hh], s - (w.start[c2] + w.len[c2]));
  }
  const Gt = tf.tensor4d(G, [1, H, N + 1, N]).tile([B, 1, 1, 1]).reshape([B * H, N + 1, N]);
  const Pt = tf.tensor4d(P, [1, H, N + 1, 1]).tile([B, 1, 1, 1]).reshape([B * H, N + 1, 1]);
  const Sall = tf.matMul(Gt as TF.Tensor3D, dS.reshape([B * H, N, dk * dv]) as TF.Tensor3D)
    .add(Pt.mul(st.S.reshape([B * H, 1, dk * dv])));         // [BH, N+1, dk·dv]
  const zall = tf.matMul(Gt as TF.Tensor3D, dz.reshape([B * H, N, dk]) as TF.Tensor3D)
    .add(Pt.mul(st.z.reshape([B * H, 1, dk])));              // [BH, N+1, dk]
  const Sin = Sall.slice([0, 0, 0], [B * H, N, dk * dv]).reshape([BHN, dk, dv]);
  const zin = zall.slice([0, 0, 0], [B * H, N, dk]).reshape([BHN, dk, 1]);
  const Snext = tf.keep(Sall.slice([0, N, 0], [B * H, 1, dk * dv]).reshape([B * H, dk * dv]));
  const znext = tf.keep(zall.slice([0, N, 0], [B * H, 1, dk]).reshape([B * H, dk]));
  st.S.dispose(); st.z.dispose();
  st.S = Snext; st.z = znext;
  return { Sin, zin };
}

/** Cross-chunk part, the row normalisations, group norm, gate and output projection
 *  (call inside a tidy). retentionOnly: return o [B·T, H·dv] before the group norm. */
function crossChunk(tf: Tf, U: UpLayer, u: Uploaded, it: Intra, Sin: T, zin: T, B: number, w: Window, tab: Tables, flags: RetentionFlags, retentionOnly: boolean): T {
  const { H, dk, dv } = u.dims;
  const { T: T_, N, C } = w;
  const BHN = B * H * N;
  const qx = it.q.reshape([B, H, N * C, dk]).mul(tf.tensor4d(tab.xi, [1, H, N * C, 1])).reshape([BHN, C, dk]);
  let o = it.I.add(tf.matMul(qx as TF.Tensor3D, Sin as TF.Tensor3D)).reshape([B, H, N * C, dv]);
  let rs = it.r.add(tf.matMul(qx as TF.Tensor3D, zin as TF.Tensor3D).reshape([BHN, C])).reshape([B, H, N * C, 1]);
  if (tab.inv) {
    const iv = tf.tensor4d(tab.inv, [1, H, N * C, 1]);
    o = o.mul(iv); rs = rs.mul(iv);
  }
  if (flags.normalizeRetn) o = o.div(tf.maximum(rs.abs(), 1));
  if (N * C > T_) o = o.slice([0, 0, 0, 0], [B, H, T_, dv]);

  if (retentionOnly) return o.transpose([0, 2, 1, 3]).reshape([B * T_, H * dv]);
  // group norm per head, gate, output projection
  const on = norm(tf, o, U.norm, u.dims, u.dims.arch.groupNorm).transpose([0, 2, 1, 3]).reshape([B * T_, H * dv]);
  return linear(tf, act(tf, it.g, u.acts.msr).mul(on), U.o);
}

/** One MSR layer on a window: intra-chunk work and summaries, the scan (float64: summaries read
 *  back with an async read, as webgpu in Node has no synchronous one), then the cross-chunk part.
 *  Returns the layer output; every other tensor it makes is disposed. */
async function msrLayer(tf: Tf, U: UpLayer, u: Uploaded, x: T, B: number, w: Window, flags: RetentionFlags, st: LayerState, retentionOnly = false): Promise<T> {
  const { dk, dv } = u.dims;
  const tab = decayTables(U.gammas, w, flags.normalizeAttn);
  const it = tf.tidy<Intra>(() => intraChunk(tf, U, u, x, B, w, tab));
  try {
    if (st.kind === 'float64') {
      const [dSd, dzd] = await Promise.all([it.dS.data() as Promise<Float32Array>, it.dz.data() as Promise<Float32Array>]);
      const { Sf, zf } = scan64(st, dSd, dzd, U.gammas, B, w, dk, dv);
      const BHN = B * u.dims.H * w.N;
      return tf.tidy(() => crossChunk(tf, U, u, it, tf.tensor3d(Sf, [BHN, dk, dv]), tf.tensor3d(zf, [BHN, dk, 1]), B, w, tab, flags, retentionOnly));
    }
    return tf.tidy(() => {
      const { Sin, zin } = scan32(tf, st, it.dS, it.dz, U.gammas, B, w, dk, dv);
      return crossChunk(tf, U, u, it, Sin, zin, B, w, tab, flags, retentionOnly);
    });
  } finally { tf.dispose(it); }
}

function mlp(tf: Tf, U: UpLayer, u: Uploaded, x: T): T {
  let h = norm(tf, x, U.mlpNorm, u.dims, u.dims.arch.norm);
  if (u.dims.arch.mlp === 'swiglu') {
    // [gate | up] in one Linear: down(act(gate) ⊙ up)
    const z = linear(tf, h, U.mlp[0]);
    const I = z.shape[1]! / 2;
    const [gate, up] = tf.split(z, [I, I], 1);
    return linear(tf, act(tf, gate, u.acts.mlp).mul(up), U.mlp[1]);
  }
  U.mlp.forEach((l, i) => {
    h = linear(tf, h, l);
    if (i + 1 < U.mlp.length) h = act(tf, h, u.acts.mlp);
  });
  return h;
}

// ---------------------------------------------------------------- forward

/** Chunks per window: bounded so the largest intermediates stay ≤ windowElems elements. */
export function chunksPerWindow(u: Uploaded, B: number, L: number, C: number, stateDtype: 'float64' | 'float32', windowElems = DEFAULT_WINDOW_ELEMS): number {
  const { d, H, dk, dv, dqk, hidden } = u.dims;
  const widest = Math.max(2 * dqk + 2 * H * dv, ...hidden.map((w) => (u.dims.arch.mlp === 'swiglu' ? 2 * w : w)), d);
  const total = Math.ceil(L / C);
  const cap = stateDtype === 'float32' ? 64 : 512; // the float32 scan's Γ matMul is O(N²·dk·dv)
  const n = Math.min(total, cap,
    Math.floor(windowElems / (B * H * C * C)),
    Math.floor(windowElems / (B * H * dk * dv)),
    Math.floor(windowElems / (B * C * widest)));
  return Math.max(1, n);
}

/** The whole forward. Calls onWindow(tokensDone) after each window. Every tensor it makes is disposed. */
export async function forward(tf: Tf, u: Uploaded, a: ForwardArgs, onWindow?: (tokensDone: number) => void | Promise<void>): Promise<Float32Array> {
  const { B, L, chunkSize: C } = a;
  const { d, H, dk, dv } = u.dims;
  const layers = a.mode === 'retnet' ? u.layers : u.layers.slice(0, 1);
  const dOut = a.mode === 'retention' ? H * dv : d;
  const W = chunksPerWindow(u, B, L, C, a.stateDtype, a.windowElems);
  const out = new Float32Array(B * L * dOut);
  const states: LayerState[] = layers.map(() => a.stateDtype === 'float64'
    ? { kind: 'float64', S: new Float64Array(B * H * dk * dv), z: new Float64Array(B * H * dk) }
    : { kind: 'float32', S: tf.zeros([B * H, dk * dv]), z: tf.zeros([B * H, dk]) });
  try {
    for (let s = 0; s < L; s += W * C) {
      const T_ = Math.min(W * C, L - s);
      const N = Math.ceil(T_ / C);
      const win: Window = { T: T_, N, C, pos0: s, len: [], start: [] };
      for (let c = 0; c < N; c++) { win.start.push(c * C); win.len.push(Math.min(C, T_ - c * C)); }
      const xw = new Float32Array(B * T_ * d);
      for (let b = 0; b < B; b++) xw.set(a.x.subarray((b * L + s) * d, (b * L + s + T_) * d), b * T_ * d);
      let x: T = tf.tensor2d(xw, [B * T_, d]);
      try {
        for (let l = 0; l < layers.length; l++) {
          const U = layers[l];
          const m = await msrLayer(tf, U, u, x, B, win, a.flags, states[l], a.mode === 'retention');
          const prev = x;
          if (a.mode !== 'retnet') x = m;
          else {
            x = tf.tidy(() => { const x1 = prev.add(m); return x1.add(mlp(tf, U, u, x1)); });
            m.dispose();
          }
          prev.dispose();
        }
        const yd = await x.data() as Float32Array;
        for (let b = 0; b < B; b++) out.set(yd.subarray(b * T_ * dOut, (b + 1) * T_ * dOut), (b * L + s) * dOut);
      } finally { x.dispose(); }
      await onWindow?.(B * (s + T_));
    }
  } finally {
    for (const st of states) if (st.kind === 'float32') { st.S.dispose(); st.z.dispose(); }
  }
  return out;
}
