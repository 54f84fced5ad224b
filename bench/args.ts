// Command-line arguments of the benchmark scripts (node dist/bench/NAME.js …), one way for all of them:
// --help (or -h) prints the usage and exits 0 before any work; an unknown option, a missing value or a
// missing required option prints what is wrong and the usage, and exits 2 — never a stack trace, and
// never a run with the argument silently dropped (a full benchmark that overwrites bench/results). A
// script without options (bench/kernels.ts …) calls it with none, so any argument is refused. An
// --out that names something other than a benchmark result file (a model, an input, a directory, a JSON file
// such as package.json), or an input of the
// run itself (a path another option names, or inside a directory one names), is refused before the run,
// not overwritten after it.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { basename, join, relative, resolve, sep } from 'node:path';

interface Opt { type: 'string' | 'boolean'; default?: string | boolean; multiple?: false; short?: string }

export interface BenchArgsSpec<O extends Record<string, Opt>, R extends keyof O & string = never> {
  options: O;
  /** the positional arguments in the usage line, e.g. 'STAGE_DIR' (none allowed when absent) */
  positionals?: string;
  /** options the script cannot run without */
  required?: R[];
  /** options a script passes to its own child processes, left out of the usage */
  internal?: (keyof O & string)[];
}

/** The usage line of the running script for `spec`: every option with its default (or VALUE), required
 *  ones outside brackets, and where the options are explained. */
export function usageOf<O extends Record<string, Opt>, R extends keyof O & string>(spec: BenchArgsSpec<O, R>, script = process.argv[1] ?? 'dist/bench/SCRIPT.js'): string {
  const shown = Object.entries(spec.options).filter(([k]) => !spec.internal?.includes(k));
  const parts = shown.map(([k, o]) => {
    const s = o.type === 'boolean' ? `--${k}` : `--${k} ${o.default !== undefined && o.default !== '' ? String(o.default) : 'VALUE'}`;
    return (spec.required as string[] | undefined)?.includes(k) ? s : `[${s}]`;
  });
  if (spec.positionals) parts.push(spec.positionals);
  // the source beside the built script: dist/bench/peers/peers.js → bench/peers/peers.ts
  const m = /(?:^|[\\/])dist[\\/](bench[\\/].*)\.js$/.exec(script);
  const source = m ? m[1]!.replace(/\\/g, '/') + '.ts' : `bench/${basename(script).replace(/\.js$/, '')}.ts`;
  const path = relative(process.cwd(), script) || script;
  return `usage: node ${path}${parts.length ? ' ' + parts.join(' ') : ''}\n` +
    `(${parts.length ? 'defaults shown; what the script measures and each option' : 'no options; what the script measures'}: the comment at the top of ${source}, and docs/benchmarks.md)`;
}

/** The parsed values: an option with a default always has one. */
export type BenchValues<O extends Record<string, Opt>, R extends keyof O = never> = {
  [K in keyof O]: (O[K]['type'] extends 'boolean' ? boolean : string) | (K extends R ? never : O[K] extends { default: string | boolean } ? never : undefined)
};

/** Parses process.argv for a benchmark script (see the file comment); exits on --help and on bad arguments. */
export function benchArgs<O extends Record<string, Opt>, R extends keyof O & string = never>(spec: BenchArgsSpec<O, R>,
  argv: string[] = process.argv.slice(2)): { values: BenchValues<O, R>; positionals: string[] } {
  const usage = usageOf(spec);
  if (argv.some((a) => a === '--help' || a === '-h')) { console.log(usage); process.exit(0); }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: spec.options, allowPositionals: spec.positionals !== undefined, strict: true });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n${usage}`);
    process.exit(2);
  }
  const values = parsed.values as Record<string, unknown>;
  const missing = (spec.required ?? []).filter((k) => values[k] === undefined || values[k] === '');
  if (missing.length) {
    console.error(`error: ${missing.map((k) => `--${k}`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} required\n${usage}`);
    process.exit(2);
  }
  const out = values.out;
  // nor one of the run's inputs: a path another option names, a file inside a directory one names (a
  // model folder's config.json is JSON too), or a hard link to the one or to a file in the other
  if (typeof out === 'string') {
    const o = resolve(out), oStat = existsSync(o) ? statSync(o) : null;
    for (const [k, v] of Object.entries(values)) {
      if (k === 'out' || typeof v !== 'string' || v === '' || !existsSync(v)) continue;
      const p = resolve(v), st = statSync(p);
      // (a file in the folder itself, not below: model folders are flat)
      const same = (f: string) => {
        if (oStat === null) return false;
        try { const t = statSync(f); return t.isFile() && oStat.dev === t.dev && oStat.ino === t.ino; } catch { return false; } // e.g. a dangling link
      };
      const hit = o === p || same(p) || (st.isDirectory() && (o.startsWith(p + sep) || readdirSync(p).some((n) => same(join(p, n)))));
      if (hit) badArg(spec, `--out ${out} is, or is inside, the --${k} input ${v}: it would be overwritten`);
    }
  }
  if (typeof out === 'string' && existsSync(out)) {
    // a result file these scripts write: a JSON object with a date, machine or params key (before: any JSON, so
    // --out package.json replaced the package's manifest)
    let result = false;
    try {
      const j = statSync(out).isFile() ? JSON.parse(readFileSync(out, 'utf8')) as unknown : null;
      result = j !== null && typeof j === 'object' && !Array.isArray(j) && ['date', 'machine', 'params'].some((k) => Object.hasOwn(j, k));
    } catch { /* not JSON */ }
    if (!result) badArg(spec, `--out ${out} exists and is not a benchmark result file (a JSON object with date, machine or params): it would be overwritten`);
  }
    return { values: values as BenchValues<O, R>, positionals: parsed.positionals };
}

/** Exits 2 with `message` and the usage: a bad value of an option the script checks itself. */
export function badArg<O extends Record<string, Opt>, R extends keyof O & string>(spec: BenchArgsSpec<O, R>, message: string): never {
  console.error(`error: ${message}\n${usageOf(spec)}`);
  process.exit(2);
}

/** A numeric option's value: a plain decimal number (an integer unless `int: false`) in [min, max]; anything
 *  else (NaN, 1e3x, 0 where 1 is the least) exits 2 naming the option — before any work (before: Number() let
 *  "abc" through as NaN, and scripts wrote NaN results with exit 0, or crashed after the run). */
export function numArg(flag: string, v: string | undefined, range: { min?: number; max?: number; int?: boolean } = {}): number {
  const int = range.int !== false, min = range.min ?? (int ? 1 : 0), max = range.max ?? Infinity;
  const n = v !== undefined && (int ? /^\d+$/ : /^\d+(\.\d+)?$/).test(v) ? Number(v) : NaN;
  if (!(Number.isFinite(n) && n >= min && n <= max && (!int || Number.isSafeInteger(n)))) {
    const script = relative(process.cwd(), process.argv[1] ?? '') || 'the script';
    console.error(`error: --${flag} must be ${int ? 'an integer' : 'a number'} ≥ ${min}${Number.isFinite(max) ? ` and ≤ ${max}` : ''} (got ${JSON.stringify(v ?? '')})\n` +
      `(node ${script} --help lists the options)`);
    process.exit(2);
  }
  return n;
}

/** A comma-separated list of numArg values. */
export function numListArg(flag: string, v: string, range: { min?: number; max?: number; int?: boolean } = {}): number[] {
  return v.split(',').map((p) => numArg(flag, p, range));
}
