// Streaming keeps memory flat in L: a 262,144-token MSR forward (d=64) runs in
// a child process whose peak RSS is compared with a 16,384-token run. Holding
// the input or output would add 262,144·64·4 B = 64 MiB each, so the bound —
// at most 32 MiB more than the short run, and under 512 MiB absolute (Node
// itself, two worker threads with their WASM instances, one window of 8,192
// rows) — fails if either is retained. The children run with a 32 MB old space:
// without a cap, garbage V8 has not yet collected (task messages, closures) moved
// the long run's peak by +17 to +28 MiB against the short one's (2026-11-29),
// too close to the bound; with it, +8 to +13 MiB. Retaining the input or output
// would still show: as ArrayBuffers they are outside the old space (RSS +64 MiB),
// and as JS arrays they would not fit in it.
import { test } from 'uvu';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

function peak(L: number): number {
  const r = spawnSync(process.execPath, ['--max-old-space-size=32', join(ROOT, 'test', 'fixtures', 'stream-rss.mjs'), join(ROOT, 'dist', 'src', 'index.js'), String(L)], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`child for L=${L} failed (${r.status}): ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  console.log(`  L=${L}: peak RSS ${(out.maxRSS / 2 ** 20).toFixed(1)} MiB`);
  return out.maxRSS;
}

test('262,144-token MSR forward: peak RSS flat versus 16,384 tokens', () => {
  const small = peak(16_384);
  const big = peak(262_144);
  const MiB = 2 ** 20;
  if (big > small + 32 * MiB) throw new Error(`peak RSS grew from ${(small / MiB).toFixed(1)} to ${(big / MiB).toFixed(1)} MiB (bound +32 MiB)`);
  if (big > 512 * MiB) throw new Error(`peak RSS ${(big / MiB).toFixed(1)} MiB over the 512 MiB bound`);
});

test.run();
