// The API reference builds with no warnings: `npm run docs` (TypeDoc, typedoc.json) with
// treatWarningsAsErrors and validation on, so every export must be documented, every
// {@link} must resolve and every type a documented export refers to must be either
// exported or listed in typedoc.json's intentionallyNotExported. Run here without
// writing docs/api (--emit none), so `npm test` in CI covers it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

test('typedoc: 0 warnings, 0 errors', () => {
  const bin = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');
  const r = spawnSync(process.execPath, [bin, '--emit', 'none', '--logLevel', 'Warn'], {
    cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  const out = `${r.stdout}${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
  assert.is(r.status, 0, `typedoc exited ${r.status ?? r.signal}:\n${out}`);
  assert.not.match(out, /\[warning\]|\[error\]/, `typedoc reported problems:\n${out}`);
});

test.run();
