// Shared test helpers: fixture paths, loading cases, and comparison messages.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, type StTensor } from '../src/safetensors.js';
import { RetNet, type ActName } from '../src/index.js';
import { Tensor, maxAbs, maxAbsDiff } from '../src/tensor.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (tests run from dist/test). */
export const ROOT = join(here, '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');

export const fixturePath = (name: string) => join(FIXTURES, `${name}.safetensors`);
export const casesPath = (name: string) => join(FIXTURES, `${name}.cases.safetensors`);

export interface Case { output: string; normalize_attn: boolean; normalize_retn: boolean; retention: string; max_abs: number }

export function toTensor(t: StTensor | undefined, what = 'tensor'): Tensor {
  if (!t) throw new Error(`fixture is missing ${what}`);
  if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) throw new Error(`${what} is not float`);
  return new Tensor(t.data, t.shape);
}

export function loadCases(name: string) {
  const { tensors, metadata } = readSafetensors(casesPath(name));
  return {
    tensors,
    get: (key: string) => toTensor(tensors.get(key), key),
    cases: JSON.parse(metadata.cases) as Case[],
    config: JSON.parse(metadata.config) as Record<string, unknown>,
  };
}

/** Load a fixture's model with the activations its cases file names. */
export async function loadFixtureModel(name: string): Promise<RetNet> {
  const { config } = loadCases(name);
  return RetNet.load(fixturePath(name), { msrGateFn: config.msr_gate_fn as ActName, mlpGateFn: config.mlp_gate_fn as ActName });
}

export const FIXTURE_NAMES = ['retnet-tiny', 'retnet-small', 'retnet-seedlike', 'retnet-long'] as const;

/** Assert rel = max|got − want| / max|want| ≤ tol, with a message naming what and where. */
export function expectRel(got: Tensor | ArrayLike<number>, want: Tensor | ArrayLike<number>, tol: number, what: string): number {
  const g = got instanceof Tensor ? got.data : got, w = want instanceof Tensor ? want.data : want;
  if (g.length !== w.length) throw new Error(`${what}: ${g.length} elements, expected ${w.length}`);
  const scale = maxAbs(w);
  const diff = maxAbsDiff(g, w);
  const rel = scale === 0 ? diff : diff / scale;
  if (!(rel <= tol)) {
    let worst = 0;
    for (let i = 0; i < g.length; i++) if (!(Math.abs(g[i] - w[i]) <= Math.abs(g[worst] - w[worst]))) worst = i;
    throw new Error(`${what}: max|Δ|/max|ref| = ${rel.toExponential(3)} > ${tol.toExponential(1)} (worst at flat index ${worst}: got ${g[worst]}, want ${w[worst]}; n=${g.length})`);
  }
  return rel;
}

/** Rethrow-friendly check that `fn` throws an error whose message matches. */
export async function expectError(fn: () => unknown, pattern: RegExp, what: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const err = e as Error;
    if (!pattern.test(err.message)) throw new Error(`${what}: error message ${JSON.stringify(err.message)} does not match ${pattern}`);
    return err;
  }
  throw new Error(`${what}: expected an error matching ${pattern}, but nothing was thrown`);
}

/** The four normalisation settings every form-agreement test runs. */
export const NORM_FLAGS = [
  { normalizeAttn: false, normalizeRetn: false },
  { normalizeAttn: false, normalizeRetn: true },
  { normalizeAttn: true, normalizeRetn: false },
  { normalizeAttn: true, normalizeRetn: true },
] as const;

/** The small random model the js, tfjs and WebGPU form-agreement tests share (3 heads, d = 12, silu gate, gelu MLP). */
export const formsModel = (): RetNet => RetNet.init({ numLayer: 2, numHeads: 3, dimModel: 12, valueFactor: 2, msrGateFn: 'silu', mlpGateFn: 'gelu', mlpMult: 2, seed: 5 });
