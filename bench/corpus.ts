// Corpus scoring throughput (`retnet score --out`, scoreCorpus) with the shipped
// bytes-4x128 model:
//   1. one machine: documents/s and bytes/s on many short documents (~1 KiB)
//      vs a few long ones (~256 KiB), the same number of bytes — the ragged
//      batches must keep the pool busy (target: short ≥ 0.8 × long);
//   2. queue overhead: one coordinator + one `retnet worker` on this machine,
//      through BullMQ on a local redis-server, vs the one-machine mode on the
//      short-document corpus (target: within 10 %);
//   3. peak RSS of the coordinator and the worker on a corpus and on one 8× as large.
// Prints its parameters (and the load average: the figures are only as quiet as the
// machine); writes bench/results/corpus.json.
//
//   npm run build && node dist/bench/corpus.js [--bytes N] [--shard-bytes N] [--rss-bytes N]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { scoreCorpus, type CorpusSummary } from '../src/index.js';
import { benchArgs, numArg } from './args.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const { values } = benchArgs({ options: {
  bytes: { type: 'string', default: String(1 << 20) }, 'shard-bytes': { type: 'string', default: String(256 << 10) },
  'rss-bytes': { type: 'string', default: String(128 << 10) },
} });
const nBytes = numArg('bytes', values.bytes), shardBytes = numArg('shard-bytes', values['shard-bytes']), rssBytes = numArg('rss-bytes', values['rss-bytes']);
const params = {
  bytes: nBytes, shortDoc: 1024, longDoc: 256 << 10, shardBytes, rssBytes, model: 'bytes-4x128 (shipped)', backend: 'wasm (default)',
  node: process.version, cpu: `${cpus().length}× ${cpus()[0]?.model}`, date: new Date().toISOString(), loadavgStart: loadavg(),
};
console.log('params', params);

// Text from this repository's sources, so the LM sees the kind of bytes it was trained on.
const src = Buffer.concat(['src/lm/retnet-lm.ts', 'src/model/retnet.ts', 'src/runtime/executor.ts', 'README.md'].map((f) => readFileSync(join(ROOT, f))));
const textAt = (off: number, n: number) => { let s = ''; while (s.length < n) { const o = (off + s.length) % src.length; s += src.toString('latin1', o, Math.min(src.length, o + n - s.length)); } return s; };
function writeJsonl(path: string, total: number, docBytes: number): number {
  const lines: string[] = [];
  for (let i = 0; i * docBytes < total; i++) lines.push(JSON.stringify({ id: `doc${i}`, text: textAt(i * 7919, docBytes) }));
  writeFileSync(path, lines.join('\n') + '\n');
  return lines.length;
}

const dir = mkdtempSync(join(tmpdir(), 'retnet-bench-corpus-'));
const shortPath = join(dir, 'short.jsonl'), longPath = join(dir, 'long.jsonl');
const nShort = writeJsonl(shortPath, nBytes, 1024), nLong = writeJsonl(longPath, nBytes, 256 << 10);

const fmt = (s: CorpusSummary) => ({ documents: s.documents, bytes: s.bytes, seconds: +s.seconds.toFixed(2), docsPerSec: +(s.documents / s.seconds).toFixed(1), bytesPerSec: Math.round(s.bytesPerSecond) });
async function local(input: string, out: string, sb = shardBytes) { return scoreCorpus({ inputs: [input], out, shardBytes: sb }); }

// 1. one machine
writeJsonl(join(dir, 'warm.jsonl'), 16 << 10, 1024);
await local(join(dir, 'warm.jsonl'), join(dir, 'warm.out.jsonl')); // warm the WASM compile caches and the OS file cache
const longRun = fmt(await local(longPath, join(dir, 'long.out.jsonl')));
console.log('one machine, long documents ', longRun);
const shortRun = fmt(await local(shortPath, join(dir, 'short.out.jsonl')));
console.log('one machine, short documents', shortRun);
const ratio = shortRun.bytesPerSec / longRun.bytesPerSec;
console.log(`short/long bytes/s = ${ratio.toFixed(3)} (target ≥ 0.8)`);

// 2 and 3 need a redis-server
const haveRedis = !spawnSync('redis-server', ['--version']).error;
let queue: Record<string, unknown> | null = null, rss: Record<string, unknown> | null = null;
if (haveRedis) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const url = `redis://127.0.0.1:${port}`;
  const startWorker = () => {
    const w = spawn(process.execPath, [CLI, 'worker', '--queue', url], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    w.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    return { w, err: () => err, stop: () => new Promise<void>((r) => { w.once('exit', () => r()); w.kill('SIGTERM'); }) };
  };
  try {
    const wk = startWorker();
    const q = fmt(await scoreCorpus({ inputs: [shortPath], out: join(dir, 'short.q.jsonl'), shardBytes, queue: url, runId: 'bench-q' }));
    await wk.stop();
    const same = readFileSync(join(dir, 'short.q.jsonl')).equals(readFileSync(join(dir, 'short.out.jsonl')));
    queue = { ...q, shardBytes, overhead: +(shortRun.bytesPerSec / q.bytesPerSec - 1).toFixed(3), outputEqualsOneMachine: same };
    console.log('queue (1 coordinator + 1 worker), short documents', queue);

    // 3. peak RSS at 1× and 8× (coordinator in a child process too, so its RSS is its own)
    const rssAt = async (total: number) => {
      const p = join(dir, `rss-${total}.jsonl`);
      writeJsonl(p, total, 4096);
      const w2 = startWorker();
      const sj = join(dir, `rss-${total}.json`);
      const c = spawnSync(process.execPath, [CLI, 'score', '--queue', url, '--out', join(dir, `rss-${total}.out.jsonl`), '--shard-bytes', '16384', '--max-in-flight', '4', '--summary-json', sj, p], { encoding: 'utf8' });
      if (c.status !== 0) throw new Error(c.stderr);
      await w2.stop();
      const wm = /peak RSS ([\d.]+) MiB/.exec(w2.err());
      return { corpusBytes: total, coordinatorPeakRssMiB: +(JSON.parse(readFileSync(sj, 'utf8')).peak_rss_bytes / 2 ** 20).toFixed(1), workerPeakRssMiB: wm ? Number(wm[1]) : null };
    };
    const r1 = await rssAt(rssBytes), r8 = await rssAt(8 * rssBytes);
    rss = { shardBytes: 16384, maxInFlight: 4, x1: r1, x8: r8 };
    console.log('peak RSS', rss);
  } finally { redis.kill('SIGTERM'); }
} else console.log('redis-server not installed: queue overhead and RSS not measured');

const result = { params, shortDocs: nShort, longDocs: nLong, oneMachine: { short: shortRun, long: longRun, shortOverLong: +ratio.toFixed(3) }, queue, rss, loadavgEnd: loadavg() };
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'corpus.json'), JSON.stringify(result, null, 2) + '\n');
console.log('wrote bench/results/corpus.json; load average at the end', loadavg());
rmSync(dir, { recursive: true, force: true });
