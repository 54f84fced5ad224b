// The CLI's usage error, in a module of its own so that command.ts and numbers.ts
// (which command.ts re-exports) do not import each other.

/** A bad command line: printed with the command's usage line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}
