// The CLI's usage error, in a module of its own so that command.ts and numbers.ts
// (which command.ts re-exports) do not import each other.

/** A bad command line: printed with the command's usage line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

/** What a usage error prints after its message: the usage line(s) — the first line and the lines aligned under
 *  it, not the description after them — and where every option is listed. */
export function usageHead(usage: string): string {
  const lines = usage.split('\n');
  const head = [lines[0]!];
  for (const l of lines.slice(1)) { if (/^ {3,}\S/.test(l)) head.push(l); else break; }
  const name = usageCommand(usage);
  if (lines.length > head.length) head.push(`(\`${name} --help\` lists every option)`);
  return head.join('\n');
}

/** The command a usage text is for, from its first line: e.g. 'retnet score', and 'retnet demo' for the
 *  demo's `usage: retnet [demo] …` (its name optional there; before, 'retnet', whose --help is the command
 *  overview, without the demo's options) — else 'retnet'. */
export function usageCommand(usage: string): string {
  const m = /^usage: retnet(?: \[?([a-z]+)\]?(?=[ \n]|$))?/.exec(usage);
  return m?.[1] !== undefined ? `retnet ${m[1]}` : 'retnet';
}

/** A list flag's items, each at most once (before: a repeated item ran, and reported, the same rows twice). */
export function noRepeats<T>(name: string, list: T[]): T[] {
  const twice = list.find((x, i) => list.indexOf(x) !== i);
  if (twice !== undefined) throw new UsageError(`--${name} lists ${String(twice)} twice`);
  return list;
}
