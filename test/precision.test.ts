// precision: 'bf16' (bfloat16 operands of the big matrix products, float32 accumulation) on the wasm
// backend: the rounding fallback on the 'wasm' and 'blas' engines everywhere, and the 'dnnl' engine
// (oneDNN's bf16 matmul) where the CPU has bfloat16 dot products — skipped by name elsewhere, CI
// included, since hardware cannot be installed.
//
// Error bound against the float64 goldens, scale-free (max|Δ| / max|reference|): bfloat16 keeps 8
// significant bits, unit roundoff u = 2⁻⁹. A product whose two operands are rounded is off by at
// most ≈ 2u·Σ|terms| (the float32 accumulation adds ~K·2⁻²⁴, negligible). Each layer has 4 such
// products in sequence on every path to the output (q/k/v/g, o, and the MLP's two), so to first
// order the output is within 4 · 2u = 8u per layer of max|output| when no term cancellation
// amplifies it: 8u · layers for the model's output (the seed fixtures' outputs), plus 2u for the LM
// head — a bfloat16 product too — on the logits (the fla fixtures, 2 layers: 18u = 3.5e-2).
// Measured (this file's log): 6.3e-3 … 2.4e-2 on the fla fixtures (tied embeddings worst),
// 1.3e-4 … 6.3e-3 on the seed fixtures, the same on all three engines.
// The dnnl engine and the fallback compute the same rounded operands and differ only in float32
// accumulation order — which now and then flips one bfloat16 rounding of a later layer's input
// (one bf16 ulp, 2u, of that element): measured 2e-7 … 2.4e-3; held to the same BOUND.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { RetNetLM, RetNetError } from '../src/index.js';
import { FIXTURE_NAMES, loadCases, loadFixtureModel } from './helpers.js';
import { canRun } from './helpers/skip.js';
import { FLA_MODELS, flaDir, flaGolden } from './helpers/fla-golden.js';
import { engineMissing } from './helpers/engines.js';
import { dnnlMissing, loadDnnl, toBf16 } from '../src/runtime/dnnl.js';
import { roundRowsBf16 } from '../src/runtime/dnnl-kernels.js';
import type { KernelsName } from '../src/options.js';
import { score as scoreCommand } from '../src/cli/commands/score.js';
import { Readable } from 'node:stream';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const U = 2 ** -9;
/** the model's output (no head) */
const bound = (layers: number) => 8 * U * layers;
/** logits: the layers and the head */
const boundLM = (layers: number) => bound(layers) + 2 * U;
const FLA = FLA_MODELS;
const dirOf = flaDir;
const golden = flaGolden;

/** null when the dnnl engine can run here with bfloat16 hardware, else why not. Missing oneDNN is a
 *  missing part (CI installs it: canRun fails there); missing hardware is a skip everywhere. */
function dnnlHardware(): string | null {
  const m = dnnlMissing();
  if (m !== null) return m;
  const lib = loadDnnl();
  return lib.hasBf16Hardware ? null : `this CPU has no bfloat16 dot products (oneDNN dispatches to ${lib.isa})`;
}
function canRunEngine(name: string, kernels: KernelsName): boolean {
  if (kernels !== 'dnnl') return canRun(name, engineMissing(kernels));
  if (!canRun(name, dnnlMissing())) return false;
  const hw = dnnlHardware();
  if (hw !== null) { console.log(`SKIPPED: ${name} — ${hw}`); return false; }
  return true;
}


async function allLogits(lm: RetNetLM, seqs: Int32Array[], opts: Parameters<RetNetLM['logits']>[1]): Promise<Float64Array[]> {
  const out: Float64Array[] = [];
  for (const s of seqs) out.push((await lm.logits(s, opts)).logits);
  return out;
}
function relErr(got: Float64Array[], want: ArrayLike<number>, scale: number): number {
  let worst = 0, o = 0;
  for (const g of got) { for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - want[o + i]) / scale); o += g.length; }
  return worst;
}

