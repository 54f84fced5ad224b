// `retnet info M.safetensors`: the architecture a checkpoint implies.
import { RetNet, RetNetLM, SafetensorsFile } from '../../index.js';
import { layersToTensors } from '../../model/weights.js';
import { ACTIVATIONS, type ActName } from '../../reference/ops.js';
import { UsageError, parse, type Command } from '../command.js';

const usage = `usage: retnet info M.safetensors [--msr-gate-fn F] [--mlp-gate-fn F] [--json]

Loads a checkpoint (the seed's PyTorch state_dict names) and prints the
architecture read from it: layers, heads, d, dk, dv, MLP widths, activations
and parameter count. Activations come from the file's __metadata__.config,
else the options, else gelu. A byte-level language-model checkpoint (one with
embed.weight, like the shipped src/assets/bytes-4x128.safetensors) is
described too: vocabulary, embedding, final norm and head.

options:
  --msr-gate-fn F   retention gate activation (${ACTIVATIONS.join(', ')})
  --mlp-gate-fn F   MLP activation
  --json            print JSON instead of text
  -h, --help        this text`;

export function actOption(name: string, v: string | undefined): ActName | undefined {
  if (v === undefined) return undefined;
  if (!(ACTIVATIONS as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${ACTIVATIONS.join(', ')} (got ${JSON.stringify(v)})`);
  return v as ActName;
}

const info: Command = {
  name: 'info',
  summary: 'the architecture read from a checkpoint',
  usage,
  async run(argv) {
    const a = parse({ usage }, argv, { 'msr-gate-fn': { type: 'string' }, 'mlp-gate-fn': { type: 'string' }, json: { type: 'boolean' } }, true);
    if (!a) return 0;
    if (a.positionals.length !== 1) throw new UsageError(a.positionals.length === 0 ? 'give one checkpoint file' : `give one checkpoint file (got ${a.positionals.length})`);
    const path = a.positionals[0];
    const acts = { msrGateFn: actOption('msr-gate-fn', a.values['msr-gate-fn']), mlpGateFn: actOption('mlp-gate-fn', a.values['mlp-gate-fn']) };
    const f = SafetensorsFile.open(path);
    const dtypes = [...new Set([...f.tensors.values()].map((t) => t.dtype))];
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
      `file         ${path} (${dtypes.join(', ')})`,
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
export default info;
