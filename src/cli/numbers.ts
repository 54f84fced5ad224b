// The CLI's one number parser: every numeric flag of every command goes
// through intOption / intListOption / numberOption, so they all accept and
// refuse the same spellings. Accepted: plain decimal digits with an optional
// leading '-' (integers) and an optional fraction (numbers). Refused, as a
// UsageError (exit 2) naming the flag: exponents (1e1), hex (0x4), '+',
// surrounding spaces, empty strings, Infinity/NaN, integers beyond 2^53 and
// anything outside the flag's range.
import { MAX_WORKERS } from '../options.js';
import { UsageError, noRepeats } from './usage-error.js';

export { MAX_WORKERS };

export interface IntRange {
  /** smallest value (default 1) */
  min?: number;
  /** largest value (default Number.MAX_SAFE_INTEGER) */
  max?: number;
  /** -1 is accepted as well (a "recurrent" chunk count) */
  allowMinusOne?: boolean;
}

const INT = /^-?\d+$/;
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)$/;

/** The accepted values in words, e.g. "a positive integer ≤ 256 or -1". */
function describeInt(r: IntRange): string {
  const min = r.min ?? 1, max = r.max ?? Number.MAX_SAFE_INTEGER;
  const base = min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer ≥ ${min}`;
  const upper = max < Number.MAX_SAFE_INTEGER ? ` ≤ ${max}` : '';
  return `${base}${upper}${r.allowMinusOne ? ' or -1' : ''}`;
}

const shown = (v: string) => JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);

/** Parse one integer flag value; undefined stays undefined (flag not given). */
export function intOption(flag: string, v: string | undefined, range: IntRange = {}): number | undefined {
  if (v === undefined) return undefined;
  const min = range.min ?? 1, max = range.max ?? Number.MAX_SAFE_INTEGER;
  const want = `--${flag} must be ${describeInt(range)}`;
  if (!INT.test(v)) throw new UsageError(`${want}, in plain decimal digits (got ${shown(v)})`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${want} (got ${shown(v)}: too large)`);
  if (range.allowMinusOne && n === -1) return -1;
  if (n < min || n > max) throw new UsageError(`${want} (got ${shown(v)})`);
  return n === 0 ? 0 : n; // -0 → 0
}

/** "1,2,4" → [1, 2, 4]; every item as intOption would take it (no spaces, no empty items). */
export function intListOption(flag: string, v: string, range: IntRange = {}): number[] {
  if (v === '') throw new UsageError(`--${flag} needs a comma-separated list (got "")`);
  return noRepeats(flag, v.split(',').map((p) => intOption(flag, p, range)!));
}

/** Parse one decimal flag value (e.g. a temperature) in [min, max]. */
export function numberOption(flag: string, v: string | undefined, range: { min: number; max?: number; minExclusive?: boolean }): number | undefined {
  if (v === undefined) return undefined;
  const max = range.max ?? Infinity, gt = range.minExclusive === true;
  const want = `--${flag} must be a number ${gt ? '>' : '≥'} ${range.min}${Number.isFinite(max) ? ` and ≤ ${max}` : ''}`;
  if (!DECIMAL.test(v)) throw new UsageError(`${want}, in plain decimal notation (got ${shown(v)})`);
  const n = Number(v);
  // a value too large for a float64 is named as such (before: "must be a number ≥ 0" for 1 followed by 320 zeros)
  if (!Number.isFinite(n)) throw new UsageError(`${want} (got ${shown(v)}: too large to be a finite number)`);
  if (n < range.min || (gt && n === range.min) || n > max) throw new UsageError(`${want} (got ${shown(v)})`);
  return n === 0 ? 0 : n;
}

/** --workers: 1 … MAX_WORKERS (the library's own bound). */
export const workersOption = (flag: string, v: string | undefined) => intOption(flag, v, { min: 1, max: MAX_WORKERS });
