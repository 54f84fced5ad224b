// `retnet info M.safetensors`: the architecture a checkpoint implies.
import { RetNet, RetNetLM, SafetensorsFile } from '../../index.js';
import { layersToTensors } from '../../model/weights.js';
import { ACTIVATIONS, type ActName } from '../../reference/ops.js';
import { UsageError, parse, type Command } from '../command.js';
import { asModelRefusal } from '../lm-util.js';
import { RetNetError } from '../../errors.js';
import { checkShards, eosBeyondTokenizer, modelFiles, tokenizerBeyondModel, parseFlaConfig, resolveModelDir, unknownConfigKeys } from '../../model/fla.js';
import { loadTokenizer } from '../../tokenizer/index.js';
import { readFileSync } from 'node:fs';

const usage = `usage: retnet info M.safetensors|DIR|ORG/NAME [--msr-gate-fn F] [--mlp-gate-fn F] [--json]

A Hugging Face model folder of the fla family (DIR, or ORG/NAME in the local
Hugging Face cache) is described from its config.json, the safetensors headers
and tokenizer.json, without reading the weights: architecture, parameters,
dtypes and tokenizer.

Loads a checkpoint (the seed's PyTorch state_dict names) and prints the
architecture read from it: layers, heads, d, dk, dv, MLP widths, activations
and parameter count. Activations come from the file's __metadata__.config,
else the options, else gelu. A byte-level language-model checkpoint (one with
embed.weight, like the shipped src/assets/bytes-4x128.safetensors) is
described too: vocabulary, embedding, final norm and head.

options:
  --msr-gate-fn F   retention gate activation (${ACTIVATIONS.join(', ')}); checkpoint
                    files only (a model folder's config.json decides)
  --mlp-gate-fn F   MLP activation (checkpoint files only)
  --json            print JSON instead of text
  -h, --help        this text`;

export function actOption(name: string, v: string | undefined): ActName | undefined {
  if (v === undefined) return undefined;
  if (!(ACTIVATIONS as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${ACTIVATIONS.join(', ')} (got ${JSON.stringify(v)})`);
  return v as ActName;
}

/** Flags a fla-family model folder cannot take, as usage errors (the library refuses the activations as
 *  load options and the normalisations at the forward, E_OPTION): its config.json decides the activations,
 *  and the family has no retention normalisations. `values`: the parsed flags. */
export function refuseForFolder(folder: string, values: Record<string, unknown>): void {
  for (const flag of ['msr-gate-fn', 'mlp-gate-fn'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} is for a checkpoint file; ${folder} is a model folder (its config.json decides the activations): leave --${flag} out`);
  }
  for (const flag of ['normalize-attn', 'normalize-retn'] as const) {
    if (values[flag] === true) throw new UsageError(`--${flag} is for the seed's checkpoints; ${folder} is a fla-family model folder (the family has no retention normalisations): leave --${flag} out`);
  }
}

