// The js backend (float64 reference) over one sequence, window by window: the
// chunkwise and recurrent forms carry each layer's state (S, z) from window to
// window, so memory is bounded by the window (JS_WINDOW_ROWS rows, rounded up
// to whole chunks) whatever L; the parallel form is one window, the whole
// sequence. Between windows and between layers it yields to the event loop and
// calls `check` (abort signal, close()), so a long forward stays cancellable.
import * as js from '../backends/js.js';
import type { ModelSpec, ForwardRequest } from '../backends/executor.js';
import type { ChunkPlan } from '../options.js';
import type { RetentionFlags } from '../reference/ops.js';

/** Rows per window of the js backend (rounded up to whole chunks). */
export const JS_WINDOW_ROWS = 2048;

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
  const W = plan.form === 'parallel' ? L : Math.ceil(JS_WINDOW_ROWS / plan.chunkSize) * plan.chunkSize;
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
