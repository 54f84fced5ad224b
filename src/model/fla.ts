// The fla family (fla-org/flash-linear-attention's RetNet, as published on the
// Hugging Face hub by fla-hub): a model folder — config.json, weights as one
// model.safetensors or shards listed in model.safetensors.index.json, and a
// tokenizer.json — read into the runtime's weight layout (src/model/arch.ts
// says what differs from the seed family and how it is carried):
//
//   model.embeddings.weight                      [V, d]
//   model.layers.{l}.attn_norm.weight            [d]            RMSNorm
//   model.layers.{l}.attn.q_proj.weight          [H·dk, d]      rows permuted to interleaved rotary pairs
//   model.layers.{l}.attn.k_proj.weight          [Hkv·dk, d]    same; repeated to H heads (head i uses kv head ⌊i/(H/Hkv)⌋)
//   model.layers.{l}.attn.v_proj.weight          [Hkv·dv, d]    repeated likewise
//   model.layers.{l}.attn.g_proj.weight          [H·dv, d]
//   model.layers.{l}.attn.o_proj.weight          [d, H·dv]
//   model.layers.{l}.attn.g_norm_swish_gate.weight | .g_norm.weight   [dv]   per-head RMSNorm, shared
//   model.layers.{l}.mlp_norm.weight             [d]
//   model.layers.{l}.mlp.gate_proj.weight        [I, d]  (+ up_proj [I, d]); or legacy fused [2I, d] = gate | up
//   model.layers.{l}.mlp.down_proj.weight        [d, I]
//   model.norm.weight                            [d]
//   lm_head.weight                               [V, d]  (absent when tie_word_embeddings)
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { errors, listNames, quote, type RetNetError } from '../errors.js';
import { SafetensorsFile, fileStamp, sameFile, type StTensorInfo } from '../safetensors.js';
import type { ActName } from '../reference/ops.js';
import { flaAngle, flaDecay, halfToInterleaved, permuteHeadRows } from './arch.js';
import { checkWeightValues, F32_MAX, markChecked, throwBadWeight } from './check.js';
import { dimsOf, resolveConfig, type RetNetConfig } from './config.js';
import type { LayerWeights, Linear, MSRWeights } from './weights.js';
import { Bf16Matrix, firstBadBf16, widenBf16, bf16MaxAbsBits } from './bf16.js';
import { folderFileState } from './folder-file.js';

/** How BF16 weights are held: 'resident' (Uint16Array in memory), 'file' (the layers' weights read from the
 *  safetensors files whenever a backend packs or widens them: the runtime's packed copy is then the only one
 *  in memory), or 'auto' (default): 'file' when the layers' BF16 weights exceed BF16_RESIDENT_MAX_BYTES. */
export type Bf16Storage = 'auto' | 'resident' | 'file';
export const BF16_RESIDENT_MAX_BYTES = 256 * 2 ** 20;
export interface FlaLoadOptions { bf16?: Bf16Storage }

/** A 2-D weight as loaded: float32, or BF16 kept as stored. */
type W2 = Float32Array | Bf16Matrix;

/** `f` applied to the values (or the BF16 bits, on each read when file-backed) of a [rows, cols] weight. */
function mapW(w: W2, rows: number, cols: number, f: <T extends Float32Array | Uint16Array>(a: T) => T): W2 {
  if (!(w instanceof Bf16Matrix)) return f(w);
  return w.resident ? new Bf16Matrix(rows, cols, f(w.bits())) : new Bf16Matrix(rows, cols, () => f(w.bits()));
}

/** Rows of `a` then rows of `b` (BF16 stays BF16 only when both are). */
function stackW(a: W2, b: W2, cols: number): W2 {
  if (a instanceof Bf16Matrix && b instanceof Bf16Matrix) {
    const rows = a.rows + b.rows;
    const cat = () => { const o = new Uint16Array(rows * cols); o.set(a.bits(), 0); o.set(b.bits(), a.length); return o; };
    return a.resident && b.resident ? new Bf16Matrix(rows, cols, cat()) : new Bf16Matrix(rows, cols, cat);
  }
  const fa = a instanceof Bf16Matrix ? a.toFloat32() : a, fb = b instanceof Bf16Matrix ? b.toFloat32() : b;
  const o = new Float32Array(fa.length + fb.length);
  o.set(fa, 0); o.set(fb, fa.length);
  return o;
}

