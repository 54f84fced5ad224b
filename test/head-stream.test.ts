// The streamed LM head (src/lm/wasm-head.ts, `stream`): a long bf16 score() on oneDNN over a file-backed
// BF16 head reads the vocabulary from the file a slice at a time instead of keeping the whole packed head
// (125 MiB for the fla 1.3B shape); each slice's log Σ exp is folded into each row's (logAddExp). And the
// loader's check of a file-backed BF16 tensor, now read in row blocks through one scratch (the whole
// tensor, up to 125 MiB, was read and left as garbage): a bad value is still named at its position.
//
// Tolerances: the streamed and the whole head multiply the same bfloat16 operands by the same oneDNN
// matmul (K = 48 here), so their logits agree to float32 rounding of a differently blocked sum at most;
// the log-sum-exps then differ by float64 rounding of the fold (a few ulps of |lse|). Bound: 1e-5 × (1 +
// |log p|) per token, far above both, far below any real error (a missed slice or a wrong target column
// moves log p by ≥ 1e-2 on this model: its logits spread over several nats).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNetLM } from '../src/index.js';
import { Bf16Matrix } from '../src/model/bf16.js';
import { WasmHead, logAddExp } from '../src/lm/wasm-head.js';
import { dnnlMissing, loadDnnl } from '../src/runtime/dnnl.js';
import { roundRowsBf16 } from '../src/runtime/dnnl-kernels.js';
import { Rng } from '../src/random.js';
import { FIXTURES } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-head-stream-'));
const fixture = join(FIXTURES, 'fla', 'bf16-sharded');

/** null when oneDNN runs bfloat16 products here (its bf16 matmul on AVX512-BF16 or AMX); else why not.
 *  A missing oneDNN is a missing part (CI installs it); missing hardware is a skip everywhere. */
function bf16Hardware(name: string): boolean {
  if (!canRun(name, dnnlMissing())) return false;
  const lib = loadDnnl();
  if (!lib.hasBf16Hardware) { console.log(`SKIPPED: ${name} — this CPU has no bfloat16 dot products (oneDNN dispatches to ${lib.isa})`); return false; }
  return true;
}

const close = (what: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
  assert.is(got.length, want.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
    if (!(e <= worst)) { worst = e; at = i; }
  }
  assert.ok(worst <= 1e-5, `${what}: worst |Δ log p| / (1 + |log p|) = ${worst} at ${at} (${got[at]} vs ${want[at]})`);
};

test('logAddExp: ln(eᵃ + eᵇ) without overflow; −∞ is the empty sum; ±∞ and NaN as the exact sum would have them', () => {
  for (const [a, b] of [[0, 0], [1, -3], [-700, -701], [50, 49.5], [-1e-3, 2e-3], [3, -40]]) {
    const want = Math.log(Math.exp(a) + Math.exp(b));
    assert.ok(Math.abs(logAddExp(a, b) - want) <= 4e-16 * Math.max(1, Math.abs(want)), `${a}, ${b}: ${logAddExp(a, b)} vs ${want}`);
    assert.is(logAddExp(a, b), logAddExp(b, a));
  }
  assert.ok(Math.abs(logAddExp(1000, 1000) - (1000 + Math.LN2)) < 1e-12, 'no overflow at 1000');
  assert.is(logAddExp(-Infinity, 2.5), 2.5);
  assert.is(logAddExp(2.5, -Infinity), 2.5);
  assert.is(logAddExp(-Infinity, -Infinity), -Infinity);
  assert.is(logAddExp(Infinity, 3), Infinity);
  assert.ok(Number.isNaN(logAddExp(NaN, 3)) && Number.isNaN(logAddExp(3, NaN)) && Number.isNaN(logAddExp(Infinity, NaN)));
});

