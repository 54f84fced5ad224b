// Rotary: SIMD = scalar = ops.rotary, tables cos/sin [rows, dk/2] computed in
// float64 from absolute positions and rounded to float32 once.
import { test } from 'uvu';
import { rotary, defaultAngle } from '../src/reference/ops.js';
import { rotaryTables } from '../src/wasm/tables.js';
import { VARIANTS, kernels, arena, rng, putF32, getF32, unstride, expectClose, elementwiseTol } from './helpers/kernels.js';

for (const variant of VARIANTS) {
  for (const tw of ['wasmsimd', 'scalar'] as const) {
    test(`f32_rotary__${tw} (${variant}) = reference`, () => {
      const k = kernels(variant);
      const rot = tw === 'wasmsimd' ? k.f32_rotary__wasmsimd : k.f32_rotary__scalar;
      const r = rng(3);
      for (const rows of [1, 3, 5]) for (const heads of [1, 3]) for (const dk of [2, 4, 6, 64]) {
        const mark = arena.mark();
        const width = heads * dk, ld = width + r.int(2) * 3;
        const pos0 = r.int(2) ? r.int(100000) : 0;
        const angle = defaultAngle(dk);
        const { cos: C, sin: S } = rotaryTables(angle, dk, pos0, rows);
        const X = r.uniform(rows * ld, -2, 2);
        const xp = putF32(X), cp = putF32(C), sp = putF32(S);
        rot(rows, heads, dk, xp, ld, cp, sp);
        const want = unstride(X, rows, width, ld);
        rotary(want, rows, heads, dk, angle, pos0);
        const got = unstride(getF32(xp, rows * ld), rows, width, ld);
        expectClose(`rotary ${tw} ${variant}`, got, want, elementwiseTol(want), `rows=${rows} heads=${heads} dk=${dk} ld=${ld} pos0=${pos0}`);
        // padding columns untouched
        const all = getF32(xp, rows * ld);
        for (let i = 0; i < rows; i++) for (let c = width; c < ld; c++) if (all[i * ld + c] !== X[i * ld + c]) throw new Error(`rotary wrote padding at row ${i} col ${c}`);
        arena.reset(mark);
      }
    });
  }
}

test.run();