/** Config keys fla's RetNetConfig knows that change nothing at inference (training, caching, kernels, fused losses). */
const INERT_KEYS = new Set([
  'architectures', 'attn_mode', 'bos_token_id', 'eos_token_id', 'pad_token_id', 'fuse_cross_entropy', 'fuse_linear_cross_entropy',
  'fuse_norm', 'fuse_swiglu', 'initializer_range', 'max_position_embeddings', 'model_type', 'torch_dtype', 'transformers_version',
  'use_cache', 'use_l2warp', 'conv_size', 'tie_word_embeddings', 'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_heads',
  'num_kv_heads', 'expand_k', 'expand_v', 'hidden_ratio', 'intermediate_size', 'hidden_act', 'norm_eps', 'elementwise_affine',
  'use_output_gate', 'feature_map', 'use_short_conv', 'attn', 'attnres_block_size', 'rope_theta', 'dtype',
  // written by transformers' PretrainedConfig.to_dict
  'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript', 'use_bfloat16', 'tf_legacy_loss', 'pruned_heads',
  'chunk_size_feed_forward', 'is_encoder_decoder', 'is_decoder', 'cross_attention_hidden_size', 'add_cross_attention',
  'tie_encoder_decoder', 'problem_type', 'id2label', 'label2id', 'task_specific_params', 'tokenizer_class', 'prefix',
  'sep_token_id', 'decoder_start_token_id', '_name_or_path', '_attn_implementation_autoset', 'finetuning_task',
]);

/** What a fla-family config says, validated. */
export interface FlaConfig {
  d: number; layers: number; H: number; Hkv: number; dk: number; dv: number;
  vocab: number; eps: number; tied: boolean; act: ActName;
  /** fuse_norm ∧ use_output_gate ∧ swish: the gate norm is stored as attn.g_norm_swish_gate */
  fusedGateNorm: boolean;
  intermediate: number | null;
  /** what the intermediate width was read from: intermediate_size, or hidden_ratio by fla's rule */
  intermediateFrom: string;
  bosId: number | null; eosId: number | null;
  raw: Record<string, unknown>;
}

// fla's GatedMLP accepts only 'swish' (ValueError otherwise) and its retention's output gate takes the same
// key; other values were once taken as act(gate)·up here, a model fla itself refuses to build and no
// golden checks
const HF_ACTS: Record<string, ActName> = { swish: 'silu' };

/** Parse and check config.json of a fla-family model: every key we cannot honour is E_CONFIG, naming it. */
export function parseFlaConfig(raw: unknown, label: string): FlaConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw errors.modelConfig(label, '(top level)', 'a JSON object', raw);
  const c = raw as Record<string, unknown>;
  const bad = (key: string, want: string): never => { throw errors.modelConfig(label, key, want, c[key]); };
  if (c.model_type !== 'retnet') bad('model_type', "'retnet' (the fla RetNet; other model types are not supported)");
  // Keys whose non-default values change the architecture in ways this runtime does not implement.
  if (c.feature_map != null) bad('feature_map', 'null (feature maps on q/k are not supported)');
  if (c.use_short_conv != null && c.use_short_conv !== false) bad('use_short_conv', 'false (short convolutions are not supported)');
  if (c.attn != null) bad('attn', 'null (hybrid attention layers are not supported)');
  if (c.attnres_block_size != null) bad('attnres_block_size', 'null (attention-residual blocks are not supported)');
  // (null is Python's None: false where fla tests the key, so no gate, norms without weights)
  if (c.use_output_gate !== undefined && c.use_output_gate !== true) bad('use_output_gate', 'true (models without the output gate are not supported)');
  if (c.elementwise_affine !== undefined && c.elementwise_affine !== true) bad('elementwise_affine', 'true (norms without weights are not supported)');
  // rope_theta: fla's retention builds its rotary embedding with the base 10000 whatever the config says
  // (only its hybrid attention layers read the key, and those are refused above), so it changes nothing
  const int = (key: string, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (!(Number.isInteger(v) && (v as number) > 0)) bad(key, 'a positive integer');
    return v as number;
  };
  const d = int('hidden_size', 2048), layers = int('num_hidden_layers', 24), H = int('num_heads', 8), vocab = int('vocab_size', 32000);
  const Hkv = c.num_kv_heads == null ? H : int('num_kv_heads');
  if (H % Hkv !== 0) bad('num_kv_heads', `a divisor of num_heads=${H}`);
  const num = (key: string, dflt: number): number => {
    const v = c[key] ?? dflt;
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) bad(key, 'a positive number');
    return v as number;
  };
  const keyDim = d * num('expand_k', 1), valueDim = d * num('expand_v', 2);
  if (!Number.isInteger(keyDim)) bad('expand_k', `such that hidden_size·expand_k is an integer (${keyDim})`);
  if (!Number.isInteger(valueDim)) bad('expand_v', `such that hidden_size·expand_v is an integer (${valueDim})`);
  if (keyDim % H !== 0 || (keyDim / H) % 2 !== 0) bad('expand_k', `such that hidden_size·expand_k = ${keyDim} splits into ${H} heads of even width`);
  if (valueDim % H !== 0) bad('expand_v', `such that hidden_size·expand_v = ${valueDim} splits into ${H} heads`);
  const eps = num('norm_eps', 1e-6);
  const actName = c.hidden_act ?? 'swish';
  // own keys only: 'toString' or '__proto__' are not activations (before: found on the prototype, and info printed a function)
  const act = typeof actName === 'string' && Object.hasOwn(HF_ACTS, actName) ? HF_ACTS[actName] : undefined;
  if (!act) bad('hidden_act', "'swish' (fla's gated MLP and output gate; fla refuses other values)");
  const bool = (key: string, dflt: boolean): boolean => {
    const v = key in c ? c[key] : dflt;
    if (v === null) return false; // Python's None, false where fla tests it (fuse_norm: None → the unfused g_norm)
    if (typeof v !== 'boolean') bad(key, 'a boolean');
    return v as boolean;
  };
  const tied = bool('tie_word_embeddings', false);
  const fuseNorm = bool('fuse_norm', true);
  // intermediate_size null: fla's GatedMLP takes hidden_size·hidden_ratio·2/3, rounded up to a multiple
  // of 256 (hidden_ratio default 2): the width the weights must have (before: taken from the tensors
  // without a check, so a config fla would refuse loaded)
  const intermediate = c.intermediate_size == null
    ? 256 * Math.ceil(Math.floor(d * num('hidden_ratio', 2) * 2 / 3) / 256)
    : int('intermediate_size');
  const intermediateFrom = c.intermediate_size == null ? `hidden_ratio ${num('hidden_ratio', 2)} (fla's rule: hidden_size·hidden_ratio·2/3 rounded up to a multiple of 256)` : `intermediate_size`;
  const optId = (key: string, dflt: number): number | null => {
    const v = key in c ? c[key] : dflt;
    if (v === null) return null;
    if (!(Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocab)) bad(key, `null or a token id in [0, ${vocab})`);
    return v as number;
  };
  return {
    d, layers, H, Hkv, dk: keyDim / H, dv: valueDim / H, vocab, eps, tied, act: act!,
    fusedGateNorm: fuseNorm && actName === 'swish', intermediate, intermediateFrom, bosId: optId('bos_token_id', 1), eosId: optId('eos_token_id', 2), raw: c,
  };
}

