// oneDNN below AVX-512 (a CPU like the AMD EPYCs without it), made here by holding oneDNN to AVX2 in a child
// process (DNNL_MAX_CPU_ISA=AVX2, which oneDNN reads when it loads): oneDNN 2.6 has no bfloat16 matmul there
// and runs float32 ones on gemm:jit rather than brgemm. Precision bf16 on kernels 'dnnl' must say so
// (E_ENGINE), 'auto' must take the rounding fallback, and the dnnl engine at f32 must keep BF16 weights =
// the same weights widened to float32, bit for bit (test/fla-bf16.test.ts's promise on every engine).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dnnlBf16Missing, dnnlMissing, loadDnnl } from '../src/runtime/dnnl.js';
import { canRun } from './helpers/skip.js';

const child = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'dnnl-isa-child.js');

const tAvx2 = "oneDNN held to AVX2: kernels 'dnnl' at bf16 is E_ENGINE saying oneDNN has no bfloat16 matmul here, 'auto' runs the fallback and says why, and the dnnl engine at f32 keeps BF16 = widened float32 bit for bit";
test(tAvx2, () => {
  if (!canRun(tAvx2, dnnlMissing())) return;
  const r = spawnSync(process.execPath, [child], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, DNNL_MAX_CPU_ISA: 'AVX2' } });
  assert.is(r.status, 0, `child exited ${r.status}: ${r.stderr}`);
  const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    label: string; hasBf16Hardware: boolean; bf16Missing: string | null;
    dnnlBf16: { ok: boolean; code?: string; message?: string };
    autoBf16: { engine: string; note?: string }[];
    f32Info: { engine: string; dispatch?: string }[]; f32BitDiffs: string[];
  };
  assert.not.match(o.label, /avx512/, `the child's oneDNN was held below AVX-512: ${o.label}`);
  assert.is(o.hasBf16Hardware, false);
  assert.ok(o.bf16Missing && o.bf16Missing.includes('no bfloat16 matmul'), String(o.bf16Missing));
  assert.is(o.dnnlBf16.ok, false, "kernels 'dnnl' at bf16 ran where oneDNN has no bf16 matmul");
  assert.is(o.dnnlBf16.code, 'E_ENGINE');
  assert.match(o.dnnlBf16.message!, /kernels 'dnnl' at precision 'bf16': .*no bfloat16 matmul.*kernels 'auto'/);
  assert.not.match(o.dnnlBf16.message!, /primitive_desc_create|status 3/, 'the reason, not oneDNN\'s status');
  assert.ok(o.autoBf16.length > 0 && o.autoBf16.every((i) => !/onednn/i.test(i.engine)), JSON.stringify(o.autoBf16));
  assert.ok(o.autoBf16.some((i) => typeof i.note === 'string' && /bfloat16/.test(i.note)), `the fallback says why: ${JSON.stringify(o.autoBf16)}`);
  assert.ok(o.f32Info.some((i) => /onednn/i.test(i.engine)), `f32 ran on oneDNN: ${JSON.stringify(o.f32Info)}`);
  assert.equal(o.f32BitDiffs, [], `BF16 vs widened float32 on the dnnl engine at f32: ${o.f32BitDiffs.join('; ')}`);
  console.log(`  child: ${o.label}; f32: ${o.f32Info.map((i) => i.dispatch ?? i.engine).join(', ')}; bf16 'auto': ${o.autoBf16.map((i) => i.engine).join(', ')}`);
});

const tHere = 'where oneDNN reports bfloat16 hardware, it has a bfloat16 matmul (the probe agrees with the ISA)';
test(tHere, () => {
  if (!canRun(tHere, dnnlMissing())) return;
  const lib = loadDnnl(), no = dnnlBf16Missing();
  if (lib.hasBf16Hardware) assert.is(no, null);
  console.log(`  ${lib.label}: bf16 hardware ${lib.hasBf16Hardware}, bf16 matmul ${no === null ? 'yes' : `no (${no})`}`);
});

test.run();
