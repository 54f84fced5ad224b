// A Worker given an explicit execArgv re-parses it, and Node refuses there
// (ERR_WORKER_INVALID_EXEC_ARGV) every flag that is process-wide or V8's:
// --max-old-space-size, --expose-gc, --stack-size, --title, … Those already
// apply to the whole process, so the worker simply goes without them; flags
// for the main script alone (--input-type, --eval, --print) would stop the
// worker's module from loading. (Piscina's chunk workers pass no execArgv and
// inherit the parent's options without re-parsing, which Node accepts.)
import { Worker, type WorkerOptions } from 'node:worker_threads';

const MAIN_ONLY = /^(--(input-type|eval|print)(=|$)|-e$|-p$)/;

/** process.execArgv minus the main-script-only flags (and their values). */
function baseExecArgv(argv: readonly string[]): string[] {
  return dropFlags(argv, (a) => MAIN_ONLY.test(a));
}

/** Drop flags matching `bad`, with a separate value that follows one (`--title foo`). */
function dropFlags(argv: readonly string[], bad: (a: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (!bad(argv[i])) { out.push(argv[i]); continue; }
    if (!argv[i].includes('=') && i + 1 < argv.length && !argv[i + 1].startsWith('-')) i++; // its value
  }
  return out;
}

/** Start a Worker with the parent's flags that a Worker accepts. Node names the
 *  refused flags one call at a time, so drop them and try again. */
export function startWorker(url: URL, options: WorkerOptions = {}, argv: readonly string[] = process.execArgv): Worker {
  let execArgv = baseExecArgv(argv);
  for (;;) {
    try {
      return new Worker(url, { ...options, execArgv });
    } catch (e) {
      const err = e as { code?: string; message?: string };
      if (err?.code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
      const named = String(err.message).replace(/^[^:]*:\s*/, '').split(/,\s*/).filter(Boolean);
      const refused = (a: string) => named.some((n) => a === n || a.startsWith(n.split('=')[0] + '='));
      const next = dropFlags(execArgv, refused);
      if (next.length === execArgv.length) throw e; // nothing we can drop: let it surface
      execArgv = next;
    }
  }
}
