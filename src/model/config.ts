// Model configuration: the seed's constructor arguments in TypeScript casing,
// with validation and the derived widths.
import { ACTIVATIONS, type ActName } from '../reference/ops.js';
import { errors } from '../errors.js';
import { ARCH, ARCH_NAMES, SEED_NORM_EPS, type ArchName, type ArchTable } from './arch.js';

/** The architecture of a {@link RetNet}, in the seed's vocabulary. */
export interface RetNetConfig {
  /** number of layers (retention + MLP blocks) */
  numLayer: number;
  /** retention heads H */
  numHeads: number;
  /** model width d */
  dimModel: number;
  /** dv = dimModel·valueFactor/numHeads */
  valueFactor: number;
  /** activation of the retention gate */
  msrGateFn: ActName;
  /** activation inside the MLP */
  mlpGateFn: ActName;
  /** hidden width = mlpMult·dimModel unless mlpHidden is given */
  mlpMult: number;
  /** explicit hidden widths of the MLP (one Linear more than entries) */
  mlpHidden?: number[];
  /** biases on the MLP's Linears */
  mlpBias: boolean;
  /** accepted for compatibility with the seed; this is an inference runtime, so it has no effect */
  dropout: number;
  /** architecture family (src/model/arch.ts; default 'seed') */
  arch?: ArchName;
  /** eps of the block norms and the group norm (default 1e-5, the seed's LayerNorm) */
  normEps?: number;
  /** total query/key width H·dk (default dimModel; fla: dimModel·expand_k) */
  keyDim?: number;
}

/** Every key of a RetNetConfig (RetNet.init refuses others: a misspelt key is an error, not ignored). */
export const CONFIG_KEYS: readonly string[] = ['numLayer', 'numHeads', 'dimModel', 'valueFactor', 'msrGateFn', 'mlpGateFn', 'mlpMult',
  'mlpHidden', 'mlpBias', 'dropout', 'arch', 'normEps', 'keyDim'];

/** The seed's default model: 6 layers, 8 heads, d = 512, value factor 2, gelu, MLP 4·d. */
export const DEFAULT_CONFIG: RetNetConfig = {
  numLayer: 6, numHeads: 8, dimModel: 512, valueFactor: 2,
  msrGateFn: 'gelu', mlpGateFn: 'gelu', mlpMult: 4, mlpBias: true, dropout: 0.1,
};

/** Widths derived from a config. */
export interface Dims {
  /** model width */
  d: number;
  /** heads */
  H: number;
  /** key width per head */
  dk: number;
  /** value width per head */
  dv: number;
  /** MLP hidden widths (swiglu: the intermediate width I) */
  hidden: number[];
  /** total query/key width H·dk */
  dqk: number;
  /** the family's table (src/model/arch.ts) and its norm eps: how each piece of the block is computed */
  arch: ArchTable;
  /** the norms' eps */
  normEps: number;
}

/** The architecture table of a config. */
export const archOf = (c: Pick<RetNetConfig, 'arch'>): ArchTable => ARCH[c.arch ?? 'seed'];
/** The norm eps of a config. */
export const normEpsOf = (c: Pick<RetNetConfig, 'normEps'>): number => c.normEps ?? SEED_NORM_EPS;

const posInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;

export function resolveConfig(partial: Partial<RetNetConfig>): RetNetConfig {
  const c: RetNetConfig = { ...DEFAULT_CONFIG, ...partial };
  const bad = (name: string, want: string) => { throw errors.config(name, want, (c as unknown as Record<string, unknown>)[name]); };
  if (!Number.isInteger(c.numLayer) || c.numLayer < 0) bad('numLayer', 'a non-negative integer');
  if (!posInt(c.numHeads)) bad('numHeads', 'a positive integer');
  if (!posInt(c.dimModel)) bad('dimModel', 'a positive integer');
  if (!(typeof c.valueFactor === 'number' && c.valueFactor > 0 && Number.isFinite(c.valueFactor))) bad('valueFactor', 'a positive finite number');
  if (!ACTIVATIONS.includes(c.msrGateFn)) bad('msrGateFn', `one of ${ACTIVATIONS.join(', ')}`);
  if (!ACTIVATIONS.includes(c.mlpGateFn)) bad('mlpGateFn', `one of ${ACTIVATIONS.join(', ')}`);
  if (!(typeof c.mlpMult === 'number' && c.mlpMult > 0 && Number.isFinite(c.mlpMult))) bad('mlpMult', 'a positive finite number');
  if (c.mlpHidden !== undefined && !(Array.isArray(c.mlpHidden) && c.mlpHidden.every(posInt))) bad('mlpHidden', 'an array of positive integers');
  if (typeof c.mlpBias !== 'boolean') bad('mlpBias', 'a boolean');
  if (c.arch !== undefined && !ARCH_NAMES.includes(c.arch)) bad('arch', `one of ${ARCH_NAMES.join(', ')}`);
  if (c.normEps !== undefined && !(typeof c.normEps === 'number' && c.normEps > 0 && Number.isFinite(c.normEps))) bad('normEps', 'a positive finite number');
  if (c.keyDim !== undefined && !posInt(c.keyDim)) bad('keyDim', 'a positive integer');
  // recorded, not used (inference runs no dropout), but a nonsense value is not stored (before: 'lots' was)
  if (!(typeof c.dropout === 'number' && c.dropout >= 0 && c.dropout < 1)) bad('dropout', 'a number in [0, 1) (recorded only: inference runs no dropout)');
  // a SwiGLU MLP has no biases: the config says so (before: mlpBias true was kept, and the weights had none)
  if (archOf(c).mlp === 'swiglu') {
    if (partial.mlpBias === true) {
      bad('mlpBias', `false for the ${archOf(c).name} family (its SwiGLU MLP has no biases; a config spread from DEFAULT_CONFIG, whose mlpBias is the seed family's true, needs mlpBias: false)`);
    }
    c.mlpBias = false;
  }
  dimsOf(c); // width checks
  return c;
}

export function dimsOf(c: RetNetConfig): Dims {
  const d = c.dimModel, H = c.numHeads;
  const dqk = c.keyDim ?? d;
  const qkName = c.keyDim === undefined ? 'dimModel' : 'keyDim';
  if (dqk % H !== 0) throw errors.config(qkName, `divisible by numHeads=${H}`, dqk);
  const dk = dqk / H;
  if (dk % 2 !== 0) throw errors.config(qkName, `such that ${qkName}/numHeads is even (rotary pairs); ${qkName}/numHeads = ${dk}`, dqk);
  const dvTotal = d * c.valueFactor;
  if (!Number.isInteger(dvTotal) || dvTotal % H !== 0) throw errors.config('valueFactor', `such that dimModel·valueFactor is divisible by numHeads=${H}`, c.valueFactor);
  const hidden = c.mlpHidden ?? [Math.round(c.mlpMult * d)];
  if (c.mlpHidden === undefined && hidden[0]! < 1) throw errors.config('mlpMult', `such that round(mlpMult·dimModel) ≥ 1 (the MLP's width; dimModel = ${d})`, c.mlpMult);
  return { d, H, dk, dv: dvTotal / H, hidden, dqk, arch: archOf(c), normEps: normEpsOf(c) };
}