const ENGINES: KernelsName[] = ['wasm', 'blas', 'dnnl'];
const lms = new Map<string, RetNetLM>();
const lmOf = async (name: string) => lms.get(name) ?? lms.set(name, await RetNetLM.load(dirOf(name))).get(name)!;

for (const kernels of ENGINES) {
  const name = `precision bf16 on the ${kernels} engine: every fla fixture's logits within (8·layers + 2)·u of max|logit| of the float64 golden (parallel and chunks of 7)`;
  test(name, async () => {
    if (!canRunEngine(name, kernels)) return;
    for (const fx of FLA) {
      const g = golden(fx), lm = await lmOf(fx);
      const layers = lm.model.config.numLayer;
      for (const form of [{}, { chunkSize: 7 }]) {
        const e = relErr(await allLogits(lm, g.seqs, { backend: 'wasm', kernels, precision: 'bf16', ...form }), g.want, g.scale);
        console.log(`  ${fx} ${kernels} ${JSON.stringify(form)}: ${e.toExponential(2)} (bound ${boundLM(layers).toExponential(2)})`);
        assert.ok(e <= boundLM(layers), `${fx} on ${kernels}: ${e} > ${boundLM(layers)}`);
        assert.ok(e > 1e-5, `${fx} on ${kernels}: ${e} is float32-sized — were the operands rounded at all?`);
      }
    }
  });
}

// The recurrent step at bf16 (generate's decoding; the engine 'auto' picks: oneDNN on all cores where the
// CPU has bfloat16 dot products, else the fallback) against the golden logits, as log-probabilities:
// Δlogprob_v = Δz_v − Δlse with |Δlse| ≤ max|Δz|, so the logits' bound doubles.
const tStep = 'precision bf16, recurrent step (lm.step): every fla fixture\'s next-token log-probs within 2·(8·layers + 2)·u of max|logit| of the float64 golden';
test(tStep, async () => {
  for (const fx of FLA) {
    const g = golden(fx), lm = await lmOf(fx);
    const layers = lm.model.config.numLayer, seq = g.seqs[0], V = g.V;
    let r = lm.step(seq[0], undefined, { backend: 'wasm', precision: 'bf16' });
    let worst = 0;
    for (let t = 0; t < seq.length; t++) {
      if (t > 0) r = lm.step(seq[t], r.state, { backend: 'wasm', precision: 'bf16' });
      let mx = -Infinity, sum = 0;
      for (let v = 0; v < V; v++) mx = Math.max(mx, g.want[t * V + v]);
      for (let v = 0; v < V; v++) sum += Math.exp(g.want[t * V + v] - mx);
      const lse = mx + Math.log(sum);
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(r.logprobs[v] - (g.want[t * V + v] - lse)) / g.scale);
    }
    const b = 2 * boundLM(layers);
    console.log(`  ${fx} step: ${worst.toExponential(2)} (bound ${b.toExponential(2)})`);
    assert.ok(worst <= b, `${fx} step: ${worst} > ${b}`);
    assert.ok(worst > 1e-5, `${fx} step: ${worst} is float32-sized — were the operands rounded at all?`);
  }
});

const tSeed = 'precision bf16 (wasm fallback, and dnnl where the hardware is): the seed-family fixtures\' outputs within 8u·layers of the float64 golden';
test(tSeed, async () => {
  const dnnl = dnnlHardware() === null;
  if (!dnnl) console.log(`  (dnnl part skipped: ${dnnlHardware()})`);
  for (const name of FIXTURE_NAMES) {
    const model = await loadFixtureModel(name);
    const fx = loadCases(name);
    const x = fx.get('input');
    const c = fx.cases[0];
    const b = bound(model.config.numLayer);
    for (const kernels of (dnnl ? ['wasm', 'dnnl'] : ['wasm']) as KernelsName[]) {
      const y = await model.forward(x, { numChunks: 4, normalizeAttn: c.normalize_attn, normalizeRetn: c.normalize_retn, backend: 'wasm', kernels, precision: 'bf16' });
      const want = fx.get(c.output).data;
      let scale = 0, worst = 0;
      for (const v of want) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(y.data[i] - want[i]) / scale);
      console.log(`  ${name} ${kernels}: ${worst.toExponential(2)} (bound ${b.toExponential(2)})`);
      assert.ok(worst <= b, `${name} ${kernels}: ${worst} > ${b}`);
    }
    await model.close();
  }
});

