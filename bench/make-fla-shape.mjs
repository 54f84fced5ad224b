#!/usr/bin/env node
// Writes a random-BF16 RetNet with the exact tensor names and shapes of
// fla-hub/retnet-1.3B-100B (fla-org/flash-linear-attention's RetNet, Hugging Face
// layout) for benchmarks: d 2048, 24 layers, 8 heads, head_k 256 (expand_k 1),
// head_v 512 (expand_v 2), intermediate 2816, vocab 32000, untied, norm_eps 1e-6.
// 267 tensors, 1,351,727,104 parameters at 24 layers (both asserted).
//
// Usage: node bench/make-fla-shape.mjs OUT_DIR [--layers N] [--shards N] [--seed S]
//
// Streams to disk (a few MiB of memory). Weights: seeded xorshift picks from a
// 65,536-entry table of BF16 normal draws, std 0.02; every norm weight is 1.
// Only node: builtins.

import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const USAGE = 'usage: node bench/make-fla-shape.mjs OUT_DIR [--layers N] [--shards N] [--seed S]';
function usage(msg) {
  if (msg) console.error(`make-fla-shape: ${msg}`);
  console.error(USAGE);
  process.exit(2);
}
/** config.json's mark of a folder this script wrote (it may overwrite only such a folder's files) */
const GENERATOR = 'retnet bench/make-fla-shape.mjs: random BF16 weights in the fla-hub RetNet shape, not a trained model';

const args = process.argv.slice(2);
let outDir = null;
let layers = 24;
let shards = 1;
let seed = 1;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const int = (name) => {
    const v = Number(args[++i]);
    if (!Number.isInteger(v) || v < 1) usage(`${name} needs a positive integer`);
    return v;
  };
  if (a === '--layers') layers = int('--layers');
  else if (a === '--shards') shards = int('--shards');
  else if (a === '--seed') seed = int('--seed');
  else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else if (outDir === null) outDir = a;
  else usage(`unexpected argument ${a}`);
}
if (outDir === null) usage('OUT_DIR missing');
// Never overwrite a model: OUT_DIR must be new, hold no config.json or .safetensors, or be this script's output.
if (existsSync(outDir)) {
  const names = readdirSync(outDir);
  const modelFiles = names.filter((n) => n === 'config.json' || n.endsWith('.safetensors') || n === 'model.safetensors.index.json');
  let ours = false;
  try { ours = JSON.parse(readFileSync(join(outDir, 'config.json'), 'utf8')).generator === GENERATOR; } catch { /* no config, or not ours */ }
  if (modelFiles.length && !ours) usage(`${outDir} holds a model (${modelFiles.join(', ')}) this script did not write: choose a new directory`);
  // an earlier run's weights go first: shards of another count would otherwise be left beside the new ones
  for (const n of modelFiles) if (n !== 'config.json') rmSync(join(outDir, n));
}

// ---- shape (fla RetNetConfig of the 1.3B release)
const d = 2048;
const heads = 8;
const expandK = 1;
const expandV = 2;
const vocab = 32000;
const hiddenRatio = 2;
const keyDim = d * expandK; // 2048, head_k 256
const valueDim = d * expandV; // 4096, head_v 512
const headV = valueDim / heads;
// fla GatedMLP: intermediate_size null -> 256 * ceil(int(d * ratio * 2/3) / 256)
const inter = 256 * Math.ceil(Math.floor((d * hiddenRatio * 2) / 3) / 256); // 2816
if (inter !== 2816 || keyDim / heads !== 256 || headV !== 512) throw new Error('shape arithmetic');

const config = {
  generator: GENERATOR,
  architectures: ['RetNetForCausalLM'],
  attn: null,
  attn_mode: 'chunk',
  bos_token_id: 1,
  conv_size: 4,
  elementwise_affine: true,
  eos_token_id: 2,
  expand_k: expandK,
  expand_v: expandV,
  feature_map: null,
  fuse_cross_entropy: true,
  fuse_norm: true,
  fuse_swiglu: true,
  hidden_act: 'swish',
  hidden_ratio: hiddenRatio,
  hidden_size: d,
  initializer_range: 0.02,
  intermediate_size: null,
  max_position_embeddings: 2048,
  model_type: 'retnet',
  norm_eps: 1e-6,
  num_heads: heads,
  num_hidden_layers: layers,
  num_kv_heads: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.48.2',
  use_cache: true,
  use_output_gate: true,
  use_short_conv: false,
  vocab_size: vocab,
};

// ---- tensor list: [name, shape, kind]; kind 'norm' = all ones, 'rand' = N(0, 0.02^2)
const tensors = [['model.embeddings.weight', [vocab, d], 'rand']];
for (let l = 0; l < layers; l++) {
  const p = `model.layers.${l}.`;
  tensors.push(
    [p + 'attn_norm.weight', [d], 'norm'],
    [p + 'attn.q_proj.weight', [keyDim, d], 'rand'],
    [p + 'attn.k_proj.weight', [keyDim, d], 'rand'],
    [p + 'attn.v_proj.weight', [valueDim, d], 'rand'],
    [p + 'attn.g_proj.weight', [valueDim, d], 'rand'],
    [p + 'attn.o_proj.weight', [d, valueDim], 'rand'],
    [p + 'attn.g_norm_swish_gate.weight', [headV], 'norm'],
    [p + 'mlp_norm.weight', [d], 'norm'],
    [p + 'mlp.gate_proj.weight', [inter, d], 'rand'],
    [p + 'mlp.up_proj.weight', [inter, d], 'rand'],
    [p + 'mlp.down_proj.weight', [d, inter], 'rand'],
  );
}
tensors.push(['model.norm.weight', [d], 'norm'], ['lm_head.weight', [vocab, d], 'rand']);

