// Piscina chunk worker: runs phase A or phase C of one slab, or C of one layer
// and A of the next (docs/architecture.md §2)
// over the shared WebAssembly.Memory it received in workerData. The forward
// pass reads as a list of kernel calls; all shapes are in the comments.
import { workerData } from 'node:worker_threads';
import { createWorkerKernels, type EngineSpec } from '../src/runtime/worker-kernels.js';
import { maybeProfiled } from '../src/runtime/profile.js';
import { invSqrtDecaySums, rotaryTables } from '../src/wasm/tables.js';
import { ROW_BLOCK, type LayerPtrs, type SlabTask, type SlabResult } from '../src/runtime/messages.js';

const data = workerData as { memory: WebAssembly.Memory; engine: EngineSpec; variant: string; ready: Int32Array; profile?: SharedArrayBuffer };
// timing wrapper only under RETNET_PROFILE=1
const K = maybeProfiled(await createWorkerKernels(data.memory, data.engine, data.variant, data.ready), data.profile);
const memory = data.memory;
const F4 = 4;

/** Rotary tables cos/sin [len, dk/2] for the slab's absolute positions (float64, rounded once).
 *  Every layer of a window asks again for the same slab, usually with the same angles: this
 *  worker keeps the tables it computed (oldest out first, ≤ TABLE_CACHE_BYTES: a default window of
 *  8,192 rows needs 2 MiB at dk = 64) and copies them into the task's scratch — the same float32
 *  values; ~1% of a forward's CPU time saved (sin/cos for the 48 slab-layers of L = 4,096 in the seed
 *  model took 37.6 ms in a scratch timing). */
const TABLE_CACHE_BYTES = 4 * 2 ** 20;
const tableCache = new Map<string, { cos: Float32Array; sin: Float32Array }>();
let tableCacheBytes = 0;
function slabRotaryTables(t: SlabTask, Ly: LayerPtrs): void {
  const n = t.len * (t.dims.dk / 2);
  const cos = new Float32Array(memory.buffer, t.scratch.cos, n), sin = new Float32Array(memory.buffer, t.scratch.sin, n);
  const key = `${t.start}|${t.len}|${t.dims.dk}|${t.dims.angleF32 ? 'f32' : 'f64'}|${Ly.angle.join(',')}`;
  const hit = tableCache.get(key);
  if (hit) { cos.set(hit.cos); sin.set(hit.sin); return; }
  rotaryTables(Ly.angle, t.dims.dk, t.start, t.len, cos, sin, t.dims.angleF32);
  if (8 * n > TABLE_CACHE_BYTES) return;
  // evict the oldest entries until this one fits, reusing an evicted entry's arrays when
  // they have this length (no garbage: RSS stays flat however long the stream)
  let reuse: { cos: Float32Array; sin: Float32Array } | undefined;
  for (const [k, v] of tableCache) {
    if (tableCacheBytes + 8 * n <= TABLE_CACHE_BYTES) break;
    tableCache.delete(k); tableCacheBytes -= 8 * v.cos.length;
    if (v.cos.length === n) reuse = v;
  }
  const entry = reuse ?? { cos: new Float32Array(n), sin: new Float32Array(n) };
  entry.cos.set(cos); entry.sin.set(sin);
  tableCache.set(key, entry);
  tableCacheBytes += 8 * n;
}

/** y (=|+=) act(x·Wᵀ + b) on a packed weight: float32 panels, or BF16 widened per call into the task's `wide` scratch. */
function gemmW(t: SlabTask, bf16: boolean, x: number, M: number, Kd: number, ldx: number, W: number, N: number, b: number, y: number, ldy: number, act: number, acc: boolean): void {
  if (bf16) K.gemmBf16(x, M, Kd, ldx, W, N, b, y, ldy, act, acc, t.scratch.gemm, t.scratch.wide);
  else K.gemm(x, M, Kd, ldx, W, N, b, y, ldy, act, acc, t.scratch.gemm);
}

/** For each chunk of the slab: (chunk index in window, first row in window, first position, length). */
function* chunksOfSlab(t: SlabTask): Generator<[number, number, number, number]> {
  let c = t.chunk0;
  for (let off = 0; off < t.len; off += t.C, c++) yield [c, t.row + off, t.start + off, Math.min(t.C, t.len - off)];
}

