// Model weights, their seeded initialisation, and the mapping to and from the
// seed's PyTorch state_dict names:
//   layers.{l}.0.{q,k,v,g,o}_proj.{weight,bias}, .pre_norm.*, .norm.*, .angle [1,dk], .decay [H]
//   layers.{l}.1.net.0.{weight,bias}           the MLP's LayerNorm
//   layers.{l}.1.net.{i}.1.{weight,bias}       its Linears, i = 1, 2, …
import { defaultAngle, defaultDecay, type ActName, ACTIVATIONS } from '../reference/ops.js';
import { errors, listNames } from '../errors.js';
import { Rng } from '../random.js';
import type { StData, StTensor } from '../safetensors.js';
import { dimsOf, resolveConfig, type Dims, type RetNetConfig } from './config.js';
import { ARCH, type ArchName, type ArchTable } from './arch.js';
import { checkKnownKeys } from '../options.js';
import { checkDecay, checkOverflowBound, checkWeightValues, isChecked, layerNormBound, markChecked } from './check.js';
import { floatsOf, type Bf16Matrix } from './bf16.js';

export type WArray = Float32Array | Float64Array;

/** A Linear's weight: float32/float64, or BF16 kept as stored (src/model/bf16.ts; widened exactly on use). */
export type LinearW = WArray | Bf16Matrix;
export interface Linear { W: LinearW /* [out, in] */; b: WArray | null /* [out] */; inDim: number; outDim: number }
export interface LayerNormW { weight: WArray /* [n] */; bias: WArray /* [n] */ }
export interface MSRWeights {
  preNorm: LayerNormW;            // [d]
  q: Linear; k: Linear;           // [d, d]
  v: Linear; g: Linear;           // [H·dv, d]
  o: Linear;                      // [d, H·dv]
  norm: LayerNormW;               // [dv], shared by all heads
  angle: WArray;                  // [dk], each frequency twice
  decay: WArray;                  // [H], γ_h = exp(decay[h])
}
export interface MLPWeights { norm: LayerNormW /* [d] */; linears: Linear[] }
export interface LayerWeights { msr: MSRWeights; mlp: MLPWeights }

// ---------------------------------------------------------------- init

function initLinear(rng: Rng, inDim: number, outDim: number, bias: boolean): Linear {
  // PyTorch's default: U(−1/sqrt(in), 1/sqrt(in)) for weight and bias.
  const bound = 1 / Math.sqrt(inDim);
  const W = new Float32Array(outDim * inDim);
  for (let i = 0; i < W.length; i++) W[i] = (2 * rng.uniform() - 1) * bound;
  let b: Float32Array | null = null;
  if (bias) { b = new Float32Array(outDim); for (let i = 0; i < outDim; i++) b[i] = (2 * rng.uniform() - 1) * bound; }
  return { W, b, inDim, outDim };
}

const initNorm = (n: number): LayerNormW => ({ weight: new Float32Array(n).fill(1), bias: new Float32Array(n) });

export function initMSR(rng: Rng, dims: Dims): MSRWeights {
  const { d, H, dk, dv } = dims;
  const bias = dims.arch.bias; // (fla: no biases; before, init gave it biases that only some backends added)
  return {
    preNorm: initNorm(d),
    q: initLinear(rng, d, dims.dqk, bias), k: initLinear(rng, d, dims.dqk, bias), // [keyDim, d] (seed: keyDim = d)
    v: initLinear(rng, d, H * dv, bias), g: initLinear(rng, d, H * dv, bias),
    o: initLinear(rng, H * dv, d, bias),
    norm: initNorm(dv),
    angle: Float32Array.from(defaultAngle(dk)),
    decay: Float32Array.from(defaultDecay(H)),
  };
}