const numel = (shape) => shape.reduce((a, b) => a * b, 1);
const nParams = tensors.reduce((s, t) => s + numel(t[1]), 0);
const perLayer = 2 * keyDim * d + 3 * valueDim * d + 2 * d + headV + 3 * inter * d; // 50,860,544
const expectTensors = 11 * layers + 3;
const expectParams = 2 * vocab * d + d + layers * perLayer;
if (tensors.length !== expectTensors || nParams !== expectParams) {
  throw new Error(`count mismatch: ${tensors.length} tensors / ${nParams} params, expected ${expectTensors} / ${expectParams}`);
}
if (layers === 24 && (tensors.length !== 267 || nParams !== 1_351_727_104)) {
  throw new Error(`fla-hub 1.3B shape mismatch: ${tensors.length} tensors, ${nParams} params`);
}
if (shards > tensors.length) usage(`--shards ${shards} exceeds the ${tensors.length} tensors`);

// ---- random BF16: xorshift32 state, 16 random bits index a table of BF16 normal draws
let state = (seed * 0x9e3779b9) >>> 0 || 0x12345678;
function xorshift() {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state;
}
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toBf16(x) {
  f32[0] = x;
  const b = u32[0];
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even
}
const TABLE = new Uint16Array(65536);
for (let i = 0; i < 65536; i += 2) {
  // Box-Muller on two uniforms in (0, 1)
  const u1 = (xorshift() + 1) / 4294967297;
  const u2 = (xorshift() + 1) / 4294967297;
  const r = Math.sqrt(-2 * Math.log(u1));
  TABLE[i] = toBf16(0.02 * r * Math.cos(2 * Math.PI * u2));
  TABLE[i + 1] = toBf16(0.02 * r * Math.sin(2 * Math.PI * u2));
}
const ONE_BF16 = 0x3f80;

// ---- shard assignment (tensor order, roughly equal bytes)
const sizes = tensors.map((t) => numel(t[1]) * 2);
const totalBytes = sizes.reduce((a, b) => a + b, 0);
const shardOf = [];
{
  let acc = 0;
  for (const s of sizes) {
    shardOf.push(Math.min(shards - 1, Math.floor((acc * shards) / totalBytes)));
    acc += s;
  }
  for (let k = 0; k < shards; k++) if (!shardOf.includes(k)) throw new Error(`shard ${k + 1} would be empty`);
}

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');

const CHUNK = 1 << 21; // bf16 values per write (4 MiB)
const buf = new Uint16Array(CHUNK);
const bytes = new Uint8Array(buf.buffer);
const fileNames = [];
const weightMap = {};
const t0 = Date.now();
for (let k = 0; k < shards; k++) {
  const fileName = shards === 1 ? 'model.safetensors' : `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
  fileNames.push(fileName);
  const mine = tensors.map((t, i) => i).filter((i) => shardOf[i] === k);
  const header = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const i of mine) {
    const [name, shape] = tensors[i];
    header[name] = { dtype: 'BF16', shape, data_offsets: [off, off + sizes[i]] };
    off += sizes[i];
    weightMap[name] = fileName;
  }
  let hjson = JSON.stringify(header);
  while ((8 + Buffer.byteLength(hjson)) % 8 !== 0) hjson += ' ';
  const hbytes = Buffer.from(hjson, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hbytes.length));
  const fd = openSync(join(outDir, fileName), 'w');
  try {
    writeSync(fd, lenBuf);
    writeSync(fd, hbytes);
    for (const i of mine) {
      const kind = tensors[i][2];
      let left = numel(tensors[i][1]);
      while (left > 0) {
        const n = Math.min(left, CHUNK);
        if (kind === 'norm') {
          buf.fill(ONE_BF16, 0, n);
        } else {
          let j = 0;
          for (; j + 1 < n; j += 2) {
            const r = xorshift();
            buf[j] = TABLE[r & 0xffff];
            buf[j + 1] = TABLE[r >>> 16];
          }
          if (j < n) buf[j] = TABLE[xorshift() & 0xffff];
        }
        let w = 0;
        while (w < n * 2) w += writeSync(fd, bytes, w, n * 2 - w);
        left -= n;
      }
    }
  } finally {
    closeSync(fd);
  }
}
if (shards > 1) {
  const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((n) => [n, weightMap[n]]));
  writeFileSync(join(outDir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: sorted }, null, 2) + '\n');
}
console.log(`wrote ${outDir}: ${layers} layers, ${tensors.length} tensors, ${nParams.toLocaleString('en-US')} parameters, ` +
  `${totalBytes.toLocaleString('en-US')} bytes BF16 in ${fileNames.length} file(s), ${((Date.now() - t0) / 1000).toFixed(1)} s`);