/** config.json's eos_token_id at or beyond the tokenizer's ids (a model vocabulary padded past the
 *  tokenizer's): generate picks only among the tokenizer's ids, so it could never stop there. E_CONFIG
 *  naming the key and both sizes (before: E_OPTION naming an 'eosId' option the caller never passed). */
export function eosBeyondTokenizer(configPath: string, c: FlaConfig, tokenizerVocab: number): RetNetError {
  return errors.modelConfig(configPath, 'eos_token_id',
    `null or an id the tokenizer has, in [0, ${tokenizerVocab}) (the tokenizer has ${tokenizerVocab} ids, the model ${c.vocab}: generate picks only among the tokenizer's ids and could never stop there)`, c.eosId);
}

/** A tokenizer with more ids than the model's vocabulary (a tokenizer.json of another model): its ids past
 *  the embedding's rows could not be scored or generated. Named for the files, as `info` and the load say it. */
export function tokenizerBeyondModel(tokenizerPath: string, configPath: string, tokenizerVocab: number, vocab: number): RetNetError {
  return errors.weights(`${tokenizerPath} has ${tokenizerVocab} ids but the model's vocabulary (vocab_size in ${configPath}, the embedding's rows) has ${vocab}: not this model's tokenizer`);
}

/** Keys of a config this loader neither uses nor knows to be inert: reported by `info`, never an error
 *  (a newer fla may add training-only keys). */
export const unknownConfigKeys = (raw: Record<string, unknown>): string[] => Object.keys(raw).filter((k) => !INERT_KEYS.has(k));

// ---------------------------------------------------------------- model folders

/** Where a model folder's files are. */
export interface ModelFiles {
  dir: string;
  /** model.safetensors.index.json, when sharded */
  indexPath: string | null;
  configPath: string;
  /** safetensors files, in the order of the index (or the single file) */
  weightFiles: string[];
  /** tensor name → file, when sharded */
  weightMap: Map<string, string> | null;
  tokenizerPath: string | null;
}

/** The local Hugging Face hub cache, where huggingface_hub puts it: HF_HUB_CACHE, else its older name
 *  HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 *  ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  // ~ and $VAR / ${VAR} expanded, as huggingface_hub expands these variables (before: taken literally)
  const x = (v: string) => expandPath(v, env);
  if (env.HF_HUB_CACHE) return x(env.HF_HUB_CACHE);
  if (env.HUGGINGFACE_HUB_CACHE) return x(env.HUGGINGFACE_HUB_CACHE);
  if (env.HF_HOME) return join(x(env.HF_HOME), 'hub');
  return join(env.XDG_CACHE_HOME ? x(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** A path as a shell-like expansion would make it: a leading ~ or ~/ is the home folder; $NAME and ${NAME}
 *  are the variable's value (one that is not set is left as written, as Python's os.path.expandvars). */
export function expandPath(p: string, env: NodeJS.ProcessEnv = process.env): string {
  // ~ first, then the variables (as Python's expandvars(expanduser(p))): a variable's own ~ stays
  let s = p;
  if (s === '~' || s.startsWith('~/')) s = (env.HOME || homedir()) + s.slice(1);
  return s.replace(/\$(\w+)|\$\{(\w+)\}/g, (m, a: string | undefined, b: string | undefined) => env[(a ?? b)!] ?? m);
}