export function initMLP(rng: Rng, dims: Dims, bias: boolean): MLPWeights {
  if (dims.arch.mlp === 'swiglu') {
    // fla's gated MLP: gate|up as one [2I, d] Linear, then down [d, I]; no biases
    if (dims.hidden.length !== 1) throw errors.config('mlpHidden', 'one width (the gated MLP\'s intermediate size) for arch fla', dims.hidden);
    const I = dims.hidden[0]!;
    return { norm: initNorm(dims.d), linears: [initLinear(rng, dims.d, 2 * I, false), initLinear(rng, I, dims.d, false)] };
  }
  const widths = [dims.d, ...dims.hidden, dims.d];
  const linears: Linear[] = [];
  for (let i = 0; i + 1 < widths.length; i++) linears.push(initLinear(rng, widths[i], widths[i + 1], bias));
  return { norm: initNorm(dims.d), linears };
}

export function initLayers(config: RetNetConfig, seed: number): LayerWeights[] {
  const rng = new Rng(seed);
  const dims = dimsOf(config);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayer; l++) layers.push({ msr: initMSR(rng, dims), mlp: initMLP(rng, dims, config.mlpBias) });
  return layers;
}

// ---------------------------------------------------------------- checkpoints

/** Tensors of a checkpoint, with the `__metadata__` strings. */
export interface Checkpoint { tensors: Map<string, StTensor>; metadata: Record<string, string>; label: string }

const MSR_LINEARS = ['q', 'k', 'v', 'g', 'o'] as const;