/** The family's block norm (LayerNorm, or RMSNorm with the bias pointer unused) of rows of n features. */
function blockNorm(t: SlabTask, x: number, rows: number, n: number, ldx: number, w: number, b: number, y: number, ldy: number, rms: boolean): void {
  if (rms) K.rmsNorm(x, rows, n, ldx, w, t.dims.eps, y, ldy);
  else K.layerNorm(x, rows, n, ldx, w, b, t.dims.eps, y, ldy); // (the model's normEps; before: always 1e-5)
}

function phaseA(t: SlabTask, Ly: LayerPtrs): void {
  const { d, H, dk, dv, dqk, Wp } = t.dims;
  const { win, scratch: s } = t;
  const stride = dk * dv + dk;
  // pre-norm + fused projections, in row blocks: X[rows, d] → h[rb, d] → P[rows, Wp]
  for (let r0 = 0; r0 < t.len; r0 += ROW_BLOCK) {
    const rb = Math.min(ROW_BLOCK, t.len - r0);
    const row = t.row + r0;
    blockNorm(t, win.X + row * d * F4, rb, d, d, Ly.preNormW, Ly.preNormB, s.h, d, t.dims.normRms);
    gemmW(t, Ly.qkvgBf16, s.h, rb, d, d, Ly.qkvgW, Wp, Ly.qkvgB, win.P + row * Wp * F4, Wp, 0, false);
  }
  // rotary on q (cols [0, dqk)) and k (cols [dqk, 2·dqk)) of P
  slabRotaryTables(t, Ly);
  const P0 = win.P + t.row * Wp * F4;
  K.rotary(P0, t.len, H, dk, Wp, s.cos, s.sin);
  K.rotary(P0 + dqk * F4, t.len, H, dk, Wp, s.cos, s.sin);
  // chunk summaries, per chunk and head (the intra-chunk retention waits for phase C: its output then
  // needs only the slab's rows, in the task's scratch, not the whole window's)
  for (const [c, row, , n] of chunksOfSlab(t)) {
    for (let h = 0; h < H; h++) {
      const k = win.P + (row * Wp + dqk + h * dk) * F4;
      const v = win.P + (row * Wp + 2 * dqk + h * dv) * F4;
      const pow = Ly.pow + h * win.powStride * F4;
      const S = win.SUM + (c * H + h) * stride * F4;
      K.summary(k, v, n, dk, dv, Wp, Wp, pow, S, S + dk * dv * F4, s.tile);
    }
  }
}

/** Where the slab's retention output o [len, H·dv] goes: the task's scratch, or (mode 'retention', whose
 *  caller reads o itself after the window) the window's O. */
const slabO = (t: SlabTask): number => t.scratch.o || t.win.O + t.row * t.dims.H * t.dims.dv * F4;

