// Decoding speed of a model folder (e.g. the fla 1.3B shape from bench/make-fla-shape.mjs) against the
// memory-bandwidth bound: B = 1, greedy, `generate`'s recurrent step ('wasm'), next to the
// machine's read bandwidth measured in the same run. Every decoded token reads every weight of the
// layers and the head once, so tokens/s ≤ bandwidth ÷ those bytes (the embedding contributes one row).
//
// Bandwidth: memcmp (Buffer.compare) of two equal 512 MiB buffers per thread — a pure streaming read
// of 1 GiB per thread — on 1 thread (once, best of 3) and on `--threads` worker threads at once. The
// machine's bandwidth drifts by tens of percent over seconds on a shared VM, so the threads' figure is
// measured again between segments of the decoding (`--segments`, best of 2 each time) and each
// segment's tokens/s is set against the larger of the measurements just before and just after it.
// The overall fraction: all tokens ÷ all decoding time, against the largest of every measurement.
//
// --state-dtype float32: the recurrent state's S in float32 (half its bytes; default float64).
//
//   node dist/bench/decode.js --dir DIR [--tokens 16] [--segments 4] [--threads 2] [--precisions f32,bf16] [--state-dtype float64|float32] [--split] [--out bench/results/decode-1p3b.json]
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { RetNetLM, type Precision } from '../src/index.js';
import { OP } from '../src/runtime/step-helper.js';
import { readers } from './bandwidth.js';
import { benchArgs, numArg } from './args.js';
import { hugePages } from '../src/wasm/huge-pages.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({
  options: {
    dir: { type: 'string' }, tokens: { type: 'string', default: '16' }, threads: { type: 'string', default: '2' }, segments: { type: 'string', default: '4' },
    'state-dtype': { type: 'string', default: 'float64' },
    precisions: { type: 'string', default: 'f32,bf16' }, split: { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'bench/results/decode-1p3b.json') },
  },
  required: ['dir'],
});

const dir = values.dir, nTok = numArg('tokens', values.tokens), threads = numArg('threads', values.threads, { max: 256 }), nSeg = numArg('segments', values.segments);
const precisions = values.precisions.split(',') as Precision[];
if (!precisions.every((p) => p === 'f32' || p === 'bf16')) { console.error('--precisions: f32, bf16 or both'); process.exit(2); }
if (!(Number.isInteger(nSeg) && nSeg >= 1 && nSeg <= nTok)) { console.error('--segments: an integer in [1, --tokens]'); process.exit(2); }
const one = await readers(1);
const bw1 = await one.measure(3);
await one.close();
const team = await readers(threads);
const bwStart = await team.measure(3);
console.log(`read bandwidth: ${bw1.toFixed(1)} GB/s on 1 thread, ${bwStart.toFixed(1)} GB/s on ${threads}`);