const tAgree = 'precision bf16: the dnnl engine and the fallback agree within (8·layers + 2)·u on every fla fixture (they differ only in float32 accumulation order)';
test(tAgree, async () => {
  if (!canRunEngine(tAgree, 'dnnl')) return;
  for (const fx of FLA) {
    const g = golden(fx), lm = await lmOf(fx);
    const a = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', precision: 'bf16', chunkSize: 7 });
    const d = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'dnnl', precision: 'bf16', chunkSize: 7 });
    const flat = new Float64Array(a.reduce((n, x) => n + x.length, 0));
    let o = 0;
    for (const x of a) { flat.set(x, o); o += x.length; }
    const e = relErr(d, flat, g.scale);
    console.log(`  ${fx}: dnnl vs fallback ${e.toExponential(2)}`);
    assert.ok(e <= boundLM(lm.model.config.numLayer), `${fx}: ${e}`);
  }
});

// bf16 makes the gate projection in phase C from the slab's rows (Dims.gSplit) and the window's buffers hold
// less; a slab's arithmetic still depends on its slab and layer alone, so the worker count and window size
// change no bit (as at f32: runtime-forms).
const tBits = "precision 'bf16': the same nll bits for workers 1 and 2 and windows of 64, 300 and the default rows (fallback; oneDNN where the hardware is)";
test(tBits, async () => {
  const lm = await lmOf('gqa');
  const ids = Int32Array.from({ length: 700 }, (_, i) => 3 + ((i * 7919) % (lm.vocab - 3)));
  for (const kernels of ['wasm', 'dnnl'] as const) {
    if (kernels === 'dnnl' && !canRunEngine(`${tBits} (dnnl)`, 'dnnl')) continue;
    const nll: number[] = [];
    for (const windowRows of [undefined, 64, 300]) for (const workers of [1, 2]) {
      const r = await lm.score(ids, { backend: 'wasm', kernels, precision: 'bf16', chunkSize: 32, workers, ...(windowRows ? { windowRows } : {}) });
      nll.push(r.nll);
    }
    assert.ok(nll.every((x) => Object.is(x, nll[0])), `${kernels}: ${nll.join(', ')}`);
    const f32 = await lm.score(ids, { backend: 'wasm', kernels: 'wasm', chunkSize: 32 });
    assert.ok(f32.nll !== nll[0], 'bf16 differs from f32');
  }
});

test("precision 'f32' (explicit, or RETNET_PRECISION=f32) is bitwise the default; 'bf16' changes the logits", async () => {
  const g = golden('f32'), lm = await lmOf('f32');
  const def = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7 });
  const f32 = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7, precision: 'f32' });
  const saved = process.env.RETNET_PRECISION;
  process.env.RETNET_PRECISION = 'f32';
  let env: Float64Array[];
  try { env = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7 }); } finally {
    if (saved === undefined) delete process.env.RETNET_PRECISION; else process.env.RETNET_PRECISION = saved;
  }
  const bf = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7, precision: 'bf16' });
  for (let b = 0; b < def.length; b++) {
    assert.equal(Array.from(f32[b]), Array.from(def[b]));
    assert.equal(Array.from(env[b]), Array.from(def[b]));
    assert.not.equal(Array.from(bf[b]), Array.from(def[b]));
  }
});

