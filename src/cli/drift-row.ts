// One row of the drift study (retnet drift's table, CSV and JSON; the plot reads it too).
import type { BackendName, Precision } from '../options.js';

export interface DriftRow {
  backend: BackendName; stateDtype: 'float32' | 'float64';
  /** operand precision of the big matrix products ('bf16' on the wasm backend only; 'f64' on js, the
   *  float64 reference backend) */
  precision: Precision | 'f64';
  form: 'parallel' | 'chunkwise' | 'recurrent';
  numChunks: number | null; chunkSize: number; target: 'retention' | 'output';
  maxAbsError: number; relMaxError: number; nmse: number; seconds: number; error?: string;
}

/** The columns of drift.csv, in order (its header row). */
export const DRIFT_CSV_COLUMNS = ['backend', 'precision', 'stateDtype', 'form', 'numChunks', 'chunkSize', 'target', 'maxAbsError', 'relMaxError', 'nmse', 'seconds', 'error'] as const;
/** drift.json's `study` field, and the start of drift.svg's title: how a later run knows the files as drift's own
 *  (src/cli/safe-output.ts replaces only those). */
export const DRIFT_STUDY = 'retnet drift';
export const DRIFT_PLOT_TITLE = 'RetNet chunk-count drift';
