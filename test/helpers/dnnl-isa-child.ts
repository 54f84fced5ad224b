// Run by test/dnnl-isa.test.ts in a child process whose environment holds oneDNN to a smaller ISA
// (DNNL_MAX_CPU_ISA, read when oneDNN loads): what the library, the engine choice at bf16 and the dnnl
// engine at f32 do there. Prints one JSON object on stdout.
import { join } from 'node:path';
import { RetNet, RetNetLM, Tensor } from '../../src/index.js';
import { dnnlBf16Missing, loadDnnl } from '../../src/runtime/dnnl.js';
import { FIXTURES } from '../helpers.js';
import { widened } from './widen.js';

const out: Record<string, unknown> = {};
const lib = loadDnnl();
out.label = lib.label;
out.hasBf16Hardware = lib.hasBf16Hardware;
out.bf16Missing = dnnlBf16Missing();

// precision bf16: kernels 'dnnl' refused with the reason; kernels 'auto' runs (the fallback) and says why
const model = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 32, seed: 0 });
const x = Tensor.randn([1, 8, 32], { seed: 1 });
try {
  await model.forward(x, { precision: 'bf16', kernels: 'dnnl' });
  out.dnnlBf16 = { ok: true };
} catch (e) {
  out.dnnlBf16 = { ok: false, code: (e as { code?: string }).code, message: (e as Error).message };
}
await model.forward(x, { precision: 'bf16', kernels: 'auto' });
out.autoBf16 = (await model.backendInfo()).map((i) => ({ engine: i.engine, note: i.note }));
await model.close();

// the dnnl engine at f32: BF16 weights = the same model widened to float32, bit for bit
const lm = await RetNetLM.loadFolder(join(FIXTURES, 'fla', 'bf16-sharded'), { bf16: 'resident' });
const ref = widened(lm);
const diffs: string[] = [];
for (const [n, chunkSize] of [[5, 4], [37, 4], [300, 64]] as const) {
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 37 + n * 11 + ((i * i) % 13)) % 100);
  const opts = { backend: 'wasm' as const, kernels: 'dnnl' as const, chunkSize };
  const a = (await lm.logits(ids, opts)).logits, b = (await ref.logits(ids, opts)).logits;
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (!Object.is(a[i], b[i])) first = i;
  if (a.length !== b.length || first >= 0) diffs.push(`n=${n}: ${a.length} vs ${b.length} values, first difference at ${first}`);
}
out.f32Info = (await lm.model.backendInfo()).map((i) => ({ engine: i.engine, dispatch: i.dispatch }));
out.f32BitDiffs = diffs;
await lm.close(); await ref.close();
process.stdout.write(JSON.stringify(out) + '\n');