/** `ORG/NAME` (a trailing slash allowed) as the hub names it, or null when `spec` is not of that form. */
export function hubName(spec: string): string | null {
  const m = /^([\w.-]+\/[\w.-]+)\/?$/.exec(spec);
  if (!m || m[1]!.endsWith('.safetensors')) return null;
  // the hub's rule for each part: no '--' or '..', not starting or ending with '-' or '.' (so ./x/ and ../x
  // are local paths, never hub names)
  return m[1]!.split('/').every((part) => !/^[-.]|[-.]$|--|\.\./.test(part)) ? m[1]! : null;
}

/** A model folder from `DIR` or `ORG/NAME` (a snapshot in the local hub cache, as `hf download` leaves it;
 *  never fetched: there is no network at run time). */
export function resolveModelDir(spec: string, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof spec !== 'string' || spec === '') throw errors.option('model', 'a model folder or ORG/NAME in the local Hugging Face cache', spec);
  if (existsSync(spec)) {
    if (!statSync(spec).isDirectory()) throw errors.weights(`${spec}: not a folder (a Hugging Face model folder holds config.json and *.safetensors)`);
    return resolve(spec);
  }
  const name = hubName(spec);
  if (name !== null) {
    spec = name;
    const cache = hubCacheDir(env);
    const repo = join(cache, `models--${spec.replace('/', '--')}`);
    if (existsSync(repo)) {
      let rev: string | null = null;
      const ref = join(repo, 'refs', 'main'), refState = folderFileState(ref);
      // a FIFO there would block the read for ever; a directory or a broken link is named, not read
      if (typeof refState === 'object') throw errors.weights(`${spec}: ${ref} ${refState.why}; it names the revision to run`);
      try { rev = readFileSync(ref, 'utf8').trim(); } catch (e) {
        // only a refs/main that is not there means "none" (before: an unreadable one did too, and another
        // snapshot ran)
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw errors.weights(`${spec}: ${join(repo, 'refs', 'main')} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)}); it names the revision to run`);
        }
      }
      const snaps = join(repo, 'snapshots');
      const list = existsSync(snaps) ? readdirSync(snaps) : [];
      // refs/main names the revision to run; one it names that is not downloaded is an error, not a reason to
      // run another snapshot (before: the only snapshot ran instead, an older model without a word)
      if (rev && list.includes(rev)) return join(snaps, rev);
      if (rev) {
        throw errors.weights(`${spec}: refs/main in ${repo} names revision ${rev}, whose snapshot is not there (snapshots: ${list.length ? list.join(', ') : 'none'}); ` +
          `download it again (\`hf download ${spec}\`) or pass a snapshot folder itself`);
      }
      if (list.length === 1) return join(snaps, list[0]!);
      throw errors.weights(`${spec}: ${repo} has ${list.length} snapshots and no refs/main naming one; pass the snapshot folder itself`);
    }
    throw errors.weights(`${spec}: no such folder, and not in the Hugging Face cache (${cache}); download it first, e.g. \`hf download ${spec}\` (retnet never downloads)`);
  }
  throw errors.weights(`${spec}: no such file or folder`);
}

/** The files of a model folder (config, weights — single or sharded — and tokenizer). */
export function modelFiles(dir: string): ModelFiles {
  // each file checked before it is read (folder-file.ts): a broken link or a FIFO is named, not taken as absent
  // or read (before: a FIFO hung the load; a broken link read as "no config.json")
  const has = (p: string): boolean => {
    const s = folderFileState(p);
    if (s === 'absent') return false;
    if (s === 'file') return true;
    throw errors.weights(`${p} ${s.why}`);
  };
  const configPath = join(dir, 'config.json');
  if (!has(configPath)) throw errors.weights(`${dir}: no config.json (not a Hugging Face model folder)`);
  const index = join(dir, 'model.safetensors.index.json');
  const single = join(dir, 'model.safetensors');
  let weightFiles: string[];
  let weightMap: Map<string, string> | null = null;
  // model.safetensors first when both are there, as transformers' from_pretrained picks (before: the
  // shards, so the two could run different weights without a word)
  if (has(single)) {
    weightFiles = [single];
  } else if (has(index)) {
    let j: unknown;
    try { j = JSON.parse(readFileSync(index, 'utf8')); } catch (e) { throw errors.weights(`${index}: not valid JSON (${(e as Error).message})`); }
    const wm = (j as { weight_map?: unknown })?.weight_map;
    if (!wm || typeof wm !== 'object' || Array.isArray(wm)) throw errors.weights(`${index}: no weight_map object`);
    weightMap = new Map();
    const files = new Set<string>(); // (before: an array searched per entry, minutes for a 1.7 MB index of 50,000 shards)
    for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\') || file.startsWith('.')) throw errors.weights(`${index}: weight_map[${quote(name)}] must be a file name in the folder (got ${quote(String(file))})`);
      const p = join(dir, file);
      files.add(p);
      weightMap.set(name, p);
    }
    const missing = [...files].filter((f) => !has(f));
    if (missing.length) throw errors.weights(`${dir}: missing shard${missing.length > 1 ? 's' : ''} ${listNames(missing.map((f) => f.slice(dir.length + 1)), 5, true)} listed in model.safetensors.index.json`);
    weightFiles = [...files];
  } else {
    throw errors.weights(`${dir}: no model.safetensors and no model.safetensors.index.json`);
  }
  const tok = join(dir, 'tokenizer.json');
  return { dir, configPath, indexPath: weightMap ? index : null, weightFiles, weightMap, tokenizerPath: has(tok) ? tok : null };
}

