// Shared pieces of the LM commands (score, generate): the command shape the
// CLI registry expects, the I/O they write to, and option checks.
import { BACKENDS, type BackendName } from '../options.js';
import { UsageError, errorMessage, progressBar as cliProgressBar } from './command.js';

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

export function parseIntOption(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min} (got ${JSON.stringify(v)})`);
  return n;
}

export function parseNumberOption(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number ≥ ${min} (got ${JSON.stringify(v)})`);
  return n;
}

/** Run a command body with the CLI's exit-code conventions. */
export async function runCommand(io: CommandIO, usage: string, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`retnet: ${(e as Error).message}\n${usage}\n`);
      return 2;
    }
    io.stderr.write(`retnet: ${errorMessage(e)}\n`);
    return 1;
  }
}

/** The CLI's progress bar on the command's stderr (a no-op unless it is a TTY). */
export async function progressBar(io: CommandIO, total: number): Promise<{ update(done: number): void; stop(): void }> {
  if (total <= 0) return { update() {}, stop() {} };
  const bar = await cliProgressBar('score', io.stderr as NodeJS.WritableStream & { isTTY?: boolean });
  return { update: (d) => bar.update(d, total), stop: () => bar.stop() };
}
