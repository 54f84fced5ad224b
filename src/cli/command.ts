// Shared pieces of the CLI: the Command shape every file under commands/
// exports, usage errors (exit 2), option parsing over node:util parseArgs,
// and small helpers (number lists, backends, progress bars, tables).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BACKENDS, editDistance, KERNELS, type BackendName, type KernelsName } from '../options.js';
import { escapeControl, RetNetError } from '../errors.js';
import { resolveConfig } from '../model/config.js';

export interface Command {
  /** the word after `retnet` */
  name: string;
  /** one line for `retnet --help` */
  summary: string;
  /** the full --help text; its first line is the usage line */
  usage: string;
  /** argv after the command name → exit code (0 ok, 1 error, 2 usage) */
  run(argv: string[]): Promise<number>;
}

export { UsageError, noRepeats } from './usage-error.js';
import { noRepeats } from './usage-error.js';
import { UsageError } from './usage-error.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs (strict, no positionals unless allowed) with `--help`/`-h`
 *  added; parse failures become UsageErrors. Returns null when --help was
 *  given (the usage has been printed on `out`, default stdout). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Parsed = { values: Record<string, any>; positionals: string[] };
export function parse(cmd: Pick<Command, 'usage'>, argv: string[], options: Options, allowPositionals = false,
  out: { write(s: string): unknown } = process.stdout): Parsed | null {
  let r: Parsed & { tokens?: ({ kind: string; name?: string; value?: string })[] };
  // parseArgs takes `--chunks -1` for a missing value; accept negative numbers
  // after options that take a value, as `--chunks=-1` is accepted.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : null;
    if (name && options[name]?.type === 'string' && /^-\d/.test(argv[i + 1] ?? '')) { args.push(`${argv[i]}=${argv[i + 1]}`); i++; } else args.push(argv[i]);
  }
  const withHelp = { ...options, help: { type: 'boolean', short: 'h' } } as const;
  // --help / -h wins over any other mistake on the line (an unknown option, a missing value)
  const loose = parseArgs({ args, options: withHelp, strict: false, allowPositionals: true });
  // also a bare --help / -h taken as the value of the option before it (`--chunks --help`: strict parsing calls
  // that ambiguous; before, that error won over the help); after `--` it is a positional
  const end = args.indexOf('--');
  const bare = (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
  if (loose.values.help === true || bare) { out.write(cmd.usage.trimEnd() + '\n'); return null; }
  try {
    r = parseArgs({ args, options: withHelp, strict: true, allowPositionals, tokens: true });
  } catch (e) {
    // Node's parseArgs writes some messages over several lines (an option value that starts with '-'):
    // one line here, as every usage error is (before: the newlines showed escaped as \u000a)
    let msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/\s*\n\s*/g, ' ');
    const unknown = /^Unknown option '--([^'=]+)'/.exec(msg)?.[1];
    const near = unknown ? closestOption(unknown, Object.keys(withHelp)) : null;
    if (near) msg += ` (did you mean --${near}?)`;
    throw new UsageError(msg);
  }
  if (r.values.help) { out.write(cmd.usage.trimEnd() + '\n'); return null; }
  // a single-valued option given twice (`--out a --out b`): parseArgs keeps the last; one of the two
  // was meant, and which is not ours to guess
  const seen = new Map<string, string>();
  for (const t of r.tokens ?? []) {
    if (t.kind !== 'option' || t.name === undefined) continue;
    const o = (withHelp as Record<string, { type: string; multiple?: boolean } | undefined>)[t.name];
    if (o?.type !== 'string' || o.multiple) continue;
    const prev = seen.get(t.name);
    if (prev !== undefined) throw new UsageError(`--${t.name} is given twice (${JSON.stringify(prev)} and ${JSON.stringify(t.value ?? '')}); give it once`);
    seen.set(t.name, t.value ?? '');
  }
  return r;
}

/** The known option(s) a mistyped `name` most likely meant, as the message's words (`top-k or --top-p`): first
 *  the options that `name` begins (3 letters or more: `temp` → `temperature`; of several, the one within 2
 *  edits, `chunk` → `chunks`, else all of them, at most 3: `top` → `top-k or --top-p`); else one within 2 edits (3 for
 *  names of 10 or more letters), the fewest edits first; else one whose words include all of name's
 *  (`max-tokens` → `max-new-tokens`) or that is a prefix of it (`output` → `out`); null if none fits, or two
 *  fit equally well. (Before: an option 2 edits away won over the one the name begins: `temp` → `help`.) */