/** Every file of a model folder that scoring reads: config, index, weights, tokenizer. */
export function modelFolderFiles(mf: ModelFiles): string[] {
  // tokenizer_config.json decides BOS (hf.ts): part of what a run's identity hashes, as the tokenizer is
  const tokCfg = mf.tokenizerPath ? join(dirname(mf.tokenizerPath), 'tokenizer_config.json') : null;
  return [mf.configPath, ...(mf.indexPath ? [mf.indexPath] : []), ...mf.weightFiles, ...(mf.tokenizerPath ? [mf.tokenizerPath] : []),
    ...(tokCfg && folderFileState(tokCfg) === 'file' ? [tokCfg] : [])];
}

// ---------------------------------------------------------------- weights

/** The shards' headers alone make one set of tensors: no tensor in two files, each where
 *  model.safetensors.index.json puts it, none of the index missing (E_WEIGHTS otherwise, as a load). */
export function checkShards(mf: ModelFiles): void { new ShardSet(mf).close(); }

/** Bytes of a file-backed BF16 tensor read at a time when it is checked at load. */
const CHECK_BLOCK_BYTES = 4 * 2 ** 20;

/** Tensors across the shards, read on demand as float32 (BF16/F16 widened) or float64. */
class ShardSet {
  private readonly files: SafetensorsFile[] = [];
  private readonly where = new Map<string, SafetensorsFile>();
  readonly used = new Set<string>();
  /** max |value| of each tensor taken (for the overflow bound) */
  private readonly maxAbs = new Map<string, number>();
  /** takeW's scratch for checking a file-backed tensor (CHECK_BLOCK_BYTES at most) */
  private checkScratch = new Uint16Array(0);

  constructor(readonly mf: ModelFiles) {
    try {
      for (const p of mf.weightFiles) {
        const f = SafetensorsFile.open(p);
        this.files.push(f);
        for (const name of f.tensors.keys()) {
          if (this.where.has(name)) throw errors.weights(`${mf.dir}: tensor ${quote(name)} is in two files (${this.where.get(name)!.path}, ${p})`);
          const want = mf.weightMap?.get(name);
          if (mf.weightMap && want !== p) throw errors.weights(`${p}: holds ${quote(name)}, which model.safetensors.index.json ${want ? `puts in ${want}` : 'does not list'}`);
          this.where.set(name, f);
        }
      }
      if (mf.weightMap) {
        const absent = [...mf.weightMap.keys()].filter((n) => !this.where.has(n));
        if (absent.length) throw errors.weights(`${mf.dir}: tensors listed in model.safetensors.index.json but in no shard: ${listNames(absent, 5, true)}`);
      }
    } catch (e) { this.close(); throw e; }
  }

  has(name: string): boolean { return this.where.has(name); }
  names(): string[] { return [...this.where.keys()]; }
  info(name: string): StTensorInfo | undefined { return this.where.get(name)?.tensors.get(name); }

