// A small random fla-family model folder for tests that need a real tokenizer:
// Mistral's 32k vocabulary (tokenizer.json rebuilt from mistral-tokenizer-js),
// a tiny RetNet (d 32, 2 layers, tied embedding) in F32, config.json as fla
// writes it. Its numbers mean nothing; golden numbers are in test/fixtures/fla.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/safetensors.js';
import { Rng } from '../../src/random.js';
import { writeMistralTokenizerJson } from './mistral-tokenizer-json.js';

export interface TinyFla { d?: number; layers?: number; heads?: number; vocab?: number; I?: number; seed?: number; tokenizer?: boolean }

export async function makeTinyFlaFolder(dir: string, o: TinyFla = {}): Promise<string> {
  const { d = 32, layers = 2, heads = 2, vocab = 32000, I = 64, seed = 7, tokenizer = true } = o;
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  const mat = (rows: number, cols: number, scale: number) => {
    const a = new Float32Array(rows * cols);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.uniform() - 1) * scale;
    return { shape: [rows, cols], data: a };
  };
  const ones = (n: number) => ({ shape: [n], data: new Float32Array(n).fill(1) });
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const s = 1 / Math.sqrt(d);
  t['model.embeddings.weight'] = mat(vocab, d, 1);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    t[`${p}attn_norm.weight`] = ones(d);
    t[`${p}attn.q_proj.weight`] = mat(d, d, s);
    t[`${p}attn.k_proj.weight`] = mat(d, d, s);
    t[`${p}attn.v_proj.weight`] = mat(2 * d, d, s);
    t[`${p}attn.g_proj.weight`] = mat(2 * d, d, s);
    t[`${p}attn.o_proj.weight`] = mat(d, 2 * d, s);
    t[`${p}attn.g_norm_swish_gate.weight`] = ones(2 * d / heads);
    t[`${p}mlp_norm.weight`] = ones(d);
    t[`${p}mlp.gate_proj.weight`] = mat(I, d, s);
    t[`${p}mlp.up_proj.weight`] = mat(I, d, s);
    t[`${p}mlp.down_proj.weight`] = mat(d, I, 1 / Math.sqrt(I));
  }
  t['model.norm.weight'] = ones(d);
  writeSafetensors(join(dir, 'model.safetensors'), t);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['RetNetForCausalLM'], attn: null, attn_mode: 'chunk', bos_token_id: 1, eos_token_id: 2, elementwise_affine: true,
    expand_k: 1, expand_v: 2, feature_map: null, fuse_cross_entropy: true, fuse_norm: true, fuse_swiglu: true, hidden_act: 'swish',
    hidden_ratio: 2, hidden_size: d, intermediate_size: I, max_position_embeddings: 2048, model_type: 'retnet', norm_eps: 1e-6,
    num_heads: heads, num_hidden_layers: layers, num_kv_heads: null, tie_word_embeddings: true, torch_dtype: 'float32',
    use_cache: true, use_output_gate: true, use_short_conv: false, vocab_size: vocab,
  }, null, 2));
  if (tokenizer) await writeMistralTokenizerJson(join(dir, 'tokenizer.json'));
  return dir;
}