test('RETNET_PRECISION=bf16 selects bf16 on wasm when the option is absent; the option wins over it; js ignores it', async () => {
  const g = golden('f32'), lm = await lmOf('f32');
  const opt = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7, precision: 'bf16' });
  const def = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7 });
  const saved = process.env.RETNET_PRECISION;
  process.env.RETNET_PRECISION = 'bf16';
  try {
    const env = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7 });
    const over = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'wasm', chunkSize: 7, precision: 'f32' });
    for (let b = 0; b < opt.length; b++) {
      assert.equal(Array.from(env[b]), Array.from(opt[b]));
      assert.equal(Array.from(over[b]), Array.from(def[b]));
    }
    // the variable reaches the wasm backend only: js (the float64 reference, drift's too) runs as without
    // it (before: E_OPTION "precision must be 'f32' on the js backend", an option nobody gave)
    const js = await allLogits(lm, g.seqs, { backend: 'js', chunkSize: 7 });
    delete process.env.RETNET_PRECISION;
    const jsPlain = await allLogits(lm, g.seqs, { backend: 'js', chunkSize: 7 });
    for (let b = 0; b < js.length; b++) assert.equal(Array.from(js[b]), Array.from(jsPlain[b]));
  } finally {
    if (saved === undefined) delete process.env.RETNET_PRECISION; else process.env.RETNET_PRECISION = saved;
  }
});

test('precision errors: an unknown value, bf16 on js or tfjs, a bad RETNET_PRECISION — each E_OPTION naming the option', async () => {
  const lm = await lmOf('f32');
  const ids = golden('f32').seqs[0];
  const expectOption = async (p: Promise<unknown>, what: RegExp) => {
    try { await p; assert.unreachable('should throw'); } catch (e) {
      assert.instance(e, RetNetError);
      assert.is((e as RetNetError).code, 'E_OPTION');
      assert.match((e as Error).message, what);
    }
  };
  await expectOption(lm.score(ids, { precision: 'fp8' as never }), /precision must be 'f32' or 'bf16'/);
  await expectOption(lm.score(ids, { backend: 'js', precision: 'bf16' }), /precision.*js backend/);
  await expectOption(lm.score(ids, { backend: 'tfjs', precision: 'bf16' }), /precision.*tfjs backend/);
  const saved = process.env.RETNET_PRECISION;
  process.env.RETNET_PRECISION = 'half';
  try { await expectOption(lm.score(ids, {}), /RETNET_PRECISION/); } finally {
    if (saved === undefined) delete process.env.RETNET_PRECISION; else process.env.RETNET_PRECISION = saved;
  }
});

const tInfo = "backendInfo at precision bf16 names the precision, and on the dnnl engine oneDNN's version, ISA and the implementation it dispatched to";
test(tInfo, async () => {
  const lm = await RetNetLM.load(dirOf('f32'));
  const ids = golden('f32').seqs[0];
  await lm.score(ids, { kernels: 'wasm', precision: 'bf16' });
  let info = await lm.model.backendInfo();
  assert.ok(info.some((i) => i.precision === 'bf16' && i.kernels === 'wasm' && /bf16 operands/.test(i.engine)), JSON.stringify(info));
  if (canRunEngine(tInfo, 'dnnl')) {
    await lm.score(ids, { kernels: 'dnnl', precision: 'bf16' });
    info = await lm.model.backendInfo();
    const d = info.find((i) => i.kernels === 'dnnl');
    assert.ok(d, JSON.stringify(info));
    assert.match(String(d!.dispatch), /^onednn \d+\.\d+\.\d+ \((avx512_core_bf16|avx512_core_amx)[^)]*\): brg:/);
    assert.is(d!.precision, 'bf16');
    console.log(`  ${d!.engine}; ${d!.dispatch}`);
  }
  await lm.close();
});