/** The seed-style metadata config (snake_case JSON), if the checkpoint has one. */
export function metadataConfig(ck: Checkpoint): Record<string, unknown> {
  const raw = ck.metadata.config;
  if (raw === undefined) return {};
  try {
    const v = JSON.parse(raw);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch { /* fall through */ }
  throw errors.weights(`${ck.label}: __metadata__.config is not a JSON object`);
}

/** Infer the architecture from tensor shapes (metadata fills what shapes cannot say:
 *  the activations, and the head count when neither `decay` nor `angle` is stored),
 *  then build the weights. Every tensor under `layers.` must be consumed; names
 *  in `consumed` from outside (an LM's embedding, say) are skipped. */
/** What a checkpoint's shapes cannot say: activations (default gelu, or the
 *  checkpoint's __metadata__.config), and the head count when there is no
 *  decay/angle buffer. Given here where the checkpoint records another value, E_OPTION. */
/** Options of {@link RetNet.load}: what a checkpoint may not record. */
export interface LoadOptions {
  /** retention gate activation when the checkpoint does not record it (default gelu) */
  msrGateFn?: ActName;
  /** MLP activation when the checkpoint does not record it (default gelu) */
  mlpGateFn?: ActName;
  /** heads, when the checkpoint's shapes leave it open */
  numHeads?: number;
}

/** Every key of LoadOptions (the loads refuse others). */
export const LOAD_OPTION_KEYS: readonly string[] = ['msrGateFn', 'mlpGateFn', 'numHeads'];

/** Refuses a checkpoint without the seed's first layer by its tensor names alone (RetNet.load calls it on the
 *  header, before reading any tensor): a shard of a fla-hub model (model.layers.N.attn.*) is told where it loads. */
export function seedLayerNames(label: string, names: ReadonlyMap<string, unknown>, prefix = ''): void {
  if (names.has(`${prefix}layers.0.0.q_proj.weight`)) return;
  const fla = [...names.keys()].some((k) => /^model\.(layers\.\d+\.attn\.|embeddings\.)/.test(k));
  throw errors.weights(`${label}: no RetNet layers found (expected ${prefix}layers.0.0.q_proj.weight)` +
    (fla ? '; its tensors are a fla-hub RetNet\'s (model.layers.N.attn.*): pass its folder (with config.json) instead — RetNetLM.loadFolder(DIR); `retnet info`, `score` and `generate` take DIR' : ''));
}

export function layersFromCheckpoint(ck: Checkpoint, prefix = '', overrides: LoadOptions = {}): { config: RetNetConfig; layers: LayerWeights[]; used: Set<string> } {
  checkKnownKeys(overrides, LOAD_OPTION_KEYS); // null is E_OPTION (before: taken for {} here, then a TypeError)
  const meta = metadataConfig(ck);
  const used = new Set<string>();
  const get = (name: string): StTensor => {
    const t = ck.tensors.get(prefix + name);
    if (!t) throw errors.weights(`${ck.label}: missing weight ${prefix + name}`);
    used.add(prefix + name);
    return t;
  };
  const has = (name: string) => ck.tensors.has(prefix + name);

  seedLayerNames(ck.label, ck.tensors, prefix);
  let numLayer = 0;
  while (has(`layers.${numLayer}.0.q_proj.weight`)) numLayer++;

  const d = get('layers.0.0.pre_norm.weight').shape[0];
  // q_proj is [keyDim, d]: keyDim = d in the seed's checkpoints, another width where a config set it
  const dqk = get('layers.0.0.q_proj.weight').shape[0];
  let H: number;
  if (overrides.numHeads !== undefined) {
    H = overrides.numHeads;
    if (!(Number.isInteger(H) && H > 0 && dqk % H === 0 && (dqk / H) % 2 === 0)) {
      throw errors.option('numHeads', `a positive integer dividing the checkpoint's ${dqk === d ? 'dimModel' : 'key width'} ${dqk} into even head widths`, H);
    }
    // a decay buffer records the head count: a different one would be another model
    if (has('layers.0.0.decay') && get('layers.0.0.decay').shape[0] !== H) {
      throw errors.option('numHeads', `left out, or ${get('layers.0.0.decay').shape[0]}: ${ck.label}'s decay buffer records ${get('layers.0.0.decay').shape[0]} heads`, H);
    }
  }
  else if (has('layers.0.0.decay')) H = get('layers.0.0.decay').shape[0];
  else if (has('layers.0.0.angle')) H = dqk / shapeLast(get('layers.0.0.angle'));
  else if (Number.isInteger(meta.num_heads)) H = meta.num_heads as number;
  else throw errors.weights(`${ck.label}: cannot infer the head count: no decay or angle buffer and no __metadata__.config.num_heads`);
  used.clear();
  const vRows = get('layers.0.0.v_proj.weight').shape[0];
  const valueFactor = vRows / d;
  let hidden: number[] = [];
  for (let i = 1; has(`layers.0.1.net.${i}.1.weight`); i++) hidden.push(get(`layers.0.1.net.${i}.1.weight`).shape[0]);
  if (hidden.length === 0) throw errors.weights(`${ck.label}: missing weight ${prefix}layers.0.1.net.1.1.weight (the MLP's first Linear)`);
  // a fla-family model saved in these names (RetNet.init({ arch: 'fla' }).save): gate|up [2I, d] and
  // down [d, I], no biases; the seed's: d → hidden… → d
  // (an unknown name: resolveConfig says so; a value that is not a string is no table's name — String() of a
  // deeply nested array overflowed the stack)
  const archName = meta.arch ?? 'seed';
  const table = typeof archName === 'string' && Object.hasOwn(ARCH, archName) ? (ARCH as Record<string, ArchTable | undefined>)[archName] : undefined;
  const swiglu = table?.mlp === 'swiglu';
  hidden = swiglu ? [get('layers.0.1.net.2.1.weight').shape[1]!] : hidden.slice(0, -1);
  const mlpBias = has('layers.0.1.net.1.1.bias');
  const msrBias = table?.bias ?? true;
  // Activations come from the caller's options or the metadata, not from shapes: a bad one is
  // the option's fault (E_OPTION) or the metadata's (E_WEIGHTS), named as such.
  const act = (key: 'msr_gate_fn' | 'mlp_gate_fn'): ActName => {
    const opt = key === 'msr_gate_fn' ? 'msrGateFn' : 'mlpGateFn';
    const isAct = (v: unknown) => typeof v === 'string' && (ACTIVATIONS as readonly string[]).includes(v);
    const v = meta[key];
    if (overrides[opt] !== undefined) {
      if (!isAct(overrides[opt])) throw errors.option(opt, `one of ${ACTIVATIONS.join(', ')}`, overrides[opt]);
      // the option is for what a checkpoint does not record (before: it replaced a recorded activation
      // without a word — another model)
      if (isAct(v) && v !== overrides[opt]) throw errors.option(opt, `left out, or ${JSON.stringify(v)}: ${ck.label} records ${key} = ${JSON.stringify(v)}`, overrides[opt]);
      return overrides[opt]!;
    }
    if (v === undefined) return 'gelu';
    if (isAct(v)) return v as ActName;
    throw errors.weights(`${ck.label}: __metadata__.config.${key} = ${JSON.stringify(v)} is not one of ${ACTIVATIONS.join(', ')}`);
  };
  const msrGateFn = act('msr_gate_fn'), mlpGateFn = act('mlp_gate_fn');
  const config = inferred(ck.label, () => resolveConfig({
    numLayer, numHeads: H, dimModel: d, valueFactor, msrGateFn, mlpGateFn,
    mlpMult: hidden.length === 1 ? hidden[0] / d : 4, mlpHidden: hidden, mlpBias,
    // what the seed's checkpoints do not have, recorded by save() (before: dropped, so a model with
    // another family, norm eps or key width reloaded as another model)
    ...(dqk !== d ? { keyDim: dqk } : {}),
    ...(meta.arch !== undefined ? { arch: meta.arch as ArchName } : {}),
    ...(meta.norm_eps !== undefined ? { normEps: meta.norm_eps as number } : {}),
  }));
  const dims = dimsOf(config);
  used.clear();

  const take = (name: string, shape: number[]): WArray => {
    const t = get(name);
    const same = t.shape.length === shape.length && t.shape.every((s, i) => s === shape[i]);
    if (!same) throw errors.weights(`${ck.label}: weight ${prefix + name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    return floatData(t.data, prefix + name, ck.label);
  };
  const linear = (base: string, outDim: number, inDim: number, bias: boolean): Linear => ({
    W: take(`${base}.weight`, [outDim, inDim]), b: bias ? take(`${base}.bias`, [outDim]) : null, inDim, outDim,
  });
  const norm = (base: string, n: number): LayerNormW => ({ weight: take(`${base}.weight`, [n]), bias: take(`${base}.bias`, [n]) });

  const { H: h, dk, dv } = dims;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < numLayer; l++) {
    const m = `layers.${l}.0`;
    const shapes: Record<(typeof MSR_LINEARS)[number], [number, number]> = { q: [dims.dqk, d], k: [dims.dqk, d], v: [h * dv, d], g: [h * dv, d], o: [d, h * dv] };
    const lin = Object.fromEntries(MSR_LINEARS.map((n) => [n, linear(`${m}.${n}_proj`, shapes[n][0], shapes[n][1], msrBias)])) as Record<(typeof MSR_LINEARS)[number], Linear>;
    const angle = has(`${m}.angle`) ? flattenAngle(take(`${m}.angle`, [1, dk])) : Float32Array.from(defaultAngle(dk));
    const decay = has(`${m}.decay`) ? take(`${m}.decay`, [h]) : Float32Array.from(defaultDecay(h));
    const msr: MSRWeights = { preNorm: norm(`${m}.pre_norm`, d), ...lin, norm: norm(`${m}.norm`, dv), angle, decay };
    const widths = [d, ...dims.hidden, d];
    const linears: Linear[] = [];
    if (swiglu) {
      linears.push(linear(`layers.${l}.1.net.1.1`, 2 * dims.hidden[0]!, d, false), linear(`layers.${l}.1.net.2.1`, d, dims.hidden[0]!, false));
    } else for (let i = 0; i + 1 < widths.length; i++) linears.push(linear(`layers.${l}.1.net.${i + 1}.1`, widths[i + 1], widths[i], mlpBias));
    layers.push({ msr, mlp: { norm: norm(`layers.${l}.1.net.0`, d), linears } });
  }
  checkLayers(layers, dims, ck.label, prefix);
  return { config, layers, used };
}

/** Config errors while inferring from shapes are the checkpoint's fault: say so. */
function inferred<T>(label: string, fn: () => T): T {
  try { return fn(); } catch (e) {
    throw errors.weights(`${label}: the architecture inferred from the weight shapes is inconsistent: ${(e as Error).message}`);
  }
}

const shapeLast = (t: StTensor) => t.shape[t.shape.length - 1];
const flattenAngle = (a: WArray): WArray => a; // [1, dk] is already contiguous

function floatData(data: StData, name: string, label: string): WArray {
  if (data instanceof Float32Array || data instanceof Float64Array) return data;
  throw errors.weights(`${label}: weight ${name} must be a floating-point tensor (F32, F64, F16 or BF16)`);
}

/** Fail with the full list of names the model did not use. */
export function checkUnexpected(ck: Checkpoint, used: Set<string>): void {
  const extra = [...ck.tensors.keys()].filter((n) => !used.has(n));
  // a byte LM's own tensors where a RetNet was asked for: say what the file is (before: only the names)
  const lm = used.size > 0 && ['embed.weight', 'head.weight'].every((n) => extra.includes(n))
    ? ' — it is a language-model checkpoint (embedding, final norm, head): load it with RetNetLM.load; `retnet score` and `generate` take it as --model'
    : '';
  if (extra.length) throw errors.weights(`${ck.label}: unexpected weights not used by the model: ${listNames(extra, 5, true)}${lm}`);
}

type Named = Record<string, { shape: number[]; data: WArray }>;

/** One MSR's tensors in the seed's names under `base` (e.g. `layers.0.0.`). */
export function msrToTensors(msr: MSRWeights, dims: Dims, base: string, out: Named = {}): Named {
  for (const n of MSR_LINEARS) linearTensors(out, `${base}${n}_proj`, msr[n]);
  normTensors(out, `${base}pre_norm`, msr.preNorm);
  normTensors(out, `${base}norm`, msr.norm);
  out[`${base}angle`] = { shape: [1, dims.dk], data: msr.angle };
  out[`${base}decay`] = { shape: [dims.H], data: msr.decay };
  return out;
}

function linearTensors(out: Named, base: string, L: Linear): void {
  out[`${base}.weight`] = { shape: [L.outDim, L.inDim], data: floatsOf(L.W) };
  if (L.b) out[`${base}.bias`] = { shape: [L.outDim], data: L.b };
}

function normTensors(out: Named, base: string, n: LayerNormW): void {
  out[`${base}.weight`] = { shape: [n.weight.length], data: n.weight };
  out[`${base}.bias`] = { shape: [n.bias.length], data: n.bias };
}

/** One layer's tensors in the seed's names: `${prefix}layers.${l}.…`. */
function layerTensors(lw: LayerWeights, dims: Dims, l: number, prefix: string, out: Named): void {
  msrToTensors(lw.msr, dims, `${prefix}layers.${l}.0.`, out);
  normTensors(out, `${prefix}layers.${l}.1.net.0`, lw.mlp.norm);
  lw.mlp.linears.forEach((L, i) => linearTensors(out, `${prefix}layers.${l}.1.net.${i + 1}.1`, L));
}

/** The state_dict of a model, in the seed's names. */
export function layersToTensors(layers: LayerWeights[], dims: Dims, prefix = ''): Named {
  const out: Named = {};
  layers.forEach((lw, l) => layerTensors(lw, dims, l, prefix, out));
  return out;
}

/** E_WEIGHTS for the first NaN, ±Infinity, value beyond float32's range or decay with γ ∉ (0, 1). */
function checkTensors(t: Named, label: string): void {
  for (const [name, { shape, data }] of Object.entries(t)) {
    checkWeightValues(label, name, data, shape);
    if (name.endsWith('.decay') || name === 'decay') checkDecay(label, name, data);
  }
}

/** Check every layer's weights once (see check.ts); layers built or checked before are skipped. */
export function checkLayers(layers: LayerWeights[], dims: Dims, label: string, prefix = ''): void {
  layers.forEach((lw, l) => {
    if (isChecked(lw)) return;
    checkMsrShapes(lw.msr, dims, label, `${prefix}layers.${l}.0.`);
    // [out, in] of each MLP Linear: sequential d → hidden… → d; swiglu gate|up [2I, d], down [d, I]
    const widths = [dims.d, ...dims.hidden, dims.d];
    const want: [number, number][] = dims.arch.mlp === 'swiglu' ? [[2 * dims.hidden[0]!, dims.d], [dims.d, dims.hidden[0]!]]
      : widths.slice(1).map((w, i) => [w, widths[i]!]);
    if (lw.mlp.linears.length !== want.length) throw errors.weights(`${label}: ${prefix}layers.${l}.1 has ${lw.mlp.linears.length} Linears, the config ${want.length}`);
    lw.mlp.linears.forEach((L, i) => checkLinearShape(label, `${prefix}layers.${l}.1.net.${i + 1}.1`, L, want[i]![0], want[i]![1]));
    const t: Named = {};
    layerTensors(lw, dims, l, prefix, t);
    checkTensors(t, label);
    const base = `${prefix}layers.${l}.`;
    const m = lw.msr;
    checkOverflowBound(label, dims.d,
      layerNormBound(dims.d, m.preNorm.weight, m.preNorm.bias),
      (['q', 'k', 'v', 'g'] as const).map((n) => ({ name: `${base}0.${n}_proj.weight`, ...m[n], W: floatsOf(m[n].W) })),
      layerNormBound(dims.d, lw.mlp.norm.weight, lw.mlp.norm.bias),
      lw.mlp.linears.map((L, i) => ({ name: `${base}1.net.${i + 1}.1.weight`, ...L, W: floatsOf(L.W) })));
    markChecked(lw);
    markChecked(lw.msr);
  });
}

/** A Linear's shape against what the config says ([outDim, inDim], every value there). */
function checkLinearShape(label: string, name: string, L: Linear, outDim: number, inDim: number): void {
  const n = L.W.length; // (a Bf16Matrix: rows·cols, not read)
  if (L.outDim !== outDim || L.inDim !== inDim || n !== outDim * inDim || (L.b !== null && L.b.length !== outDim)) {
    throw errors.weights(`${label}: weight ${name} is [${L.outDim}, ${L.inDim}] with ${n} values${L.b ? ` and a bias of ${L.b.length}` : ''}; the config needs [${outDim}, ${inDim}]`);
  }
}

/** Every projection of a retention against the config's widths (q, k: [H·dk, d]; v, g: [H·dv, d]; o: [d, H·dv]). */
function checkMsrShapes(m: MSRWeights, dims: Dims, label: string, base: string): void {
  const { d, H, dqk, dv } = dims;
  const want: Record<(typeof MSR_LINEARS)[number], [number, number]> = { q: [dqk, d], k: [dqk, d], v: [H * dv, d], g: [H * dv, d], o: [d, H * dv] };
  for (const n of MSR_LINEARS) checkLinearShape(label, `${base}${n}_proj`, m[n], want[n][0], want[n][1]);
}

/** Check one MSR's weights (names as in the seed's MultiScaleRetention state_dict). */
export function checkMSR(msr: MSRWeights, dims: Dims, label: string): void {
  if (isChecked(msr)) return;
  checkMsrShapes(msr, dims, label, '');
  checkTensors(msrToTensors(msr, dims, ''), label);
  markChecked(msr);
}

/** The seed-style snake_case config stored in `__metadata__.config`. */
export function configToMetadata(c: RetNetConfig, dims: Dims): string {
  return JSON.stringify({
    num_layer: c.numLayer, num_heads: c.numHeads, dim_model: c.dimModel, value_factor: c.valueFactor,
    msr_gate_fn: c.msrGateFn, mlp_gate_fn: c.mlpGateFn, mlp_hidden: dims.hidden, mlp_bias: c.mlpBias,
    ...(c.arch !== undefined && c.arch !== 'seed' ? { arch: c.arch } : {}),
    ...(c.normEps !== undefined ? { norm_eps: c.normEps } : {}),
    ...(dims.dqk !== dims.d ? { key_dim: dims.dqk } : {}),
  });
}
