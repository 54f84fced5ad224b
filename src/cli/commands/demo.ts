// The main job: the seed README's example (6 layers, 8 heads, d=512, value
// factor 2, gelu, MLP 4·d; input randint(0,100) [2, 1024, 512], seed 1) in
// parallel and chunked (8 chunks) form, with their agreement and timing.
import { RetNet, Tensor, maxAbsDiff, relMaxError } from '../../index.js';
import { backendName, kernelsName, modelConfig, parse, type Command } from '../command.js';
import { intOption, workersOption } from '../numbers.js';
import { checkKernelsEnv, checkWasmOnlyFlags, writeEngineNotes } from '../lm-util.js';
import { chunkedAs } from '../../options.js';

const usage = `usage: retnet [demo] [--small] [--backend wasm|js|tfjs] [--kernels auto|wasm|blas|dnnl] [--workers N] [--chunks K]

The main job: the seed README's example (6 layers, 8 heads, d=512, value
factor 2, gelu, MLP 4·d, input randint(0,100) of shape [2, 1024, 512], seed 1)
in parallel form and chunkwise (8 chunks), printing the agreement (max abs and
max relative difference) and the time and tokens/s of each.

options:
  --small           a quick run: 2 layers, 4 heads, d=64, [2, 128, 64]
  --backend B       wasm (default; the chunk-parallel worker pool), js (float64 reference) or tfjs
  --kernels K       the wasm backend's kernel engine: auto (default: blas when a CBLAS library
                    such as OpenBLAS loads, else wasm), wasm, blas (native GEMMs; an error if none loads),
                    or dnnl (oneDNN's float32 matmul for the GEMMs; an error if libdnnl2 does not load)
  --workers N       worker threads for the wasm backend (default: all cores; at most 256)
  --chunks K        chunk count of the chunkwise run (default 8; -1 = the recurrent form)
  -h, --help        this text`;

const demo: Command = {
  name: 'demo',
  summary: 'the main job (what `retnet` with no command runs): parallel vs chunkwise on the seed example',
  usage,
  async run(argv) {
    const a = parse({ usage }, argv, {
      small: { type: 'boolean' }, backend: { type: 'string' }, kernels: { type: 'string' }, workers: { type: 'string' }, chunks: { type: 'string' },
    });
    if (!a) return 0;
    const backend = backendName('backend', a.values.backend ?? 'wasm');
    const workers = workersOption('workers', a.values.workers);
    const kernels = kernelsName('kernels', a.values.kernels);
    checkWasmOnlyFlags([backend], { '--workers': a.values.workers, '--kernels': a.values.kernels });
    checkKernelsEnv([backend], a.values.kernels);
    const chunks = intOption('chunks', a.values.chunks, { allowMinusOne: true }) ?? 8;
    const small = a.values.small ?? false;
    const cfg = small ? modelConfig(2, 64, 4) : modelConfig(6, 512, 8);
    const [B, L] = small ? [2, 128] : [2, 1024];
    const model = RetNet.init(cfg);
    try {
      const x = Tensor.randint(0, 100, [B, L, cfg.dimModel], { seed: 1 });
      console.log(`RetNet: ${cfg.numLayer} layers, ${cfg.numHeads} heads, d=${cfg.dimModel}, value factor ${cfg.valueFactor}, gelu, MLP ${cfg.mlpMult}·d; input randint(0,100) [${B}, ${L}, ${cfg.dimModel}] (seed 1)`);
      const time = async (label: string, numChunks: number | null, note = '') => {
        const t0 = performance.now();
        const y = await model.forward(x, { attnMask: 'causal', numChunks, backend, kernels, workers });
        const s = (performance.now() - t0) / 1000;
        console.log(`  ${label.padEnd(22)} ${s.toFixed(3)} s  ${Math.round((B * L) / s).toLocaleString('en-US')} tokens/s${note}`);
        return y;
      };
      // start the backend (worker pool) and make the buffers of this size first, untimed, with the first timed
      // run's own input and form, so neither timing includes it (a warm-up on 8 tokens left ~0.07 of the
      // parallel form's 0.8 s at the default size: its buffers were made in the timed run)
      await model.forward(x, { attnMask: 'causal', numChunks: null, backend, kernels, workers });
      const p = await time('parallel', null);
      // the chunks that ran: numChunks k is chunks of ceil(L/k) tokens, fewer than k when k does not divide L
      // or exceeds it (--chunks 1000 at L = 128: 128 chunks of 1 token), said as bench says it
      const ran = chunkedAs(L, Math.max(chunks, 1));
      const c = await time(chunks === -1 ? 'recurrent (chunks -1)' : `chunkwise (${ran.chunks} chunks)`, chunks,
        chunks > 0 && ran.chunks !== chunks ? `  (--chunks ${chunks} at L = ${L}: ran ${ran.chunks} chunks of ${ran.chunkSize} token${ran.chunkSize === 1 ? '' : 's'})` : '');
      const engines = (await model.backendInfo()).map((i) => `${i.engine} on ${i.device}`).join('; ');
      console.log(`backend: ${backend}${engines ? ` (${engines})` : ' (float64 reference)'}`);
      // why the engine is not the one 'auto' prefers (no CBLAS library, RETNET_BLAS naming one that does not load, …)
      await writeEngineNotes(model, process.stdout);
      console.log(`agreement: max|Δ| = ${maxAbsDiff(c, p).toExponential(2)}, max|Δ|/max|parallel| = ${relMaxError(c, p).toExponential(2)}`);
    } finally {
      await model.close();
    }
    return 0;
  },
};
export default demo;
