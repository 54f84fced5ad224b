// What the barriers of a decoding step cost: the recurrent step's one-row products alone — at bf16 on
// oneDNN (its column blocks), at `--precision f32` on the WASM one-row kernel over the BF16 panels (the
// step's guided column blocks) — with the stepper's helper team, 2 threads, every weight of every layer
// read once per pass, run two ways in turn and set against the 2-thread read bandwidth measured in the
// same run:
//   per product  one team round per product, as the step runs them (4 barriers per layer; the step
//                has a fifth, the retention heads)
//   one round    every block of every layer in one round, claimed by the threads with no barrier
//                between products (not a valid step — each product needs the one before — but the
//                same calls and bytes: the difference is what the barriers cost)
// Bias, activations, norms, retention and the head are left out; the products read the same rows each
// pass (their outputs are not inputs).
//
//   npm run build && node dist/bench/step-products.js --dir DIR [--precision bf16|f32] [--passes 8] [--reps 3]
//   (DIR: a model folder, e.g. the fla 1.3B shape from bench/make-fla-shape.mjs; writes
//   bench/results/step-products.json, or step-products-f32.json at f32)
import { cpus, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RetNetLM } from '../src/index.js';
import { WasmStepper } from '../src/runtime/stepper.js';
import type { Call } from '../src/runtime/step-helper.js';
import type { Packed } from '../src/runtime/pack.js';
import type { Arena } from '../src/runtime/arena.js';
import { guidedColumnBlocks, type BlockedDnnlKernels } from '../src/runtime/dnnl-kernels.js';
import { columnCalls } from '../src/runtime/step-helper.js';
import type { RuntimeKernels } from '../src/runtime/kernels.js';
import { dnnlMissing } from '../src/runtime/dnnl.js';
import { readers } from './bandwidth.js';
import { benchArgs, numArg } from './args.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const { values } = benchArgs({ options: { dir: { type: 'string' }, passes: { type: 'string', default: '8' }, reps: { type: 'string', default: '3' }, precision: { type: 'string', default: 'bf16' } }, required: ['dir'] });
const precision = values.precision as 'f32' | 'bf16';
if (precision !== 'f32' && precision !== 'bf16') { console.error('--precision: f32 or bf16'); process.exit(2); }
const missing = precision === 'bf16' ? dnnlMissing() : null;
if (missing) { console.error(`step-products: ${missing}`); process.exit(2); }
const passes = numArg('passes', values.passes), reps = numArg('reps', values.reps);

const lm = await RetNetLM.loadFolder(values.dir);
const stepper = new WasmStepper((lm.model as unknown as { spec: ConstructorParameters<typeof WasmStepper>[0] }).spec, { precision, threads: 2 });
const { A, p, team, blocked, base } = stepper as unknown as { A: Arena; p: Packed; team: { run(K: unknown, calls: Call[] | ((t: number) => Call[])): void; size: number } | null; blocked: BlockedDnnlKernels | null; base: RuntimeKernels };
if (!team || (precision === 'bf16' && !blocked)) { console.error(`step-products: the stepper has no helper team${precision === 'bf16' ? ' on oneDNN' : ''} here`); process.exit(2); }
// f32: the WASM one-row products on the BF16 panels, the step's guided column blocks; every call carries
// thread 0's scratch (the one-row BF16 kernel uses none)
const T = team.size, gs = A.persistent(Math.max(64, base.gemmScratchBytes()), 'bench'), wide = p.bf16Scratch ? A.persistent(p.bf16Scratch, 'bench') : 0;
const products = (x: number, K: number, W: number, bf16: boolean, N: number, y: number, acc: boolean): Call[] => blocked
  ? blocked.calls(x, 1, K, K, W, N, 0, y, N, 0, acc)
  : columnCalls(guidedColumnBlocks(N, T), bf16, x, 1, K, K, W, N, 0, y, N, 0, acc, gs, wide);
const engineK = blocked ? blocked.block : base;
const { d, Wp, H, dv, maxHidden } = p.dims;
const buf = (n: number) => { const o = A.persistent(n * 4, 'bench'); A.f32(o, n).fill(0.01); return o; };
const h = buf(d), P = buf(Wp), O = buf(H * dv), X = buf(d), hid = buf(maxHidden);
let bytes = 0;
const perLayer: Call[][][] = p.layers.map((Ly) => {
  const [gu, down] = Ly.mlp;
  const I = gu!.outDim / 2;
  bytes += (Wp * d + d * H * dv + gu!.outDim * d + down!.outDim * I) * 2;
  return [
    products(h, d, Ly.qkvgW, Ly.qkvgBf16, Wp, P, false),
    products(O, H * dv, Ly.oW, Ly.oBf16, d, X, true),
    products(h, d, gu!.W, gu!.bf16, gu!.outDim, hid, false),
    products(hid, I, down!.W, down!.bf16, down!.outDim, X, true),
  ];
});
const all = perLayer.flat(2);
const modes: Record<string, () => void> = {
  perProduct: () => { for (const layer of perLayer) for (const calls of layer) team.run(engineK, calls); },
  oneRound: () => { for (let i = 0; i < all.length; i += 512) team.run(engineK, all.slice(i, i + 512)); },
};
for (const f of Object.values(modes)) f(); // warm: primitives made, pages touched
const bw = await readers(2);
const rows: Record<string, number>[] = [];
for (let r = 0; r < reps; r++) {
  const row: Record<string, number> = { memcmpGBps: +(await bw.measure(2)).toFixed(2) };
  for (const [k, f] of Object.entries(modes)) {
    const t0 = performance.now();
    for (let i = 0; i < passes; i++) f();
    const s = (performance.now() - t0) / 1000;
    row[`${k}GBps`] = +((bytes * passes) / s / 1e9).toFixed(2);
    row[`${k}MsPerPass`] = +((s / passes) * 1000).toFixed(2);
  }
  rows.push(row);
  console.log(`rep ${r + 1}: per product ${row.perProductGBps} GB/s (${row.perProductMsPerPass} ms per pass), one round ${row.oneRoundGBps} GB/s; memcmp on 2 threads ${row.memcmpGBps} GB/s`);
}
await bw.close();
stepper.close();
await lm.close();
const OUT = join(ROOT, precision === 'bf16' ? 'bench/results/step-products.json' : 'bench/results/step-products-f32.json');
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify({
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version },
  dir: values.dir, precision, engine: stepper.engine, blocksPerProduct: perLayer[0]!.map((c) => c.length), bytesPerPass: bytes, callsPerPass: all.length,
  roundsPerPass: { perProduct: perLayer.length * 4, oneRound: Math.ceil(all.length / 512) }, passes, reps: rows,
}, null, 2) + '\n');
console.log(`wrote ${OUT}`);