const info: Command = {
  name: 'info',
  summary: 'the architecture read from a checkpoint file or a model folder',
  usage,
  async run(argv) {
    const a = parse({ usage }, argv, { 'msr-gate-fn': { type: 'string' }, 'mlp-gate-fn': { type: 'string' }, json: { type: 'boolean' } }, true);
    if (!a) return 0;
    if (a.positionals.length !== 1) throw new UsageError(a.positionals.length === 0 ? 'give one checkpoint file, model folder or ORG/NAME' : `give one checkpoint file, model folder or ORG/NAME (got ${a.positionals.length})`);
    const path = a.positionals[0];
    if (RetNetLM.isFolderSpec(path)) {
      refuseForFolder(path, a.values); // before: --msr-gate-fn / --mlp-gate-fn were accepted and ignored
      // the refusals score's load turns into exit 2, E_DTYPE included (before: info exited 1 on it)
      try { return await folderInfo(path, a.values.json === true); } catch (e) { throw asModelRefusal(path, e); }
    }
    const acts = { msrGateFn: actOption('msr-gate-fn', a.values['msr-gate-fn']), mlpGateFn: actOption('mlp-gate-fn', a.values['mlp-gate-fn']) };
    const f = SafetensorsFile.open(path);
    // dtype → tensor count, the shape a model folder's `dtypes` has (before: a list of names here, an
    // object there: one --json key, two types)
    const dtypes: Record<string, number> = {};
    for (const t of f.tensors.values()) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    const isLM = f.has('embed.weight');
    f.close();
    // an LM checkpoint: the RetNet inside it plus embedding, final norm and head
    const lm = isLM ? await RetNetLM.load(path, acts) : null;
    const model = lm ? lm.model : await RetNet.load(path, acts);
    let params = 0, buffers = 0;
    for (const [name, t] of Object.entries(layersToTensors(model.layers, model.dims))) {
      const n = t.shape.reduce((x, y) => x * y, 1);
      if (/\.(angle|decay)$/.test(name)) buffers += n; else params += n;
    }
    const lmParams = lm ? lm.embed.length + lm.head.length + lm.normWeight.length + lm.normBias.length : 0;
    const { config: c, dims } = model;
    const out = {
      file: path, kind: lm ? 'language model' : 'retnet', dtypes, layers: c.numLayer, heads: dims.H, d: dims.d, dk: dims.dk, dv: dims.dv, valueFactor: c.valueFactor,
      mlpWidths: [dims.d, ...dims.hidden, dims.d], mlpBias: c.mlpBias, msrGateFn: c.msrGateFn, mlpGateFn: c.mlpGateFn,
      ...(lm ? { vocab: lm.vocab } : {}),
      parameters: params + lmParams, buffers,
    };
    if (lm) await lm.close(); else await model.close();
    if (a.values.json) { console.log(JSON.stringify(out, null, 2)); return 0; }
    console.log([
      `file         ${path} (${Object.keys(dtypes).join(', ')})`,
      ...(lm ? [`kind         byte-level language model: embedding [${lm.vocab}, ${dims.d}] → RetNet → final LayerNorm [${dims.d}] → head [${lm.vocab}, ${dims.d}]`] : []),
      `layers       ${out.layers}`,
      `heads        ${out.heads}`,
      `d            ${out.d}`,
      `dk           ${out.dk} per head (${out.dk * out.heads} total)`,
      `dv           ${out.dv} per head (${out.dv * out.heads} total, value factor ${out.valueFactor})`,
      `MLP widths   ${out.mlpWidths.join(' → ')}${out.mlpBias ? ' (with bias)' : ' (no bias)'}`,
      `activations  retention gate ${out.msrGateFn}, MLP ${out.mlpGateFn}`,
      `parameters   ${out.parameters.toLocaleString('en-US')}${lm ? ` (RetNet ${params.toLocaleString('en-US')}, embedding + norm + head ${lmParams.toLocaleString('en-US')})` : ''} (+ ${buffers.toLocaleString('en-US')} in decay/angle buffers)`,
    ].join('\n'));
    return 0;
  },
};

