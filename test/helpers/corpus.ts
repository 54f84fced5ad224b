// Helpers of the corpus tests: a small byte-level LM (so a few hundred
// documents score in seconds on a busy 2-core machine), a Redis server of the
// test's own on a free loopback port, and CLI child processes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNet, writeSafetensors } from '../../src/index.js';
import { configToMetadata, layersToTensors } from '../../src/model/weights.js';
import { Rng } from '../../src/random.js';
import { ROOT } from '../helpers.js';

export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** A seeded random byte-level LM (1 layer, d = dim, 2 heads) written to `path`. */
export function writeSmallLM(path: string, dim = 32, seed = 3): void {
  const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: dim, valueFactor: 2, msrGateFn: 'gelu', mlpGateFn: 'gelu', mlpMult: 2, mlpBias: true, seed });
  const rng = new Rng(seed + 1);
  const rand = (n: number, s: number) => Float32Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * s);
  writeSafetensors(path, {
    ...layersToTensors(model.layers, model.dims),
    'embed.weight': { shape: [256, dim], data: rand(256 * dim, 1) },
    'head.weight': { shape: [256, dim], data: rand(256 * dim, 0.3) },
    'final_norm.weight': { shape: [dim], data: new Float32Array(dim).fill(1) },
    'final_norm.bias': { shape: [dim], data: new Float32Array(dim) },
  }, { config: configToMetadata(model.config, model.dims) });
}

/** Why the queue tests cannot run here, or null. */
export function redisMissing(): string | null {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.error ? 'redis-server is not installed (apt-get install -y redis-server)' : null;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); });
    s.on('error', rej);
  });
}

export interface RedisServer { port: number; url: string; dir: string; proc: ChildProcess; stop(): Promise<void> }

/** redis-server on 127.0.0.1 with a free port (or `port`) and a temporary directory (or `dir`). */
export async function startRedis(opts: { port?: number; dir?: string; appendonly?: boolean; args?: string[] } = {}): Promise<RedisServer> {
  const port = opts.port ?? await freePort();
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'retnet-redis-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no', '--dir', dir, ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.on('data', (c: Buffer) => { log += c.toString(); });
  const t0 = Date.now();
  while (!/Ready to accept connections/.test(log)) {
    if (proc.exitCode !== null || Date.now() - t0 > 10_000) throw new Error(`redis-server did not start: ${log.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port, url: `redis://127.0.0.1:${port}`, dir, proc,
    stop: () => new Promise<void>((res) => { if (proc.exitCode !== null) return res(); proc.once('exit', () => res()); proc.kill('SIGTERM'); }),
  };
}

export interface Child { proc: ChildProcess; out: () => string; err: () => string; done: Promise<number | null>; waitFor(re: RegExp, ms?: number): Promise<void> }

/** `node dist/src/cli/main.js ...args` as a child process, stderr/stdout collected. */
export function cliChild(args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  let out = '', err = '';
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  proc.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  const done = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  return {
    proc, out: () => out, err: () => err, done,
    async waitFor(re, ms = 60_000) {
      const t0 = Date.now();
      while (!re.test(err)) {
        if (proc.exitCode !== null) throw new Error(`exited (${proc.exitCode}) before ${re}: ${err.slice(-2000)}`);
        if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${re}: ${err.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

/** Deterministic text of n bytes (ASCII words and newlines). */
export function textOf(n: number, seed: number): string {
  const rng = new Rng(seed);
  const words = ['the', 'retention', 'of', 'def', 'return', 'x', '=', 'import', 'os', '(', ')', 'corpus', 'score', '\n', 'a', 'for', 'in'];
  let s = '';
  while (s.length < n) s += words[Math.floor(rng.uniform() * words.length)] + ' ';
  return s.slice(0, n);
}

export interface CorpusSpec { jsonl: number; gz: number; long: number[]; seed?: number }

/** A corpus directory: a.jsonl (`jsonl` docs of 0–200 bytes, a bad line in the middle),
 *  b.jsonl.gz (`gz` docs), long/NN.txt (one plain document per entry of `long`). Returns the document count. */
export function writeCorpus(dir: string, spec: CorpusSpec): number {
  const seed = spec.seed ?? 1;
  const rng = new Rng(seed);
  const line = (i: number) => JSON.stringify({ id: `d${i}`, text: textOf(i === 0 ? 0 : i === 1 ? 1 : 1 + Math.floor(rng.uniform() * 200), seed * 1000 + i) }) + '\n';
  let a = '';
  for (let i = 0; i < spec.jsonl; i++) { a += line(i); if (i === Math.floor(spec.jsonl / 2)) a += '{"id": "broken", "text": \n'; }
  mkdirSync(join(dir, 'long'), { recursive: true });
  writeFileSync(join(dir, 'a.jsonl'), a);
  let b = '';
  for (let i = 0; i < spec.gz; i++) b += line(spec.jsonl + i);
  writeFileSync(join(dir, 'b.jsonl.gz'), gzipSync(b));
  spec.long.forEach((n, k) => writeFileSync(join(dir, 'long', `${String(k).padStart(2, '0')}.txt`), textOf(n, seed * 7 + k)));
  return spec.jsonl + spec.gz + spec.long.length;
}