export function closestOption(name: string, known: string[]): string | null {
  const low = name.toLowerCase(), words = low.split('-').filter(Boolean);
  const byEdits = (list: string[]) => list.map((k) => ({ k, d: editDistance(low, k) })).sort((x, y) => x.d - y.d);
  if (low.length >= 3) {
    const begun = byEdits(known.filter((k) => k.startsWith(low)));
    if (begun.length > 0) {
      if (begun.length === 1 || (begun[0]!.d <= 2 && begun[1]!.d > begun[0]!.d)) return begun[0]!.k;
      if (begun.length <= 3) return begun.map((c) => c.k).join(' or --');
    }
  }
  const close = byEdits(known).filter((c) => c.d <= (low.length >= 10 ? 3 : 2));
  if (close.length > 0) return close.length > 1 && close[1]!.d === close[0]!.d ? null : close[0]!.k;
  const related = known.filter((k) => (words.length > 0 && words.every((w) => k.split('-').includes(w))) ||
    (Math.min(k.length, low.length) >= 3 && (low.startsWith(k) || k.startsWith(low))));
  return related.length === 1 ? related[0]! : null;
}

/** Numeric flags: see src/cli/numbers.ts (the one parser); kept under these names for the commands that use them. */
export { intOption as posInt, intListOption as intList } from './numbers.js';

export function backendName(name: string, v: string): BackendName {
  if (!(BACKENDS as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${BACKENDS.join(', ')} (got ${JSON.stringify(v)})`);
  return v as BackendName;
}

export const backendList = (name: string, v: string): BackendName[] => {
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => backendName(name, s));
  // before: an empty table (bench) or "none of the backends () could start", exit 1 with nothing to say why
  if (list.length === 0) throw new UsageError(`--${name} needs at least one backend of ${BACKENDS.join(', ')} (got ${JSON.stringify(v)})`);
  return noRepeats(name, list);
};


/** The message of an error, for `retnet: <message>` on stderr, with control
 *  characters escaped (messages can quote file names and file content). */
export function errorMessage(e: unknown): string {
  return escapeControl(e instanceof Error ? e.message : String(e));
}

/** A cli-progress bar on `stream` (stderr) when it is a TTY; otherwise a no-op. */
export async function progressBar(label: string, stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): Promise<{ update(done: number, total: number): void; stop(): void }> {
  if (!stream.isTTY) return { update() {}, stop() {} };
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar({
    stream,
    format: `${label} [{bar}] {percentage}% | {value}/{total} tokens | {speed} tokens/s | ETA {eta_formatted}`,
    hideCursor: true, etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  const t0 = performance.now();
  let started = false;
  return {
    update(done, total) {
      const speed = Math.round(done / Math.max(1e-9, (performance.now() - t0) / 1000));
      if (!started) { bar.start(total, done, { speed }); started = true; } else bar.update(done, { speed });
    },
    stop() { if (started) bar.stop(); },
  };
}

/** Rows of cells → an aligned text table (numbers right-aligned). */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const w = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r, j) => r.map((c, i) => (j > 0 && typeof rows[j - 1][i] === 'number' ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ').trimEnd()).join('\n');
}

export const fmtE = (v: number) => (Number.isFinite(v) ? v.toExponential(2) : String(v));

/** Parameters of `--layers/--dim/--heads` style seeded models. */
export const modelConfig = (layers: number, dim: number, heads: number) =>
  ({ numLayer: layers, numHeads: heads, dimModel: dim, valueFactor: 2, msrGateFn: 'gelu', mlpGateFn: 'gelu', mlpMult: 4, mlpBias: true, dropout: 0.1, seed: 0 }) as const;

/** modelConfig from command-line values, checked up front: a size the model
 *  refuses (e.g. --dim 7 with --heads 8) is a UsageError naming the flags. */
export function flagModelConfig(layers: number, dim: number, heads: number): ReturnType<typeof modelConfig> {
  const cfg = modelConfig(layers, dim, heads);
  try {
    resolveConfig(cfg);
  } catch (e) {
    if (!(e instanceof RetNetError)) throw e;
    const flags: Record<string, string> = { numLayer: '--layers', dimModel: '--dim', numHeads: '--heads' };
    throw new UsageError(`--layers ${layers} --dim ${dim} --heads ${heads}: ${e.message.replace(/\bconfig\.(\w+)|\b(numLayer|dimModel|numHeads)\b/g, (m, a, b) => flags[a ?? b] ?? m)}`);
  }
  return cfg;
}

/** --kernels: the wasm backend's kernel engine (auto, wasm or blas). */
export function kernelsName(name: string, v: string | undefined): KernelsName | undefined {
  if (v === undefined) return undefined;
  if (!(KERNELS as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${KERNELS.join(', ')} (got ${JSON.stringify(v)})`);
  return v as KernelsName;
}
