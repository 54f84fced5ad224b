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

// Carried states are made per sequence and layer when first scanned and given back after the
// sequence's last chunk. Before, every sequence starting in a window got one per layer at once: for
// this model (4.2 MB per state) a window of 63 one-chunk sequences held 126 states (530 MB) against
// 30 for a window of 15 four-chunk sequences — measured +872 MiB of peak RSS for 256 sequences of 8
// tokens over 1 of 2,048. Both runs below have windows of ~60 chunks (the window's summary budget,
// 256 MiB, is what sizes it here), so their window buffers match within 3 summaries (13 MB); the
// bound, +48 MiB, is under 12 states. Children run with a 32 MB old space (see above).
function raggedPeak(n: number): number {
  const r = spawnSync(process.execPath, ['--max-old-space-size=32', join(ROOT, 'test', 'fixtures', 'ragged-states-rss.mjs'), join(ROOT, 'dist', 'src', 'index.js'), String(n), '2048'], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`child for ${n} sequences failed (${r.status}): ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  console.log(`  ${n} sequences of ${2048 / n} tokens: peak RSS ${(out.maxRSS / 2 ** 20).toFixed(1)} MiB`);
  return out.maxRSS;
}

test('windows of many short sequences hold a few carried states, not one per sequence and layer: 256 one-chunk sequences within 48 MiB of 64 four-chunk ones', () => {
  const fewer = raggedPeak(64);
  const many = raggedPeak(256);
  const MiB = 2 ** 20;
  if (many > fewer + 48 * MiB) throw new Error(`peak RSS ${(many / MiB).toFixed(1)} MiB with 256 sequences against ${(fewer / MiB).toFixed(1)} with 64 (bound +48 MiB)`);
});

test.run();
