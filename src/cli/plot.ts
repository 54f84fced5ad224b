// The drift study's plot: error relative to max|ref| against the chunk count,
// log–log, one line per backend/state precision, one panel per target.
// Rendered to SVG in Node by vega 5 + vega-lite 5 (headless: renderer 'none'
// plus toSVG(), no browser or canvas needed; vega-lite 6 needs Node 22).
// vega and vega-lite are optional peer dependencies (39 of a plain install's
// 50 MB, for this plot alone): absent, the plot is an E_ENGINE error that says
// how to install them.
import { DRIFT_PLOT_TITLE, type DriftRow } from './drift-row.js';
import { errors } from '../errors.js';

/** The pinned versions the plot is made with (package.json peerDependencies). */
export const VEGA_PACKAGES = { vega: '5.33.1', 'vega-lite': '5.23.0' } as const;

type Loader = (name: string) => Promise<Record<string, unknown>>;

async function loadVega(load: Loader): Promise<{ vega: typeof import('vega'); vl: typeof import('vega-lite') }> {
  try {
    return { vega: await load('vega') as unknown as typeof import('vega'), vl: await load('vega-lite') as unknown as typeof import('vega-lite') };
  } catch (e) {
    const code = (e as { code?: string })?.code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw e;
    const pins = Object.entries(VEGA_PACKAGES).map(([n, v]) => `${n}@${v}`).join(' ');
    throw errors.engine(`the drift plot (drift.svg) needs the optional packages ${pins}, which are not installed: ` +
      `npm install ${pins} (the 5.x lines render on Node 20; the table, drift.csv and drift.json do not need them)`, e);
  }
}

/** Floor for log axes: exact agreement (0) is drawn at this value. */
export const PLOT_FLOOR = 1e-17;

export async function driftSvg(rows: DriftRow[], L: number, load: Loader = (name) => import(name)): Promise<string> {
  const { vega, vl } = await loadVega(load);
  const values = rows.filter((r) => !r.error).map((r) => ({
    series: `${r.backend}${r.precision === 'bf16' ? ' bf16' : ''} / state ${r.stateDtype}`,
    // the recurrent form is one token per chunk: drawn at x = L with its own marker
    chunks: r.form === 'parallel' ? 1 : r.form === 'recurrent' ? L : r.numChunks,
    form: r.form,
    target: r.target === 'retention' ? 'retention output (layer 0, before group norm)' : 'model output',
    error: Math.max(r.relMaxError, PLOT_FLOOR),
  }));
  const x = { field: 'chunks', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'chunk count (numChunks; recurrent drawn at L)' };
  const y = { field: 'error', type: 'quantitative', scale: { type: 'log' }, title: `max|Δ| / max|ref|  (0 drawn at ${PLOT_FLOOR})`, axis: { format: '.0e' } };
  const color = { field: 'series', type: 'nominal', title: 'backend / state precision', legend: { labelLimit: 400, titleLimit: 400 } };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${DRIFT_PLOT_TITLE}, L = ${L}: each backend and precision vs the float64 reference`,
    data: { values },
    facet: { column: { field: 'target', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 360, height: 260,
      layer: [
        { transform: [{ filter: "datum.form === 'chunkwise'" }], mark: { type: 'line', point: true }, encoding: { x, y, color } },
        { transform: [{ filter: "datum.form !== 'chunkwise'" }], mark: { type: 'point', size: 90, filled: false },
          encoding: { x, y, color, shape: { field: 'form', type: 'nominal', title: 'form', scale: { domain: ['parallel', 'recurrent'], range: ['square', 'diamond'] } } } },
      ],
    },
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const compiled = vl.compile(spec as any).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
