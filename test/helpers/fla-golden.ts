// The fla golden fixtures (test/fixtures/fla, made by tools/fla/make_fixtures.py): each one's folder and
// its golden logits (float64) with the token ids they were computed for.
import { join } from 'node:path';
import { readSafetensors } from '../../src/safetensors.js';
import { FIXTURES } from '../helpers.js';

export const FLA_MODELS = ['f32', 'bf16-sharded', 'legacy-mlp', 'tied', 'gqa', 'small-o'] as const;

/** The model folder of fixture `name`. */
export const flaDir = (name: string): string => join(FIXTURES, 'fla', name);

/** Its golden logits [B, T, V] (float64), the B sequences of ids, and max|logit| (the scale of errors). */
export function flaGolden(name: string): { seqs: Int32Array[]; want: Float64Array; T: number; V: number; scale: number } {
  const g = readSafetensors(join(flaDir(name), 'golden.safetensors')).tensors;
  const ids = g.get('input_ids')!, logits = g.get('logits')!;
  const [B, T] = ids.shape, V = logits.shape[2];
  const seqs = Array.from({ length: B }, (_, b) => Int32Array.from((ids.data as Int32Array).subarray(b * T, (b + 1) * T)));
  const want = logits.data as Float64Array;
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  return { seqs, want, T, V, scale };
}
