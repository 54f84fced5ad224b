// Skipping a test by name when a system part it needs is missing (outside CI).
// In CI (CI=true) nothing is skipped: .ci/run installs every part, so a
// missing one there is a failure, never a silent pass.

/** Returns true when the test should run. Otherwise prints the runner's
 *  `SKIPPED: <name> — <reason>` line (test/run.ts counts it) and returns false;
 *  the test then returns without asserting. Throws in CI. */
export function canRun(name: string, missing: string | null): boolean {
  if (missing === null) return true;
  if (process.env.CI === 'true') throw new Error(`${name}: ${missing} (CI installs it in .ci/run; it must be present here)`);
  console.log(`SKIPPED: ${name} — ${missing}`);
  return false;
}

/** For one part of a test that asserts other parts as well: returns true when the part should run, else
 *  prints `SKIPPED PART: <name> — <reason>` (the runner lists it, and still counts the test as passed when
 *  the rest passes) and returns false. Throws in CI, as canRun. */
export function canRunPart(name: string, missing: string | null): boolean {
  if (missing === null) return true;
  if (process.env.CI === 'true') throw new Error(`${name}: ${missing} (CI installs it in .ci/run; it must be present here)`);
  console.log(`SKIPPED PART: ${name} — ${missing}`);
  return false;
}