const tF32 = "kernels 'dnnl' at precision 'f32': backendInfo names oneDNN, f32 operands and the implementation; logits within 3e-5 of max|logit| of the float64 golden";
test(tF32, async () => {
  if (!canRun(tF32, dnnlMissing())) return;
  const lm = await RetNetLM.load(dirOf('f32'));
  const g = golden('f32');
  const f = await allLogits(lm, g.seqs, { backend: 'wasm', kernels: 'dnnl', chunkSize: 7 });
  const info = await lm.model.backendInfo();
  const d = info.find((i) => i.kernels === 'dnnl');
  assert.ok(d && d.precision === 'f32' && /^onednn .*f32 operands$/.test(d.engine), JSON.stringify(info));
  assert.match(String(d!.dispatch), /^onednn \d+\.\d+\.\d+ \([^)]*\): /);
  console.log(`  ${d!.engine}; ${d!.dispatch}`);
  // float32 operands: a float32-sized error, the fla-golden bound (3e-5); the bf16 runs above are > 1e-5
  const e = relErr(f, g.want, g.scale);
  console.log(`  f32 on dnnl: ${e.toExponential(2)} of max|logit|`);
  assert.ok(e <= 3e-5, `dnnl f32 logits: ${e}`);
  await lm.close();
});

test('roundRowsBf16 (the fallback\'s in-place rounding) = round to nearest even on ties, specials, overflow and subnormals, and keeps the row padding', () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const vals = [0, -0, 1, -1, 1 + 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 1 + 3 * 2 ** -8, Math.PI, -Math.E, 3.3895313892515355e38, 3.4028234663852886e38,
    Infinity, -Infinity, NaN, 1e-40, -1e-45, 65504, 1 / 3, 0.1, -7.5e-39];
  const cols = vals.length, ld = cols + 3;
  const f = new Float32Array(memory.buffer, 0, 2 * ld);
  for (let r = 0; r < 2; r++) { vals.forEach((v, i) => { f[r * ld + i] = v; }); f.fill(42.4242, r * ld + cols, (r + 1) * ld); }
  const want = vals.map((v) => toBf16(v));
  roundRowsBf16(memory, 0, 2, cols, ld);
  const u = new Uint32Array(memory.buffer, 0, 2 * ld);
  for (let r = 0; r < 2; r++) {
    for (let i = 0; i < cols; i++) {
      assert.is(u[r * ld + i] & 0xffff, 0, `low bits of ${vals[i]}`);
      if (Number.isNaN(vals[i])) assert.ok(Number.isNaN(f[r * ld + i]));
      else assert.is(u[r * ld + i] >>> 16, want[i], `bf16(${vals[i]})`);
    }
    assert.is(f[r * ld + cols], Math.fround(42.4242), 'padding untouched');
  }
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await scoreCommand.run(args, {
    stdout: { write: (t: string) => { out.push(t); } }, stderr: { write: (t: string) => { err.push(t); }, isTTY: false }, stdin: Readable.from([]),
  });
  return { code, out: out.join(''), err: err.join('') };
}

test('retnet score --precision bf16 scores a file (perplexity differs from f32 by a bf16-sized amount); a bad --precision is a usage error (exit 2)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'retnet-precision-'));
  const doc = join(tmp, 'doc.txt');
  writeFileSync(doc, 'The quick brown fox jumps over the lazy dog. '.repeat(8));
  const model = await makeTinyFlaFolder(join(tmp, 'model'));
  const ppl = (o: string) => Number(/perplexity ([0-9.]+)/.exec(o)![1]);
  const f = await cli(['--model', model, doc]);
  const b = await cli(['--model', model, '--precision', 'bf16', doc]);
  assert.is(f.code, 0, f.err); assert.is(b.code, 0, b.err);
  const rel = Math.abs(ppl(b.out) - ppl(f.out)) / ppl(f.out);
  console.log(`  perplexity f32 ${ppl(f.out)}, bf16 ${ppl(b.out)} (relative ${rel.toExponential(2)})`);
  assert.ok(rel > 0 && rel < 0.05, String(rel));
  const bad = await cli(['--model', model, '--precision', 'fp16', doc]);
  assert.is(bad.code, 2);
  assert.match(bad.err, /--precision must be one of f32, bf16/);
});

test.after(async () => { for (const lm of lms.values()) await lm.close(); });
test.run();