test('WasmHead streamed in slices of 7 vocabulary rows (the last of 2) = the whole head: log-probs of 300 rows in blocks of 64, and of a part', async () => {
  if (!bf16Hardware('the streamed LM head on oneDNN')) return;
  const lm = await RetNetLM.loadFolder(fixture, { bf16: 'file' });
  try {
    const W = lm.head as Bf16Matrix, d = lm.d, V = lm.vocab;
    assert.ok(W instanceof Bf16Matrix && !W.resident && W.readsRows, 'the fixture read from the file has a file-backed head');
    const lib = loadDnnl(), n = 300, rng = new Rng(5);
    const rows = Float32Array.from({ length: n * d }, () => 3 * (2 * rng.uniform() - 1));
    const next = Int32Array.from({ length: n }, (_, i) => (i * 37 + 11) % V);
    next[0] = 0; next[1] = V - 1; next[2] = 6; next[3] = 7; // slice edges
    const norm = new Float32Array(d).fill(1), bias = new Float32Array(d), tools = { dnnl: { lib }, round: roundRowsBf16 };
    const eps = 1e-6;
    const whole = new WasmHead(W, norm, bias, d, V, 64, eps, 'bf16', tools, 2);
    const want = new Float64Array(n);
    for (let r0 = 0; r0 < n; r0 += 64) {
      const m = Math.min(64, n - r0), z = whole.logits(rows, r0 * d, m), lse = whole.logSumExp(m);
      for (let r = 0; r < m; r++) want[r0 + r] = z[r * V + next[r0 + r]!]! - lse[r]!;
    }
    whole.close();
    for (const threads of [1, 2]) {
      const s = new WasmHead(W, norm, bias, d, V, 64, eps, 'bf16', tools, threads, { slice: 7 });
      assert.is(s.slice, 7);
      const got = new Float64Array(n);
      s.streamLogprobs(rows.slice(), n, next, got); // (it overwrites the rows with their normed values)
      close(`streamed, ${threads} thread(s)`, got, want);
      // a part: rows 100…100+37 alone
      const part = new Float64Array(37);
      s.streamLogprobs(rows.slice(100 * d), 37, next.subarray(100), part);
      close(`streamed, rows 100…136, ${threads} thread(s)`, part, want.subarray(100, 137));
      assert.throws(() => s.logits(rows, 0, 1), /streamed head has no logits/);
      assert.throws(() => s.streamLogprobs(rows.slice(), n + 1, next, got), /streamLogprobs of 301 rows/);
      s.close();
    }
    // only a file-backed BF16 head on oneDNN streams
    const resident = new Bf16Matrix(V, d, W.bits());
    assert.throws(() => new WasmHead(resident, norm, bias, d, V, 64, eps, 'bf16', tools, 1, { slice: 7 }), /file-backed BF16 head/);
  } finally { await lm.close(); }
});

test('a slice whose logits are all −∞ adds nothing to the log-sum-exp (before: NaN, where the whole head gives a finite log p)', async () => {
  if (!bf16Hardware('the streamed LM head, an all −∞ slice')) return;
  const d = 48, V = 21, n = 5;
  // rows 0…6 (the first slice of 7): column 0 = −1e38, the rest 0; the others small: with x[0] large, the
  // first slice's logits overflow to −∞ in float32, the others are finite
  const f = new Float32Array(V * d);
  for (let v = 0; v < V; v++) for (let c = 0; c < d; c++) f[v * d + c] = v < 7 ? (c === 0 ? -1e38 : 0) : Math.sin(v * 7 + c) * 0.1;
  const bits = Uint16Array.from(new Uint32Array(f.buffer), (u) => u >>> 16);
  const fileLike = new Bf16Matrix(V, d, () => bits.slice(), (r0, k, into) => { const b = bits.slice(r0 * d, (r0 + k) * d); if (into) { into.set(b); return into; } return b; });
  const rows = Float32Array.from({ length: n * d }, (_, i) => (i % d === 0 ? 10 : 0.01 * ((i % 7) - 3)));
  const next = Int32Array.from({ length: n }, (_, i) => 7 + i * 3);
  const norm = new Float32Array(d).fill(1), bias = new Float32Array(d), tools = { dnnl: { lib: loadDnnl() }, round: roundRowsBf16 };
  const whole = new WasmHead(fileLike, norm, bias, d, V, 64, 1e-6, 'bf16', tools, 1);
  const z = whole.logits(rows, 0, n), lse = whole.logSumExp(n);
  assert.ok(z[0] === -Infinity && Number.isFinite(z[V - 1]!), 'the first slice is −∞, the last finite');
  const want = Float64Array.from({ length: n }, (_, r) => z[r * V + next[r]!]! - lse[r]!);
  whole.close();
  const s = new WasmHead(fileLike, norm, bias, d, V, 64, 1e-6, 'bf16', tools, 1, { slice: 7 });
  const got = new Float64Array(n);
  s.streamLogprobs(rows.slice(), n, next, got);
  s.close();
  assert.ok(want.every(Number.isFinite), `whole head: ${want}`);
  close('streamed over an all −∞ slice', got, want);
});