/** `info` of a fla-family folder: config.json + safetensors headers + tokenizer.json. */
async function folderInfo(spec: string, json: boolean): Promise<number> {
  const dir = resolveModelDir(spec);
  const mf = modelFiles(dir);
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(mf.configPath, 'utf8')); } catch (e) { throw new RetNetError('E_CONFIG', `${mf.configPath}: not valid JSON (${(e as Error).message})`); }
  const c = parseFlaConfig(raw, mf.configPath);
  checkShards(mf); // what a load would refuse from the headers (a tensor in two shards, the index's tensors missing)
  const dtypes: Record<string, number> = {};
  let parameters = 0, tensors = 0, bytes = 0;
  let I: number | null = null, hasUp = false;
  for (const p of mf.weightFiles) {
    const f = SafetensorsFile.open(p);
    try {
      for (const [name, t] of f.tensors) {
        tensors++;
        dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
        parameters += t.shape.reduce((x, y) => x * y, 1);
        bytes += t.end - t.begin;
        if (name === 'model.layers.0.mlp.gate_proj.weight') I = t.shape[0];
        if (name === 'model.layers.0.mlp.up_proj.weight') hasUp = true;
      }
    } finally { f.close(); }
  }
  // the tensors every fla RetNet has, by name: a folder of another family (whose config says model_type
  // 'retnet' too) is refused here as a load would refuse it, not described with fla's defaults. (Shapes
  // stay the load's business: info reads headers.)
  const names = new Map<string, number[]>(); // name → shape
  for (const p of mf.weightFiles) { const f = SafetensorsFile.open(p); try { for (const [n, t] of f.tensors) names.set(n, t.shape); } finally { f.close(); } }
  const want = ['model.embeddings.weight', 'model.norm.weight',
    ...[0, c.layers - 1].flatMap((l) => ['q', 'k', 'v', 'o'].map((n) => `model.layers.${l}.attn.${n}_proj.weight`))];
  const absent = want.find((n) => !names.has(n));
  if (absent) throw new RetNetError('E_WEIGHTS', `${dir}: no tensor ${absent}: not a fla RetNet folder (or fewer layers than config.json's ${c.layers})`);
  // the shapes this command prints from config.json, and the head's tying, against the headers, as the load
  // checks them (before: a tie_word_embeddings or hidden_size the weights contradict was described as fine)
  const shapeOf = (n: string, want: number[]) => {
    const got = names.get(n)!;
    if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
      throw new RetNetError('E_WEIGHTS', `${dir}: weight ${n} has shape [${got.join(', ')}], but config.json (${mf.configPath}) gives [${want.join(', ')}]`);
    }
  };
  shapeOf('model.embeddings.weight', [c.vocab, c.d]);
  shapeOf('model.layers.0.attn.q_proj.weight', [c.H * c.dk, c.d]);
  if (c.tied && names.has('lm_head.weight')) throw new RetNetError('E_WEIGHTS', `${dir}: tie_word_embeddings is true but the folder has lm_head.weight`);
  if (!c.tied) {
    if (!names.has('lm_head.weight')) throw new RetNetError('E_WEIGHTS', `${dir}: no tensor lm_head.weight (and tie_word_embeddings is not true)`);
    shapeOf('lm_head.weight', [c.vocab, c.d]);
  }
  const legacy = I !== null && !hasUp; // the fused [2I, d] gate_proj of 2024 checkpoints
  if (legacy && I !== null) I /= 2;
  const tok = mf.tokenizerPath ? await loadTokenizer(mf.tokenizerPath, { eosId: c.eosId }, (n) => eosBeyondTokenizer(mf.configPath, c, n)) : null;
  // refused as the load refuses it (before: info described the folder as fine, and score refused it)
  if (tok && tok.vocabSize > c.vocab) throw tokenizerBeyondModel(mf.tokenizerPath!, mf.configPath, tok.vocabSize, c.vocab);
  const out = {
    folder: dir, kind: 'language model (fla RetNet)', dtypes, tensors, parameters, weightBytes: bytes, shards: mf.weightFiles.length,
    layers: c.layers, heads: c.H, kvHeads: c.Hkv, d: c.d, dk: c.dk, dv: c.dv, intermediate: I, vocab: c.vocab, normEps: c.eps,
    tiedEmbeddings: c.tied, activation: c.act,
    tokenizer: tok ? { file: mf.tokenizerPath, vocab: tok.vocabSize, bos: tok.bosId, eos: tok.eosId } : null,
    unknownConfigKeys: unknownConfigKeys(c.raw),
  };
  if (json) { console.log(JSON.stringify(out, null, 2)); return 0; }
  const fmt = (n: number) => n.toLocaleString('en-US');
  console.log([
    `folder       ${dir}`,
    `kind         fla RetNet language model: embedding [${c.vocab}, ${c.d}] → ${c.layers} × (RMSNorm → retention → RMSNorm → SwiGLU MLP) → RMSNorm → head${c.tied ? ' (tied to the embedding)' : ''}`,
    `weights      ${fmt(tensors)} tensors in ${mf.weightFiles.length} file${mf.weightFiles.length > 1 ? 's' : ''}, ${Object.entries(dtypes).map(([k, v]) => `${k} ×${v}`).join(', ')}, ${bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(2)} MiB`}`,
    `parameters   ${fmt(parameters)}`,
    `layers       ${c.layers}`,
    `heads        ${c.H}${c.Hkv !== c.H ? ` (${c.Hkv} key/value heads)` : ''}`,
    `d            ${c.d}`,
    `dk           ${c.dk} per head (${c.dk * c.H} total)`,
    `dv           ${c.dv} per head (${c.dv * c.H} total)`,
    `MLP          SwiGLU, intermediate ${I ?? '?'}${legacy ? ' (fused gate_proj)' : ''}`,
    `norm eps     ${c.eps}`,
    `activation   ${c.act}`,
    `tokenizer    ${tok ? `${mf.tokenizerPath}: ${fmt(tok.vocabSize)} ids, BOS ${tok.bosId}, EOS ${tok.eosId}` : 'none (no tokenizer.json: token ids only)'}`,
    ...(out.unknownConfigKeys.length ? [`config keys  not known to this loader (ignored): ${out.unknownConfigKeys.join(', ')}`] : []),
  ].join('\n'));
  return 0;
}

export default info;
