// Shared pieces of the LM commands (score, generate): the command shape the
// CLI registry expects, the I/O they write to, and option checks.
import { readFileSync } from 'node:fs';
import { BACKENDS, kernelsFromEnv, PRECISIONS, precisionFromEnv, type BackendName, type Precision } from '../options.js';
import { UsageError, errorMessage, progressBar as cliProgressBar } from './command.js';
import { usageCommand, usageHead } from './usage-error.js';
import { intOption, numberOption } from './numbers.js';
import { RetNetLM } from '../lm/retnet-lm.js';
import { errors, RetNetError } from '../errors.js';
import { modelFiles, parseFlaConfig, resolveModelDir } from '../model/fla.js';
import { parseRedisUrl } from '../corpus/queue/redis-url.js';
import type { BackendInfo } from '../backends/executor.js';

export { UsageError };

/** Where a command writes; defaults to the process's streams (tests pass their own). */
export interface CommandIO {
  stdout: { write(s: string | Uint8Array): unknown };
  stderr: { write(s: string | Uint8Array): unknown; isTTY?: boolean };
  stdin: NodeJS.ReadableStream;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** 0 ok, 1 error (`retnet: message` on stderr), 2 usage */
  run(argv: string[], io?: CommandIO): Promise<number>;
}

export const processIO = (): CommandIO => ({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });


export function parseBackend(v: string | undefined): BackendName | undefined {
  if (v === undefined) return undefined;
  if (!(BACKENDS as readonly string[]).includes(v)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')} (got ${JSON.stringify(v)})`);
  return v as BackendName;
}

/** --precision f32|bf16 (absent: the library's default, RETNET_PRECISION else f32). */
export function parsePrecision(v: string | undefined, backends: readonly (string | undefined)[]): Precision | undefined {
  if (v === undefined) {
    // the variable the library reads when the flag is absent, on the wasm backend only (undefined: the default,
    // wasm): a bad value is a usage error before the model loads, as the flag's (before: E_OPTION, exit 1, after
    // loading it); js and tfjs runs never read it
    if (!backends.some((b) => b === undefined || b === 'wasm')) return undefined;
    try { precisionFromEnv(); } catch { throw new UsageError(`RETNET_PRECISION must be one of ${PRECISIONS.join(', ')} (got ${JSON.stringify(process.env.RETNET_PRECISION)}); unset it or pass --precision`); }
    return undefined;
  }
  if (!(PRECISIONS as readonly string[]).includes(v)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')} (got ${JSON.stringify(v)})`);
  return v as Precision;
}

/** --precision bf16 with backends that are not wasm: a usage error before any work (the library refuses
 *  it with E_OPTION, exit 1, and in score and bench only after the model is loaded or the benchmark has
 *  started). `flag` names the backend option (--backend, --backends). */
export function checkPrecisionBackends(precision: Precision | undefined, backends: readonly (BackendName | undefined)[], flag = '--backend'): void {
  if (precision !== 'bf16') return;
  const other = backends.find((b) => b !== undefined && b !== 'wasm');
  if (other !== undefined) throw new UsageError(`--precision bf16 needs ${flag} wasm (bfloat16 products run on the wasm backend only; ${other} computes in ${other === 'js' ? 'float64' : 'float32'})`);
}

/** Flags only the wasm backend reads (`--workers`, `--kernels`), given with another backend: a usage error
 *  (before: accepted and ignored — `run --backend js --kernels dnnl --workers 7` ran the float64 reference
 *  and recorded kernels "dnnl" and 7 workers in its output's metadata). `given`: flag → the value on the
 *  command line (undefined when absent). */
export function checkWasmOnlyFlags(backends: readonly (BackendName | undefined)[], given: Record<string, unknown>, flag = '--backend'): void {
  if (backends.includes('wasm')) return;
  for (const [name, value] of Object.entries(given)) {
    if (value !== undefined) throw new UsageError(`${name} is for the wasm backend (its worker pool and kernel engines); ${flag} ${backends.join(',')} does not use it: leave ${name} out`);
  }
}

/** Without --kernels, where the wasm backend runs, RETNET_KERNELS is read: a value it cannot take is exit 2
 *  before any work, as a bad --kernels is (before: bench turned every cell into an error row, run and demo
 *  failed with exit 1 after starting). */
export function checkKernelsEnv(backends: readonly (BackendName | undefined)[], flagValue: unknown): void {
  if (flagValue !== undefined || !backends.includes('wasm')) return;
  try { kernelsFromEnv(); } catch {
    throw new UsageError(`RETNET_KERNELS must be auto, wasm, blas or dnnl (got ${JSON.stringify(process.env.RETNET_KERNELS)}); unset it, or pass --kernels`);
  }
}

/** Integer flag ≥ min (the CLI's one number parser, src/cli/numbers.ts). */
export const parseIntOption = (name: string, v: string | undefined, min: number): number | undefined => intOption(name, v, { min });

/** Decimal flag ≥ min (the CLI's one number parser, src/cli/numbers.ts). */
export const parseNumberOption = (name: string, v: string | undefined, min: number): number | undefined => numberOption(name, v, { min });

/** A model that cannot be used as given (a model folder's config, weights or shards): exit 2, like a usage error. */
export class ModelRefused extends Error {
  constructor(message: string) { super(message); this.name = 'ModelRefused'; }
}

/** `--model`: a byte-LM .safetensors file (default: the shipped one) or a fla-family Hugging Face folder
 *  (DIR, or ORG/NAME in the local hub cache). A folder's refusals (E_CONFIG, E_WEIGHTS, E_SAFETENSORS,
 *  E_DTYPE) exit 2 with the loader's message. */
export async function loadLM(spec: string | undefined): Promise<RetNetLM> {
  try {
    return await RetNetLM.load(spec);
  } catch (e) { throw asModelRefusal(spec, e); }
}

/** A model folder without tokenizer.json, refused before anything is loaded or hashed (exit 2): the commands
 *  that read and write text need its tokenizer (before: `score --out` hashed the 2.7 GB of weights, then
 *  exited 1 advising token ids, which the CLI cannot take). Other refusals of the folder as asModelRefusal. */
export function needTokenizer(spec: string | undefined, command: string): void {
  if (spec === undefined || !RetNetLM.isFolderSpec(spec)) return;
  let tok: string | null;
  let dir: string;
  try {
    dir = resolveModelDir(spec);
    const mf = modelFiles(dir);
    tok = mf.tokenizerPath;
    // a config.json the load would refuse is said first (it says more about the folder than a missing tokenizer)
    let raw: unknown;
    try { raw = JSON.parse(readFileSync(mf.configPath, 'utf8')); } catch (e) { throw errors.weights(`${mf.configPath}: not valid JSON (${(e as Error).message})`); }
    parseFlaConfig(raw, mf.configPath);
  } catch (e) { throw asModelRefusal(spec, e); }
  if (tok === null) {
    throw new ModelRefused(`${dir} has no tokenizer.json: \`retnet ${command}\` reads and writes text, which needs the model's tokenizer — ` +
      'put its tokenizer.json (from the model\'s Hugging Face page) in the folder');
  }
}

/** A model folder's refusal (E_CONFIG, E_WEIGHTS, E_SAFETENSORS, E_DTYPE from a folder `--model`) as
 *  ModelRefused (exit 2, the loader's message); any other error unchanged. For the commands that load
 *  the model inside a larger job (corpus mode of `score`, `worker`). */
export function asModelRefusal(spec: string | undefined, e: unknown): unknown {
  if (spec !== undefined && RetNetLM.isFolderSpec(spec) && e instanceof RetNetError && ['E_CONFIG', 'E_WEIGHTS', 'E_SAFETENSORS', 'E_DTYPE'].includes(e.code)) {
    return new ModelRefused(`${e.code}: ${e.message}`);
  }
  return e;
}

/** Writes to `out`, once per set `seen`, each note the engines `model` has used so far attach to
 *  backendInfo (an engine that fell back, OpenBLAS on kernels below the CPU, emulated bfloat16): what a
 *  user should know about speed, without asking for it. */
export async function writeEngineNotes(model: { backendInfo(): Promise<BackendInfo[]> }, out: { write(s: string): unknown }, seen = new Set<string>()): Promise<void> {
  for (const i of await model.backendInfo()) {
    const note = typeof i.note === 'string' ? i.note : '';
    if (note && !seen.has(note)) { seen.add(note); out.write(`note: ${note}\n`); }
  }
}

/** Run a command body with the CLI's exit-code conventions. */
export async function runCommand(io: CommandIO, usage: string, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (e) {
    if (e instanceof ModelRefused) {
      io.stderr.write(`retnet: ${errorMessage(e)}\n`);
      return 2;
    }
    if (e instanceof UsageError) {
      io.stderr.write(`${usageCommand(usage)}: ${errorMessage(e)}\n${usageHead(usage)}\n`);
      return 2;
    }
    io.stderr.write(`retnet: ${errorMessage(e)}\n`);
    if (debugOn()) io.stderr.write(`${e instanceof Error && e.stack ? e.stack : String(e)}\n`);
    return 1;
  }
}

/** RETNET_DEBUG=1 (any value but empty or 0): an error's stack follows its one-line message. */
export const debugOn = (): boolean => { const v = process.env.RETNET_DEBUG; return v !== undefined && v !== '' && v !== '0'; };

/** All of stdin. */
export async function readStdin(stdin: NodeJS.ReadableStream): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const c of stdin) parts.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(parts);
}