test('score() at bf16 on oneDNN: a long input and a batch past the staged rows stream the head, and score as the whole head does (onScored once per input)', async () => {
  if (!bf16Hardware('score() with the streamed LM head')) return;
  const fromFile = await RetNetLM.loadFolder(fixture, { bf16: 'file' });
  const resident = await RetNetLM.loadFolder(fixture, { bf16: 'resident' });
  const heads = (lm: RetNetLM) => [...(lm as unknown as { bf16Heads: Map<string, unknown> }).bf16Heads.keys()].sort();
  try {
    const V = fromFile.vocab, opts = { backend: 'wasm' as const, kernels: 'dnnl' as const, precision: 'bf16' as const, chunkSize: 64, perToken: true };
    const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 37 + seed * 11 + ((i * i) % 13)) % V);
    const long = ids(1100, 1);
    const batch = Array.from({ length: 45 }, (_, k) => ids(20 + ((k * 17) % 70), k + 2)); // 2,473 rows to score: a flush mid-batch
    const done: number[] = [];
    const a = await fromFile.score(long, opts);
    const b = await fromFile.score(batch, { ...opts, onScored: (i) => done.push(i) });
    assert.equal(heads(fromFile), ['dnnl-stream'], 'streamed: no whole packed head made');
    assert.equal([...done].sort((x, y) => x - y), batch.map((_, i) => i), 'onScored once per input');
    const a2 = await resident.score(long, opts), b2 = await resident.score(batch, opts);
    assert.equal(heads(resident), ['dnnl'], 'a resident head is packed whole');
    close('1,100 tokens', a.logprobs!, a2.logprobs!);
    assert.ok(Math.abs(a.nll - a2.nll) <= 1e-5 * (1 + a2.nll), `nll ${a.nll} vs ${a2.nll}`);
    for (let k = 0; k < batch.length; k++) close(`batch input ${k}`, b[k]!.logprobs!, b2[k]!.logprobs!);
    // two calls at once, on two pools (other worker counts): each scores as alone (the rows wait in each
    // call, not in the head, whose memory a pass uses synchronously — so this holds however the calls'
    // windows interleave)
    const [c1, c2] = await Promise.all([fromFile.score(long, { ...opts, workers: 1 }), fromFile.score(batch, { ...opts, workers: 2 })]);
    close('1,100 tokens, beside a batch', c1.logprobs!, a2.logprobs!);
    for (let k = 0; k < batch.length; k++) close(`batch input ${k}, beside a long input`, c2[k]!.logprobs!, b2[k]!.logprobs!);
    assert.equal(heads(fromFile), ['dnnl-stream']);
    // a short call makes the whole head, which then serves every call (the streamed one is dropped)
    const short = await fromFile.score(ids(30, 9), opts);
    close('30 tokens', short.logprobs!, (await resident.score(ids(30, 9), opts)).logprobs!);
    assert.equal(heads(fromFile), ['dnnl']);
    close('1,100 tokens after', (await fromFile.score(long, opts)).logprobs!, a2.logprobs!);
  } finally { await fromFile.close(); await resident.close(); }
});

/** Rewrites a folder's F32 model.safetensors as BF16 (each value's top 16 bits), `edit` on the bits of each tensor. */
function toBf16(file: string, edit: (name: string, bits: Uint16Array, shape: number[]) => void): void {
  const raw = readFileSync(file), n = Number(raw.readBigUInt64LE(0));
  const hdr = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out: Record<string, unknown> = {}, parts: Uint16Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(hdr)) {
    if (name === '__metadata__') continue;
    const f = new Uint32Array(raw.buffer.slice(raw.byteOffset + 8 + n + t.data_offsets[0], raw.byteOffset + 8 + n + t.data_offsets[1]));
    const bits = Uint16Array.from(f, (u) => u >>> 16);
    edit(name, bits, t.shape);
    out[name] = { dtype: 'BF16', shape: t.shape, data_offsets: [off, off + bits.byteLength] };
    off += bits.byteLength; parts.push(bits);
  }
  let json = JSON.stringify(out);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))]));
}

