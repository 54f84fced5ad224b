#!/usr/bin/env node
// retnet CLI: a thin layer over the library. One file per command under
// commands/, each exporting a Command; to add one, import it and put it in
// COMMANDS. `retnet` with no command (or only options) runs the main job.
import { fileURLToPath } from 'node:url';
import { readFileSync, realpathSync } from 'node:fs';
import { UsageError, errorMessage, type Command } from './command.js';
import { usageHead } from './usage-error.js';
import { quote } from '../errors.js';
import { debugOn, ModelRefused } from './lm-util.js';
import demo from './commands/demo.js';
import run from './commands/run.js';
import info from './commands/info.js';
import bench from './commands/bench.js';
import drift from './commands/drift.js';
import score from './commands/score.js';
import generate from './commands/generate.js';
import worker from './commands/worker.js';

export const COMMANDS: Command[] = [demo, run, info, bench, drift, score, generate, worker];

const USAGE = `usage: retnet [<command>] [options]

Retentive Networks on Node.js. With no command: the main job (the seed
README's example in parallel and chunkwise form; --small for a quick one).

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n')}

Run \`retnet <command> --help\` or \`retnet help <command>\` for a command's options; \`retnet --version\` for the version.
Exit codes: 0 ok, 1 error, 2 bad command line (or a model folder refused, before any work).`;

/** The version in the package's package.json (two folders above this file in dist/src/cli). */
function packageVersion(): string {
  try { return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown'; } catch { return 'unknown'; }
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'help' && argv.length > 1 && (argv[1] === '--help' || argv[1] === '-h') && argv.length === 2) {
    process.stdout.write(USAGE + '\n'); // `retnet help --help`: the overview, like `retnet help`
    return 0;
  }
  if (argv[0] === 'help' && argv.length > 1) {
    // `retnet help <command>`: that command's --help
    const c = COMMANDS.find((k) => k.name === argv[1]);
    if (!c || argv.length > 2) {
      process.stderr.write(`retnet help: ${c ? 'give one command' : `unknown command ${quote(argv[1])}`}\nusage: retnet help <command>\ncommands: ${COMMANDS.map((k) => k.name).join(', ')}\n`);
      return 2;
    }
    process.stdout.write(c.usage.trimEnd() + '\n');
    return 0;
  }
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') { process.stdout.write(USAGE + '\n'); return 0; }
  // the package's version (before: taken as a demo option, "retnet demo: Unknown option '--version'")
  if ((argv[0] === '--version' || argv[0] === '-V') && argv.length === 1) { process.stdout.write(`retnet ${packageVersion()}\n`); return 0; }
  const named = argv.length > 0 && !argv[0].startsWith('-');
  const cmd = named ? COMMANDS.find((c) => c.name === argv[0]) : demo;
  if (!cmd) {
    process.stderr.write(`retnet: unknown command ${quote(argv[0])}\n${USAGE.split('\n')[0]}\ncommands: ${COMMANDS.map((c) => c.name).join(', ')}\n`);
    return 2;
  }
  try {
    return await cmd.run(named ? argv.slice(1) : argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`retnet ${cmd.name}: ${e.message}\n${usageHead(cmd.usage)}\n`);
      return 2;
    }
    if (e instanceof ModelRefused) {
      process.stderr.write(`retnet ${cmd.name}: ${errorMessage(e)}\n`);
      return 2;
    }
    process.stderr.write(`retnet: ${errorMessage(e)}\n`);
    if (debugOn()) console.error(e);
    return 1;
  }
}

const isEntry = (() => {
  try { return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url)); } catch { return false; }
})();
if (isEntry) {
  // a reader that closes its end early (`retnet score … | head`): stop quietly, as a command that the
  // shell's SIGPIPE ends (exit 141), instead of Node's unhandled 'error' with a stack trace
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(141);
      throw e;
    });
  }
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
    // A queue command is over: a Redis client that keeps reconnecting to a dead
    // server (BullMQ/ioredis after Redis was lost) must not keep the process alive.
    const args = process.argv.slice(2);
    if (args[0] === 'worker' || (args[0] === 'score' && args.some((a) => a === '--queue' || a.startsWith('--queue=')))) setTimeout(() => process.exit(code), 2000).unref();
  }, (e) => {
    process.stderr.write(`retnet: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  });
}