  /** The tensor as float32, checked against `shape` and for values float32 cannot hold. */
  take(name: string, shape: number[]): Float32Array {
    const f = this.where.get(name);
    if (!f) throw errors.weights(`${this.mf.dir}: missing weight ${name}`);
    const t = f.tensors.get(name)!;
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw errors.weights(`${f.path}: weight ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    if (!['F32', 'F64', 'F16', 'BF16'].includes(t.dtype)) throw errors.weights(`${f.path}: weight ${name} has dtype ${t.dtype}; a weight must be F32, F64, F16 or BF16`);
    const data = f.read(name).data;
    checkWeightValues(f.path, name, data, shape);
    this.used.add(name);
    const out = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    let m = 0;
    for (let i = 0; i < out.length; i++) { const v = Math.abs(out[i]); if (v > m) m = v; }
    this.maxAbs.set(name, m);
    return out;
  }

  /** max |value| of a tensor already taken. */
  maxAbsOf(name: string): number {
    const m = this.maxAbs.get(name);
    if (m === undefined) throw new Error(`internal: ${name} not taken`);
    return m;
  }
  /** The file a tensor is in. */
  pathOf(name: string): string { return this.where.get(name)?.path ?? this.mf.dir; }

  /** A 2-D weight: BF16 tensors stay BF16 (`bf16File`: read from the file on each use, else resident),
   *  checked for NaN/±Infinity now; other dtypes as take(). */
  takeW(name: string, shape: [number, number], bf16File: boolean): W2 {
    const f = this.where.get(name);
    const t = f?.tensors.get(name);
    if (!f || !t || t.dtype !== 'BF16') return this.take(name, shape);
    if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) return this.take(name, shape); // take() names the mismatch
    const [rows, cols] = shape;
    // finite BF16 magnitudes order as their bits without the sign; from 0x7f80 up they are NaN or ±Infinity
    const check = (bits: Uint16Array, at: number): number => {
      const mb = bf16MaxAbsBits(bits);
      if (mb >= 0x7f80) { const bad = firstBadBf16(bits); throwBadWeight(f.path, name, widenBf16(bits.subarray(bad, bad + 1))[0]!, at + bad, shape); }
      return mb;
    };
    if (!bf16File) {
      const bits = f.readBf16Bits(name), mb = check(bits, 0);
      this.used.add(name); this.maxAbs.set(name, widenBf16(Uint16Array.of(mb))[0]);
      return new Bf16Matrix(rows, cols, bits);
    }
    // Read again on each use, by name: the file must still be the one checked here (a replaced or
    // rewritten file would give another model's weights, unchecked, or a mix of the two)
    const path = f.path, at = f.byteOffset(name), stamp = f.stamp;
    const changed = (): RetNetError => errors.weights(`${path}: the file changed since the model was loaded (its inode, size or modification time differ); load the model again`);
    const readRows = (r0: number, n: number, into?: Uint16Array): Uint16Array => { // one positioned read, no header parse
      const bytes = into ? new Uint8Array(into.buffer, into.byteOffset, into.byteLength) : new Uint8Array(n * cols * 2);
      const fd = openSync(path, 'r');
      try {
        if (!sameFile(fileStamp(fstatSync(fd)), stamp)) throw changed();
        let done = 0;
        while (done < bytes.length) {
          const k = readSync(fd, bytes, done, bytes.length - done, at + r0 * cols * 2 + done);
          if (k <= 0) throw errors.weights(`${path}: ended while reading rows ${r0}…${r0 + n - 1} of ${name} (the file changed since it was loaded?)`);
          done += k;
        }
      } finally { closeSync(fd); }
      return into ?? new Uint16Array(bytes.buffer);
    };
    // checked now in blocks of rows through one scratch kept for the whole load: reading the whole tensor
    // left it (up to the head's 125 MiB) as garbage until the collector freed it, on top of the packing's peak
    const per = Math.max(1, Math.floor(CHECK_BLOCK_BYTES / (cols * 2)));
    if (this.checkScratch.length < Math.min(per, rows) * cols) this.checkScratch = new Uint16Array(Math.min(per, rows) * cols);
    let mb = 0;
    for (let r0 = 0; r0 < rows; r0 += per) {
      const n = Math.min(per, rows - r0);
      mb = Math.max(mb, check(readRows(r0, n, this.checkScratch.subarray(0, n * cols)), r0 * cols));
    }
    this.used.add(name); this.maxAbs.set(name, widenBf16(Uint16Array.of(mb))[0]);
    return new Bf16Matrix(rows, cols, () => {
      const sf = SafetensorsFile.open(path);
      try {
        if (!sameFile(sf.stamp, stamp)) throw changed();
        return sf.readBf16Bits(name);
      } finally { sf.close(); }
    }, readRows); // a few rows (embedding lookups, a block of the head) read alone
  }

  /** Bytes of BF16 tensors among `names`. */
  bf16Bytes(pred: (name: string) => boolean): number {
    let n = 0;
    for (const [name, f] of this.where) { const t = f.tensors.get(name)!; if (t.dtype === 'BF16' && pred(name)) n += t.end - t.begin; }
    return n;
  }

  close(): void { for (const f of this.files) f.close(); }
}

/** Rows [heads·w, n] of W for Hkv kv heads repeated to H heads: head i takes kv head ⌊i/(H/Hkv)⌋. */
function repeatKv<T extends Float32Array | Uint16Array>(W: T, Hkv: number, H: number, w: number, n: number): T {
  if (Hkv === H) return W;
  const g = H / Hkv, out = new (W.constructor as { new(n: number): T })(H * w * n);
  for (let i = 0; i < H; i++) {
    const src = Math.floor(i / g) * w * n;
    out.set(W.subarray(src, src + w * n), i * w * n);
  }
  return out;
}

const lin = (W: W2, outDim: number, inDim: number): Linear => ({ W, b: null, inDim, outDim });

export interface FlaModel {
  config: RetNetConfig;
  fla: FlaConfig;
  layers: LayerWeights[];
  embed: Float32Array | Bf16Matrix;   // [V, d] (BF16 kept as stored, resident)
  head: Float32Array | Bf16Matrix;    // [V, d] (the embedding itself when tied)
  finalNorm: Float32Array; // [d]
  files: ModelFiles;
  /** dtypes of the stored weights, with counts */
  dtypes: Record<string, number>;
  parameters: number;
  legacyMlp: boolean;
}

/** The seed family's overflow rule (src/model/check.ts: fan-in · max|input| · max|W| ≤ 3.4e38 per
 *  product) for one fla layer: q/k/v/g read an RMSNorm output, |x_i| ≤ sqrt(d)·max|w|; so do the
 *  MLP's gate and up (bound B each); down reads swish(gate)·up, at most B² (|swish(y)| ≤ |y|). The
 *  output projection is not bounded this way (its input is the per-head RMSNorm'd retention). */
function flaOverflowBound(st: ShardSet, d: number, I: number, qkvg: string[], attnNorm: string, mlpNorm: string, gateUp: string[], down: string): void {
  const check = (name: string, fanIn: number, bIn: number): number => overflowCheck(st, name, fanIn, bIn);
  const bAttn = Math.sqrt(d) * st.maxAbsOf(attnNorm);
  for (const n of qkvg) check(n, d, bAttn);
  const bMlp = Math.sqrt(d) * st.maxAbsOf(mlpNorm);
  const B = Math.max(...gateUp.map((n) => check(n, d, bMlp)));
  check(down, I, B * B);
}

/** One weight against the rule fan-in · max|input| · max|weight| ≤ float32's largest value (flaOverflowBound);
 *  returns the bound on the output. */
function overflowCheck(st: ShardSet, name: string, fanIn: number, bIn: number): number {
  const w = st.maxAbsOf(name), out = fanIn * bIn * w;
  if (!(out <= F32_MAX)) {
    throw errors.weights(`${st.pathOf(name)}: weight ${name} has max |value| ${Number(w.toPrecision(7))}, which can overflow float32 arithmetic: ` +
      `on a worst-case input (|x| ≤ ${bIn.toPrecision(3)}) the layer's output reaches ${out.toPrecision(3)}, beyond float32's range (±3.4028235e38) ` +
      'in which the wasm and tfjs backends compute (rule: fan-in · max|input| · max|weight| ≤ 3.4e38)');
  }
  return out;
}

/** Read a fla-family model folder into the runtime's layout. */
export function loadFlaFolder(dir: string, options: FlaLoadOptions = {}): FlaModel {
  const storage = options.bf16 ?? 'auto';
  if (!['auto', 'resident', 'file'].includes(storage)) throw errors.option('bf16', "'auto', 'resident' or 'file'", storage);
  const mf = modelFiles(dir);
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(mf.configPath, 'utf8')); } catch (e) { throw errors.weights(`${mf.configPath}: not valid JSON (${(e as Error).message})`); }
  const fc = parseFlaConfig(raw, mf.configPath);
  const { d, H, Hkv, dk, dv, vocab } = fc;
  const st = new ShardSet(mf);
  try {
    const P = 'model.';
    // config.json's sizes against the headers first: nothing is built from them (the rotary permutation, the
    // angles, the decays) until the embedding and layer 0's q_proj agree (before: a config.json with a huge
    // hidden_size made the load allocate gigabytes, or fail as a RangeError, before any weight was compared)
    for (const [name, want] of [[`${P}embeddings.weight`, [vocab, d]], [`${P}layers.0.attn.q_proj.weight`, [H * dk, d]]] as const) {
      const t = st.info(name);
      if (!t) throw errors.weights(`${mf.dir}: missing weight ${name}`);
      if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
        throw errors.weights(`${st.pathOf(name)}: weight ${name} has shape [${t.shape.join(', ')}], but config.json (${mf.configPath}) gives [${want.join(', ')}]`);
      }
    }
    // the MLP's width and layout from layer 0's tensors (checked against config.intermediate_size)
    const gate0 = st.info(`${P}layers.0.mlp.gate_proj.weight`);
    if (!gate0) throw errors.weights(`${mf.dir}: missing weight ${P}layers.0.mlp.gate_proj.weight`);
    const legacy = !st.has(`${P}layers.0.mlp.up_proj.weight`);
    const I = legacy ? gate0.shape[0] / 2 : gate0.shape[0];
    if (!Number.isInteger(I) || I < 1) throw errors.weights(`${mf.dir}: ${P}layers.0.mlp.gate_proj.weight has shape [${gate0.shape.join(', ')}]; without up_proj it must be [2·I, ${d}]`);
    if (fc.intermediate !== null && fc.intermediate !== I) throw errors.weights(`${mf.dir}: config.json's ${fc.intermediateFrom} gives an intermediate size of ${fc.intermediate} but ${P}layers.0.mlp.gate_proj.weight gives ${I}`);
    if (st.has(`${P}layers.${fc.layers}.attn_norm.weight`)) throw errors.weights(`${mf.dir}: weights for more than num_hidden_layers=${fc.layers} layers`);
    const config: RetNetConfig = resolveConfig({
      arch: 'fla', numLayer: fc.layers, numHeads: H, dimModel: d, keyDim: H * dk, valueFactor: (H * dv) / d,
      msrGateFn: fc.act, mlpGateFn: fc.act, mlpMult: I / d, mlpHidden: [I], mlpBias: false, dropout: 0, normEps: fc.eps,
    });
    const dims = dimsOf(config);
    const perm = halfToInterleaved(dk);
    const bf16File = storage === 'file' || (storage === 'auto' && st.bf16Bytes((n) => n.startsWith(`${P}layers.`)) > BF16_RESIDENT_MAX_BYTES);
    const angle = flaAngle(dk), decay = flaDecay(H);
    const zeros = (n: number) => new Float32Array(n);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < fc.layers; l++) {
      const a = `${P}layers.${l}.attn.`;
      const q = mapW(st.takeW(`${a}q_proj.weight`, [H * dk, d], bf16File), H * dk, d, (w) => permuteHeadRows(w, H, dk, d, perm));
      const k = mapW(st.takeW(`${a}k_proj.weight`, [Hkv * dk, d], bf16File), H * dk, d, (w) => repeatKv(permuteHeadRows(w, Hkv, dk, d, perm), Hkv, H, dk, d));
      const v = mapW(st.takeW(`${a}v_proj.weight`, [Hkv * dv, d], bf16File), H * dv, d, (w) => repeatKv(w, Hkv, H, dv, d));
      const g = st.takeW(`${a}g_proj.weight`, [H * dv, d], bf16File);
      const o = st.takeW(`${a}o_proj.weight`, [d, H * dv], bf16File);
      const gnName = fc.fusedGateNorm ? `${a}g_norm_swish_gate.weight` : `${a}g_norm.weight`;
      if (!st.has(gnName)) {
        const other = fc.fusedGateNorm ? `${a}g_norm.weight` : `${a}g_norm_swish_gate.weight`;
        throw errors.weights(`${mf.dir}: missing weight ${gnName}${st.has(other) ? ` (the folder has ${other}: config.json's fuse_norm/hidden_act do not match the weights)` : ''}`);
      }
      const msr: MSRWeights = {
        preNorm: { weight: st.take(`${P}layers.${l}.attn_norm.weight`, [d]), bias: zeros(d) },
        q: lin(q, H * dk, d), k: lin(k, H * dk, d), v: lin(v, H * dv, d), g: lin(g, H * dv, d), o: lin(o, d, H * dv),
        norm: { weight: st.take(gnName, [dv]), bias: zeros(dv) },
        angle, decay,
      };
      const m = `${P}layers.${l}.mlp.`;
      let gu: W2;
      if (legacy) {
        if (st.has(`${m}up_proj.weight`)) throw errors.weights(`${mf.dir}: layer ${l} has ${m}up_proj.weight but layer 0 has the fused gate_proj without it`);
        gu = st.takeW(`${m}gate_proj.weight`, [2 * I, d], bf16File); // rows [0, I) gate, [I, 2I) up: already the runtime's layout
      } else {
        gu = stackW(st.takeW(`${m}gate_proj.weight`, [I, d], bf16File), st.takeW(`${m}up_proj.weight`, [I, d], bf16File), d);
      }
      const down = st.takeW(`${m}down_proj.weight`, [d, I], bf16File);
      const lw: LayerWeights = {
        msr,
        mlp: { norm: { weight: st.take(`${P}layers.${l}.mlp_norm.weight`, [d]), bias: zeros(d) }, linears: [lin(gu, 2 * I, d), lin(down, d, I)] },
      };
      flaOverflowBound(st, d, I, [`${a}q_proj.weight`, `${a}k_proj.weight`, `${a}v_proj.weight`, `${a}g_proj.weight`], `${P}layers.${l}.attn_norm.weight`,
        `${P}layers.${l}.mlp_norm.weight`, legacy ? [`${m}gate_proj.weight`] : [`${m}gate_proj.weight`, `${m}up_proj.weight`], `${m}down_proj.weight`);
      markChecked(lw); markChecked(msr); // values checked as read (ShardSet.take), the overflow bound just above
      layers.push(lw);
    }
    // large models: embedding rows read from the file as tokens need them (one 2·d-byte read each)
    const embed = st.takeW(`${P}embeddings.weight`, [vocab, d], bf16File);
    let head: Float32Array | Bf16Matrix;
    if (fc.tied) {
      if (st.has('lm_head.weight')) throw errors.weights(`${mf.dir}: tie_word_embeddings is true but the folder has lm_head.weight`);
      head = embed;
    } else {
      // read from the file like the layers of a large model: WasmHead and oneDNN keep packed copies, and
      // the float64 head (js backend, decoding) makes a resident one only when first used
      head = st.takeW('lm_head.weight', [vocab, d], bf16File);
    }
    const finalNorm = st.take(`${P}norm.weight`, [d]);
    // the head reads the final RMSNorm's output as the layers' products read theirs (before: only the layers
    // were held to the rule, and a head that overflows scored NaN, or perplexity Infinity with exit 0)
    overflowCheck(st, fc.tied ? `${P}embeddings.weight` : 'lm_head.weight', d, Math.sqrt(d) * st.maxAbsOf(`${P}norm.weight`));
    const extra = st.names().filter((n) => !st.used.has(n));
    if (extra.length) throw errors.weights(`${mf.dir}: unexpected weights not used by the model: ${listNames(extra, 5, true)}`);
    const dtypes: Record<string, number> = {};
    let parameters = 0;
    for (const n of st.names()) {
      const t = st.info(n)!;
      dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
      parameters += t.shape.reduce((a, b) => a * b, 1);
    }
    void dims;
    return { config, fla: fc, layers, embed, head, finalNorm, files: mf, dtypes, parameters, legacyMlp: legacy };
  } finally {
    st.close();
  }
}