/** The bytes of FILE ('-' = stdin); a read error names the file and its code. */
export function readInput(file: string, io: CommandIO): Promise<Uint8Array> | Uint8Array {
  if (file === '-') return readStdin(io.stdin);
  try { return readFileSync(file); } catch (e) { throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
}

/** The CLI's progress bar on the command's stderr (a no-op unless it is a TTY). */
export async function progressBar(io: CommandIO, total: number, label = 'score'): Promise<{ update(done: number): void; stop(): void }> {
  if (total <= 0) return { update() {}, stop() {} };
  const bar = await cliProgressBar(label, io.stderr as NodeJS.WritableStream & { isTTY?: boolean });
  return { update: (d) => bar.update(d, total), stop: () => bar.stop() };
}

/** --queue: a redis:// or rediss:// URL that parses (host, port, database number), as a usage error naming the
 *  flag, never echoing the URL (it may hold a password). (Before: a bad port or database was the library's
 *  E_OPTION, exit 1, worded with its option names.) */
export function queueUrlOption(v: string): void {
  if (!/^rediss?:\/\//.test(v)) throw new UsageError('--queue must be a redis:// or rediss:// URL');
  try { parseRedisUrl(v); } catch (e) {
    const bad = 'a redis://[user:pass@]host:port[/db] or rediss:// URL (this one does not parse as a URL: a port over 65535, a character a URL cannot hold, a bad %-escape?)';
    const why = e instanceof RetNetError ? e.message.replace(/^options\.queue must be /, '').replace(/^.* \(got "\(unparseable URL\)"\)$/, bad) : bad;
    throw new UsageError(`--queue must be ${why}`);
  }
}
