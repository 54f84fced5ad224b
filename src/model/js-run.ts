// The js backend (float64 reference) over one sequence, window by window: the
// chunkwise and recurrent forms carry each layer's state (S, z) from window to
// window, so memory is bounded by the window whatever L; the parallel form is
// one window, the whole sequence. A window holds about JS_WINDOW_WORK
// multiply-adds per layer and at most JS_WINDOW_MAX_ROWS rows (whole chunks, at
// least one). Between windows and between layers it yields to the event loop
// and calls `check` (abort signal, close()), so a long forward stays
// cancellable: the latency is one layer of one window (of one chunk when a
// chunk alone is more work than that; of the whole sequence in the parallel form).
import * as js from '../backends/js.js';
import type { ModelSpec, ForwardRequest } from '../backends/executor.js';
import type { ChunkPlan } from '../options.js';
import type { RetentionFlags } from '../reference/ops.js';

/** Multiply-adds per layer per window of the js backend (≈ 20–50 ms of float64 work). */
export const JS_WINDOW_WORK = 2 ** 23;

/** At most this many rows per window (small models): keeps each window's arrays small. */
export const JS_WINDOW_MAX_ROWS = 2048;

/** Rows per window: whole chunks of C, about JS_WINDOW_WORK multiply-adds per layer. */
export function windowRows(spec: ModelSpec, C: number): number {
  const { d, H, dk, dv, hidden } = spec.dims;
  const widths = [d, ...hidden, d];
  let mlp = 0;
  for (let i = 0; i + 1 < widths.length; i++) mlp += widths[i] * widths[i + 1];
  const perRow = d * (2 * d + 3 * H * dv) + mlp + H * C * (dk + dv); // projections, output, MLP, intra-chunk retention
  const chunks = Math.min(Math.floor(JS_WINDOW_WORK / perRow / C), Math.floor(JS_WINDOW_MAX_ROWS / C));
  return Math.max(1, chunks) * C;
}

export interface JsRun {
  spec: ModelSpec;
  mode: ForwardRequest['mode'];
  plan: ChunkPlan;
  flags: RetentionFlags;
  /** Throws to stop (E_ABORTED, E_CLOSED); called at every yield. */
  check: () => void;
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Output width of a mode. */
export const outWidth = (spec: ModelSpec, mode: ForwardRequest['mode']) => (mode === 'retention' ? spec.dims.H * spec.dims.dv : spec.dims.d);

/** Sequence of length L: `read(start, into)` fills rows [start, start + n) ([n, d] float64),
 *  `write(start, y)` takes output rows [start, start + n) ([n, dOut] float64). */
export async function jsSequence(
  r: JsRun, L: number,
  read: (start: number, into: Float64Array) => void,
  write: (start: number, y: Float64Array) => void,
): Promise<void> {
  const { layers, dims, config } = r.spec;
  const { plan, flags } = r;
  const d = dims.d;
  const W = plan.form === 'parallel' ? L : windowRows(r.spec, plan.chunkSize);
  const used = r.mode === 'retnet' ? layers : layers.slice(0, 1);
  const states = plan.form === 'parallel' ? undefined : used.map(() => js.zeroLayerState(dims));
  const acts = { msr: config.msrGateFn, mlp: config.mlpGateFn };
  const buf = new Float64Array(Math.min(W, L) * d);
  for (let start = 0; start < L; start += W) {
    const n = Math.min(W, L - start);
    const x = n * d === buf.length ? buf : buf.subarray(0, n * d);
    read(start, x);
    // Windows start on chunk boundaries, so their chunks are the sequence's chunks.
    const wplan: ChunkPlan = plan.form === 'chunkwise' ? { form: 'chunkwise', chunkSize: Math.min(plan.chunkSize, n) } : plan;
    const pos0 = plan.form === 'parallel' ? 0 : start;
    let y: Float64Array;
    if (r.mode === 'retnet') {
      y = x;
      for (let l = 0; l < used.length; l++) {
        y = js.retnetForward([used[l]], dims, acts, y, n, wplan, flags, states ? [states[l]] : undefined, pos0);
        await yieldToLoop();
        r.check();
      }
    } else if (r.mode === 'msr') {
      y = js.msrForward(used[0].msr, dims, acts.msr, x, n, wplan, flags, states?.[0], pos0);
    } else {
      y = js.retentionAllHeads(js.projectMSR(used[0].msr, dims, x, n, pos0), n, dims, used[0].msr.decay, wplan, flags, states?.[0], pos0);
    }
    write(start, y);
    await yieldToLoop();
    r.check();
  }
}