const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const fileBytes = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
const embedBytes = cfg.vocab_size * cfg.hidden_size * 2; // BF16
const perToken = fileBytes - (cfg.tie_word_embeddings ? 0 : embedBytes);
const t0 = performance.now();
const lm = await RetNetLM.loadFolder(dir);
const loadSeconds = (performance.now() - t0) / 1000;
const prompt = Int32Array.from({ length: 8 }, (_, i) => (i === 0 ? 1 : 100 + 37 * i));
const bound1 = bw1 * 1e9 / perToken;
// State bytes a step reads and writes (S [H, dk, dv] and z [H, dk] per layer, float64): not in the bound
// (which counts weights only), stated beside it.
const dk = (cfg.hidden_size * (cfg.expand_k ?? 1)) / cfg.num_heads, dv = (cfg.hidden_size * (cfg.expand_v ?? 2)) / cfg.num_heads;
const stateDtype = values['state-dtype'];
if (stateDtype !== 'float64' && stateDtype !== 'float32') { console.error('--state-dtype: float64 or float32'); process.exit(2); }
const stateBytes = cfg.num_hidden_layers * cfg.num_heads * (dk * dv * (stateDtype === 'float32' ? 4 : 8) + dk * 8);
const runs: Record<string, unknown>[] = [];
for (const precision of precisions) {
  // generate's loop without a tokenizer (the benchmark shape has none): prefill, then greedy steps of the
  // recurrent 'wasm' step — what generate runs per token. The first step packs the stepper's copy of the weights.
  const tw = performance.now();
  lm.step(prompt[0], undefined, { backend: 'wasm', precision, stateDtype });
  const warmSeconds = (performance.now() - tw) / 1000;
  const tp = performance.now();
  let { logprobs, state } = lm.prefill(prompt, 256, 'wasm', precision, stateDtype);
  const td = performance.now();
  const ids: number[] = [];
  // segments of the decoding, each between two bandwidth measurements (one discarded first: the first
  // after the stepper has packed its weights reads low)
  await team.measure(1);
  const bws = [await team.measure(2)], segs: { tokens: number; seconds: number; tokensPerSecond: number; bandwidthGBps: number; fractionOfBound: number }[] = [];
  let decodeSeconds = 0;
  for (let sgi = 0; sgi < nSeg; sgi++) {
    const n = Math.floor((nTok * (sgi + 1)) / nSeg) - Math.floor((nTok * sgi) / nSeg);
    const ts = performance.now();
    for (let i = 0; i < n; i++) {
      let id = 0;
      for (let v = 1; v < logprobs.length; v++) if (logprobs[v] > logprobs[id]) id = v;
      ids.push(id);
      ({ logprobs, state } = lm.step(id, state, { backend: 'wasm', precision }));
    }
    const sec = (performance.now() - ts) / 1000;
    decodeSeconds += sec;
    bws.push(await team.measure(2));
    const bw = Math.max(bws[sgi]!, bws[sgi + 1]!), tps = n / sec;
    segs.push({ tokens: n, seconds: +sec.toFixed(3), tokensPerSecond: +tps.toFixed(3), bandwidthGBps: +bw.toFixed(2), fractionOfBound: +(tps / (bw * 1e9 / perToken)).toFixed(3) });
  }
  const tps = nTok / decodeSeconds;
  const bwMax = Math.max(...bws), boundN = bwMax * 1e9 / perToken;
  const fr = segs.map((g) => g.fractionOfBound).sort((a, b) => a - b);
  const engine = (lm.model as unknown as { stepper?: { engine: string } }).stepper?.engine ?? '?';
  runs.push({
    precision, engine, warmSeconds, prefillSeconds: (td - tp) / 1000, decodeSeconds: +decodeSeconds.toFixed(3), decodedTokens: nTok,
    tokensPerSecond: +tps.toFixed(3),
    bandwidthGBps: { measurements: bws.map((b) => +b.toFixed(2)), max: +bwMax.toFixed(2) },
    boundTokensPerSecond: +boundN.toFixed(3),
    fractionOfBound: { oneThread: +(tps / bound1).toFixed(3), threads: +(tps / boundN).toFixed(3) },
    segments: segs,
    greedyIds: ids,
  });
  console.log(`decode ${precision}, ${stateDtype} state (${engine}): ${nTok} tokens in ${decodeSeconds.toFixed(2)} s = ${tps.toFixed(2)} tok/s; bound ${boundN.toFixed(2)} tok/s at ${bwMax.toFixed(1)} GB/s (the most of ${bws.map((b) => b.toFixed(1)).join(', ')}) ÷ ${(perToken / 1e9).toFixed(2)} GB per token: ${(100 * tps / boundN).toFixed(0)}%; by segment ${fr.map((f) => (100 * f).toFixed(0) + '%').join(', ')} (sorted); one thread's bound ${bound1.toFixed(2)}`);
}
await team.close();
// --split: where a step's time goes — the stepper's work on this thread wrapped in timers, 8 steps each:
// its helper team's rounds (a round of products or of retention heads, the helpers' shares included)
// and, without helpers, its kernel calls (products: gemm/gemmBf16; retention: step/stepS32); the rest is the
// step's remainder (norms, rotary, gates, dispatch) and the head.
const split: Record<string, Record<string, number>> = {};
if (values.split) {
  for (const precision of precisions) {
    let r = lm.step(prompt[0], undefined, { backend: 'wasm', precision, stateDtype });
    const stepper = (lm.model as unknown as { stepper: { K: Record<string, unknown>; team: { run: (K: unknown, calls: number[][] | ((t: number) => number[][])) => void } | null } }).stepper;
    const K = stepper.K, acc: Record<string, number> = {};
    const orig = { ...K };
    for (const [k, f] of Object.entries(orig)) {
      if (typeof f !== 'function') continue;
      K[k] = (...a: unknown[]) => {
        if (inRound) return (f as (...x: unknown[]) => unknown)(...a); // this thread's share of a team round: counted there
        const t = performance.now(); const v = (f as (...x: unknown[]) => unknown)(...a); acc[k] = (acc[k] ?? 0) + performance.now() - t; return v;
      };
    }
    const team = stepper.team, run0 = team?.run;
    let inRound = false;
    if (team && run0) {
      team.run = (k, calls) => {
        const t = performance.now();
        inRound = true;
        try { run0.call(team, k, calls); } finally { inRound = false; }
        const op = (typeof calls === 'function' ? calls(0) : calls)[0]?.[0];
        const what = op === OP.step || op === OP.stepS32 ? 'step' : 'gemm';
        acc[what] = (acc[what] ?? 0) + performance.now() - t;
      };
    }
    const n = 8, t0 = performance.now();
    for (let i = 0; i < n; i++) r = lm.step(100 + i, r.state, { backend: 'wasm', precision });
    const total = (performance.now() - t0) / n;
    Object.assign(K, orig);
    if (team && run0) team.run = run0;
    const products = ((acc.gemm ?? 0) + (acc.gemmBf16 ?? 0)) / n, retention = ((acc.step ?? 0) + (acc.stepS32 ?? 0)) / n;
    split[precision] = { msPerToken: +total.toFixed(2), products: +products.toFixed(2), retention: +retention.toFixed(2), rest: +(total - products - retention).toFixed(2) };
    console.log(`split ${precision}: ${total.toFixed(1)} ms per token — products ${products.toFixed(1)}, retention step ${retention.toFixed(1)}, the rest (norms, rotary, gates, head, dispatch) ${(total - products - retention).toFixed(1)}`);
  }
}
const out = {
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, pages: hugePages() },
  params: { dir, layers: cfg.num_hidden_layers, tokens: nTok, segments: nSeg, promptTokens: prompt.length, threads, stateDtype },
  bandwidthGBps: { oneThread: +bw1.toFixed(2), threadsAtStart: +bwStart.toFixed(2) },
  bytesPerToken: perToken, stateBytesPerToken: stateBytes,
  boundTokensPerSecondOneThread: +bound1.toFixed(3),
  loadSeconds, runs, ...(values.split ? { split } : {}),
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
};
await lm.close();
mkdirSync(dirname(values.out), { recursive: true });
writeFileSync(values.out, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${values.out}`);