test('a file-backed BF16 tensor is checked in 4 MiB blocks of rows: a NaN in the second block is named at its position; a clean one loads as the resident one', async () => {
  // vocab 70,000 × d 32 BF16 = 4.48 MB: rows 0…65,535 in the first block, the rest in the second
  const vocab = 70_000, d = 32;
  const clean = await makeTinyFlaFolder(join(tmp, 'clean'), { vocab, d, tokenizer: false });
  toBf16(join(clean, 'model.safetensors'), () => {});
  const ids = Int32Array.from([1, 69_999, 65_535, 65_536, 12]);
  const lf = await RetNetLM.loadFolder(clean, { bf16: 'file' }), lr = await RetNetLM.loadFolder(clean, { bf16: 'resident' });
  try {
    assert.ok(lf.embed instanceof Bf16Matrix && !lf.embed.resident);
    assert.equal([...(await lf.logits(ids, { backend: 'js' })).logits], [...(await lr.logits(ids, { backend: 'js' })).logits]);
  } finally { await lf.close(); await lr.close(); }
  for (const [row, col] of [[68_000, 3], [65_536, 0], [65_535, 31], [2, 7]]) {
    const dir = await makeTinyFlaFolder(join(tmp, `nan-${row}`), { vocab, d, tokenizer: false });
    toBf16(join(dir, 'model.safetensors'), (name, bits, shape) => { if (name === 'model.embeddings.weight') bits[row * shape[1]! + col] = 0xffc0; });
    let e: { code?: string; message: string } = { message: '(no error)' };
    try { await RetNetLM.loadFolder(dir, { bf16: 'file' }); } catch (x) { e = x as typeof e; }
    assert.is(e.code, 'E_WEIGHTS', e.message);
    assert.match(e.message, new RegExp(`model\\.embeddings\\.weight has a non-finite value NaN at \\[${row}, ${col}\\]`));
  }
});

test('score() streaming: progress counts scored tokens (done = total only after every input is scored); a whole head made during a streamed call does not close the streamed one under it', async () => {
  if (!bf16Hardware('score() with the streamed LM head: progress and a head replaced mid-call')) return;
  const lm = await RetNetLM.loadFolder(fixture, { bf16: 'file' });
  const internals = lm as unknown as { bf16Heads: Map<string, { team?: unknown }>; streamBuf: unknown };
  try {
    const V = lm.vocab, opts = { backend: 'wasm' as const, kernels: 'dnnl' as const, precision: 'bf16' as const, chunkSize: 64 };
    const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 37 + seed * 11 + ((i * i) % 13)) % V);
    // progress: a batch of 2,473 rows (a pass in the middle and one at the end)
    const batch = Array.from({ length: 45 }, (_, k) => ids(20 + ((k * 17) % 70), k + 2));
    const total = batch.reduce((a, b) => a + b.length, 0), events: string[] = [];
    let prev = -1;
    await lm.score(batch, { ...opts, onProgress: (done, t) => { assert.is(t, total); assert.ok(done > prev, `progress ${done} after ${prev}`); prev = done; events.push(`p${done}`); }, onScored: (i) => events.push(`s${i}`) });
    assert.is(events.at(-1), `p${total}`, 'done = total comes last');
    assert.is(events.filter((e) => e.startsWith('s')).length, batch.length);
    assert.ok(events.indexOf(`p${total}`) > Math.max(...batch.map((_, i) => events.indexOf(`s${i}`))), 'after every onScored');
    // a short call (the whole head) made while a long streamed call runs
    const stream = internals.bf16Heads.get('dnnl-stream')!;
    assert.ok(stream, 'streaming');
    let short: Promise<unknown> | null = null, teamAtEnd: unknown;
    const long = lm.score(ids(1100, 1), {
      ...opts,
      onProgress: () => { short ??= lm.score(ids(30, 9), opts); },
      onScored: () => { teamAtEnd = (stream as { team?: unknown }).team; },
    });
    await long; await short;
    assert.ok(teamAtEnd !== null, 'the streamed head was still open for the long call\'s last pass (before: closed, its passes on one thread)');
    assert.is(stream.team, null, 'closed once the long call ended');
    assert.equal([...internals.bf16Heads.keys()], ['dnnl']);
    assert.is(internals.streamBuf, null, 'no rows buffer kept for a streamed head that is gone');
  } finally { await lm.close(); }
});

test.run();