function phaseC(t: SlabTask): void {
  const { d, H, dk, dv, dqk, Wp } = t.dims;
  const { win, layer: Ly, scratch: s } = t;
  const stride = dk * dv + dk;
  const O0 = slabO(t);
  // intra-chunk retention, the cross term from the incoming state, then the row normalisations
  for (const [c, row, pos, n] of chunksOfSlab(t)) {
    for (let h = 0; h < H; h++) {
      const q = win.P + (row * Wp + h * dk) * F4;
      const k = q + dqk * F4;
      const v = win.P + (row * Wp + 2 * dqk + h * dv) * F4;
      const o = O0 + ((row - t.row) * H * dv + h * dv) * F4;
      const r = win.R + (h * win.T + row) * F4;
      const pow = Ly.pow + h * win.powStride * F4;
      K.intra(q, k, v, n, dk, dv, Wp, Wp, Wp, pow, o, H * dv, r, s.tile);
      if (pos > 0) {
        const S = win.SIN + (c * H + h) * stride * F4;
        K.cross(q, n, dk, dv, Wp, pow, S, S + dk * dv * F4, o, H * dv, r, s.tile);
      }
      if (t.normalizeAttn) invSqrtDecaySums(t.layer.gamma[h], pos, n, new Float32Array(memory.buffer, s.inv, n));
      if (t.normalizeAttn || t.normalizeRetn) K.normalize(o, n, dv, H * dv, r, t.normalizeAttn ? s.inv : 0, t.normalizeRetn);
    }
  }
  if (t.mode === 'retention') return; // the caller wants o itself
  // group norm per head: O viewed as [len·H, dv], shared weights, in place
  blockNorm(t, O0, t.len * H, dv, dv, Ly.normW, Ly.normB, O0, dv, t.dims.groupRms);
  const X0 = win.X + t.row * d * F4;
  if (t.dims.gSplit) {
    // gate: O ← act(g) ⊙ O, g = pre-norm(x)·Wgᵀ + bg made here, a row block at a time into the MLP's hidden
    // scratch (the slab's x rows are those phase A read: only this task changes them, below)
    for (let r0 = 0; r0 < t.len; r0 += ROW_BLOCK) {
      const rb = Math.min(ROW_BLOCK, t.len - r0);
      blockNorm(t, X0 + r0 * d * F4, rb, d, d, Ly.preNormW, Ly.preNormB, s.h, d, t.dims.normRms);
      gemmW(t, Ly.gBf16, s.h, rb, d, d, Ly.gW, H * dv, Ly.gB, s.hidden, H * dv, 0, false);
      K.gate(s.hidden, H * dv, O0 + r0 * H * dv * F4, H * dv, rb, H * dv, t.acts.msr);
    }
  } else {
    // gate: O ← act(g) ⊙ O, g = P[:, 2·dqk + H·dv : 2·dqk + 2·H·dv]
    K.gate(win.P + (t.row * Wp + 2 * dqk + H * dv) * F4, Wp, O0, H * dv, t.len, H * dv, t.acts.msr);
  }
  if (t.mode === 'msr') {
    // y = O Woᵀ + bo replaces x (no residual)
    gemmW(t, Ly.oBf16, O0, t.len, H * dv, H * dv, Ly.oW, d, Ly.oB, X0, d, 0, false);
    return;
  }
  // x += O Woᵀ + bo
  gemmW(t, Ly.oBf16, O0, t.len, H * dv, H * dv, Ly.oW, d, Ly.oB, X0, d, 0, true);
  // x += MLP(x), in row blocks: LN → Linear+act → … → Linear (accumulated into x)
  for (let r0 = 0; r0 < t.len; r0 += ROW_BLOCK) {
    const rb = Math.min(ROW_BLOCK, t.len - r0);
    const xr = X0 + r0 * d * F4;
    blockNorm(t, xr, rb, d, d, Ly.mlpNormW, Ly.mlpNormB, s.h, d, t.dims.normRms);
    if (t.dims.swiglu) {
      // hidden [rb, 2I] = h·[Wgate; Wup]ᵀ; its up half ← act(gate half) ⊙ up half; x += up half · Wdownᵀ
      const [gu, down] = Ly.mlp;
      const I = gu.outDim / 2;
      gemmW(t, gu.bf16, s.h, rb, d, d, gu.W, gu.outDim, gu.b, s.hidden, gu.outDim, 0, false);
      K.gate(s.hidden, gu.outDim, s.hidden + I * F4, gu.outDim, rb, I, t.acts.mlp);
      gemmW(t, down.bf16, s.hidden + I * F4, rb, I, gu.outDim, down.W, down.outDim, down.b, xr, d, 0, true);
      continue;
    }
    let src = s.h, srcLd = d;
    Ly.mlp.forEach((m, i) => {
      const last = i === Ly.mlp.length - 1;
      if (last) {
        gemmW(t, m.bf16, src, rb, m.inDim, srcLd, m.W, m.outDim, m.b, xr, d, 0, true);
      } else {
        const dst = src === s.hidden ? s.hidden2 : s.hidden;
        gemmW(t, m.bf16, src, rb, m.inDim, srcLd, m.W, m.outDim, m.b, dst, m.outDim, t.acts.mlp, false);
        src = dst; srcLd = m.outDim;
      }
    });
  }
}

export default function run(task: SlabTask): SlabResult {
  const t0 = performance.now();
  if (task.crash) process.exit(70); // test hook: die mid-task
  // The coordinator may have grown the shared memory just before sending this task; a worker thread
  // normally sees the new size at once, but once (under load, 2026-12-06) a task's view was still the
  // old length ("Invalid typed array length"). grow(0) makes this thread take the current size.
  if (task.memBytes !== undefined && memory.buffer.byteLength < task.memBytes) {
    memory.grow(0);
    if (memory.buffer.byteLength < task.memBytes) throw new Error(`shared memory is ${memory.buffer.byteLength} bytes in this worker, ${task.memBytes} in the coordinator`);
  }
  if (task.kind === 'A') phaseA(task, task.layer);
  else {
    phaseC(task);
    if (task.kind === 'CA') phaseA(task, task.next!); // the slab's next layer starts at once: its rows are all it needs
  }
  return { ok: true, ms: performance.now() - t0 };
}
