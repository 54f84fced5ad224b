// What the CPU has, read from the machine (never assumed): the model name and
// the instruction-set extensions the engines care about. Linux: /proc/cpuinfo's
// first processor entry ("model name", "flags"); elsewhere: os.cpus() for the
// name and no flags (every engine then takes its portable path).
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface CpuFeatures {
  model: string;
  /** vendor_id, e.g. 'GenuineIntel', 'AuthenticAMD' ('' where unknown) */
  vendor: string;
  /** logical CPUs the OS reports */
  logical: number;
  avx2: boolean;
  fma: boolean;
  avx512f: boolean;
  /** AVX512_BF16: bfloat16 dot products (vdpbf16ps) */
  avx512bf16: boolean;
  /** AMX tiles with bfloat16 (Intel Sapphire Rapids and later) */
  amxBf16: boolean;
  /** the flags line as read ('' where there is none) */
  flags: string;
}

let cached: CpuFeatures | undefined;

/** Parse a /proc/cpuinfo text (exported for tests). */
export function parseCpuinfo(text: string, logical: number): CpuFeatures {
  const first = text.split(/\n\s*\n/)[0] ?? '';
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(first)?.[1]?.trim() ?? '';
  const flags = field('flags');
  const has = (f: string) => flagsInclude(flags, [f]);
  return {
    model: field('model name') || 'unknown CPU', vendor: field('vendor_id'), logical, flags,
    avx2: has('avx2'), fma: has('fma'), avx512f: has('avx512f'), avx512bf16: has('avx512_bf16'), amxBf16: has('amx_bf16'),
  };
}

export function cpuFeatures(): CpuFeatures {
  if (cached) return cached;
  const n = cpus().length;
  try {
    cached = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'), n);
  } catch {
    cached = { model: cpus()[0]?.model ?? 'unknown CPU', vendor: '', logical: n, flags: '', avx2: false, fma: false, avx512f: false, avx512bf16: false, amxBf16: false };
  }
  return cached;
}

/** Whether a flags line lists every one of `names` (whole words). */
function flagsInclude(flags: string, names: readonly string[]): boolean {
  const set = new Set(flags.split(/\s+/));
  return names.every((n) => set.has(n));
}

/** Whether the CPU's flags line lists every one of `names`. */
export function hasFlags(c: CpuFeatures, ...names: string[]): boolean { return flagsInclude(c.flags, names); }

/** One line for reports: the model and the extensions that decide the bfloat16 path. */
export function describeCpu(c: CpuFeatures = cpuFeatures()): string {
  const ext = [c.avx2 && 'AVX2', c.fma && 'FMA', c.avx512f && 'AVX-512', c.avx512bf16 && 'AVX512-BF16', c.amxBf16 && 'AMX-BF16'].filter(Boolean);
  return `${c.model} (${c.logical} logical CPUs; ${ext.length ? ext.join(', ') : 'no AVX2/AVX-512 reported'})`;
}
