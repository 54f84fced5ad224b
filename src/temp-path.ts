// The temporary name an output is written under before it is renamed over its target (the CLI's
// AtomicOutput, src/cli/safe-output.ts, and writeSafetensors): hidden, beside the target (so the
// rename stays on one filesystem), unique per process and call.
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** `.NAME.PID-XXXXXXXX.tmp` beside `target` (NAME cut to 50 UTF-16 units, ≤ 200 bytes, so a target name
 *  near the 255-byte limit still leaves room). */
export function tempPathBeside(target: string): string {
  return join(dirname(target), `.${basename(target).slice(0, 50)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}
