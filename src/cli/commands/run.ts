// `retnet run`: a [B, L, d] tensor from a safetensors file through a
// checkpoint, streamed: rows are read by range and written by range, so
// memory stays bounded whatever L is.
import { existsSync, statSync } from 'node:fs';
import { RetNet, SafetensorsFile, SafetensorsWriter, type RowSink, type RowSource, type ForwardOptions } from '../../index.js';
import { listNames, quote } from '../../errors.js';
import { UsageError, backendName, kernelsName, parse, progressBar, type Command } from '../command.js';
import { intOption, workersOption } from '../numbers.js';
import { AtomicOutput, RUN_OUTPUT_MARK, checkOutputTarget } from '../safe-output.js';
import { actOption } from './info.js';
import { checkKernelsEnv, checkWasmOnlyFlags } from '../lm-util.js';
import { chunkedAs } from '../../options.js';

/** Longest sequence the parallel form is run for: it materialises an L×L
 *  decay/score matrix per head (16384² float64 = 2 GiB). */
export const MAX_PARALLEL_L = 16384;

const usage = `usage: retnet run --model M.safetensors --input X.safetensors --out Y.safetensors [--key NAME] [--chunk-size N | --chunks N] [--backend wasm|js|tfjs] [--kernels auto|wasm|blas|dnnl] [--workers N] [--normalize-attn] [--normalize-retn] [--msr-gate-fn F --mlp-gate-fn F]

Runs the RetNet in M over the [B, L, d] tensor of X and writes the output as
tensor "output" ([B, L, d], F32) of Y. The input is read and the output
written window by window (bounded memory for any L).

options:
  --model M         checkpoint (the seed's PyTorch state_dict names)
  --input X         safetensors file with the input
  --key NAME        tensor of X to use (default: its only tensor)
  --out Y           output file, replaced only when the run succeeds (written
                    to a temporary file beside it, then renamed); refused when
                    it is the input or the model (also through a link), not
                    a regular file, or an existing file that is not an earlier
                    run's output (one tensor "output"; a checkpoint or any
                    other safetensors file is never replaced)
  --chunks N        N chunks of ceil(L/N) tokens; -1 = fully recurrent
  --chunk-size N    chunks of N tokens
                    (neither: the parallel form, refused for L > ${MAX_PARALLEL_L}: it needs an L×L matrix per head)
  --backend B       wasm (default), js (float64 reference) or tfjs
  --kernels K       kernel engine (wasm): auto (default: blas when a CBLAS library loads), wasm, blas
                    or dnnl (oneDNN's float32 matmul for the products; needs libdnnl2)
  --workers N       worker threads (wasm; 1 to 256)
  --normalize-attn  the paper's decay normalisation
  --normalize-retn  divide retention rows by max(1, |row sum|)
  --msr-gate-fn F   retention gate activation (default: from the checkpoint, else gelu)
  --mlp-gate-fn F   MLP activation (default: from the checkpoint, else gelu)
  -h, --help        this text`;

const run: Command = {
  name: 'run',
  summary: 'stream a [B, L, d] tensor through a checkpoint, safetensors in and out',
  usage,
  async run(argv) {
    const a = parse({ usage }, argv, {
      model: { type: 'string' }, input: { type: 'string' }, key: { type: 'string' }, out: { type: 'string' },
      chunks: { type: 'string' }, 'chunk-size': { type: 'string' }, backend: { type: 'string' }, kernels: { type: 'string' }, workers: { type: 'string' },
      'normalize-attn': { type: 'boolean' }, 'normalize-retn': { type: 'boolean' },
      'msr-gate-fn': { type: 'string' }, 'mlp-gate-fn': { type: 'string' },
    });
    if (!a) return 0;
    const v = a.values;
    for (const k of ['model', 'input', 'out'] as const) if (!v[k]) throw new UsageError(`--${k} is required`);
    if (v.chunks !== undefined && v['chunk-size'] !== undefined) throw new UsageError('give --chunks or --chunk-size, not both');
    const numChunks = intOption('chunks', v.chunks, { allowMinusOne: true });
    const chunkSize = intOption('chunk-size', v['chunk-size']);
    const opts: ForwardOptions = {
      backend: backendName('backend', v.backend ?? 'wasm'), workers: workersOption('workers', v.workers), kernels: kernelsName('kernels', v.kernels),
      normalizeAttn: v['normalize-attn'] ?? false, normalizeRetn: v['normalize-retn'] ?? false,
      ...(numChunks !== undefined ? { numChunks } : chunkSize !== undefined ? { chunkSize } : { numChunks: null }),
    };
    checkWasmOnlyFlags([opts.backend], { '--workers': v.workers, '--kernels': v.kernels });
    checkKernelsEnv([opts.backend], v.kernels);
    const msrGateFn = actOption('msr-gate-fn', v['msr-gate-fn']), mlpGateFn = actOption('mlp-gate-fn', v['mlp-gate-fn']);
    const outPath = v.out!;
    // before any work: --out must not be an input (also through a link) nor a special file
    const target = checkOutputTarget(outPath, [{ label: '--input', path: v.input }, { label: '--model', path: v.model }], '--out', { kind: 'safetensors' });

    let model: RetNet | null = null;
    let input: SafetensorsFile | null = null;
    let output: AtomicOutput | null = null;
    let writer: SafetensorsWriter | null = null;
    let bar: Awaited<ReturnType<typeof progressBar>> | null = null;
    try {
      input = SafetensorsFile.open(v.input!);
      const names = [...input.tensors.keys()];
      let key = v.key;
      if (key === undefined) {
        if (names.length !== 1) throw new Error(`${v.input}: has ${names.length} tensors (${listNames(names)}); choose one with --key`);
        key = names[0];
      }
      if (!input.has(key)) throw new Error(`${v.input}: no tensor named ${quote(key)} (it has ${listNames(names)})`);
      const t = input.info(key);
      const shape = `[${t.shape.join(', ')}]`;
      if (!['F32', 'F64', 'F16', 'BF16'].includes(t.dtype)) throw new Error(`${v.input}: tensor ${quote(key)} has dtype ${t.dtype}; the input must be float (F32, F64, F16, BF16)`);
      if (t.shape.length !== 3) throw new Error(`${v.input}: tensor ${quote(key)} has shape ${t.shape.length <= 8 ? shape : `of ${t.shape.length} dimensions`}; expected [batch, length, d]`);
      const [B, L] = t.shape;
      if (B < 1 || L < 1) throw new Error(`${v.input}: tensor ${quote(key)} is empty (shape ${shape})`);
      // the chunk checks depend on the flags and the input's L only: usage errors (exit 2) before the model
      // loads, as bench's (before: exit 1, after loading the model)
      if (opts.numChunks === null && L > MAX_PARALLEL_L) {
        throw new UsageError(`L = ${L} is too long for the parallel form (it builds an L×L decay/score matrix per head: ${L}² × 8 bytes = ${((L * L * 8) / 2 ** 30).toFixed(1)} GiB each); use --chunk-size N or --chunks N (the results are the same), or --chunks -1 for the recurrent form`);
      }
      // a chunk as long as the parallel form's limit builds the same C×C matrix per head (--chunks 1 is
      // the parallel form; a --chunk-size of L or more one chunk of L tokens)
      const C = opts.numChunks === null || opts.numChunks === -1 ? 0 : opts.numChunks !== undefined ? chunkedAs(L, opts.numChunks).chunkSize : Math.min(L, opts.chunkSize!);
      if (C > MAX_PARALLEL_L) {
        const flag = opts.numChunks !== undefined ? `--chunks ${opts.numChunks}` : `--chunk-size ${opts.chunkSize}`;
        throw new UsageError(`${flag} makes chunks of ${C} tokens (L = ${L}), over ${MAX_PARALLEL_L}: each builds a ${C}×${C} decay/score matrix per head (${((C * C * 8) / 2 ** 30).toFixed(1)} GiB each); use chunks of at most ${MAX_PARALLEL_L} tokens (the results are the same), or --chunks -1 for the recurrent form`);
      }
      // a model folder is for the text commands (before: "is a directory", nothing more)
      if (existsSync(v.model!) && statSync(v.model!).isDirectory()) {
        throw new UsageError(`--model ${v.model} is a model folder: run takes a .safetensors RetNet checkpoint (the seed's names); a folder's language model scores text with \`retnet score --model DIR\``);
      }
      model = await RetNet.load(v.model!, { msrGateFn, mlpGateFn });
      const d = model.dims.d;
      if (t.shape[2] !== d) throw new Error(`${v.input}: tensor ${quote(key)} has shape ${shape}; expected [batch, length, ${d}] (the model's d is ${d})`);
      const inp = input;
      const source: RowSource = {
        lengths: Array.from({ length: B }, () => L),
        read(seq, start, into) {
          const got = inp.readElements(key!, (seq * L + start) * d, into.length);
          into.set(got as Float32Array | Float64Array);
        },
      };
      output = AtomicOutput.create(target);
      writer = new SafetensorsWriter(output.tempPath, [{ name: 'output', dtype: 'F32', shape: [B, L, d] }], {
        model: v.model!, input: v.input!, key, options: JSON.stringify({ ...opts, numChunks: opts.numChunks ?? null }),
        // the activations that ran (the flags, or the checkpoint's own): a gelu and a silu run of one file differ
        activations: JSON.stringify(model.acts),
        ...RUN_OUTPUT_MARK, // a later run may replace this file; no other safetensors file (safe-output.ts)
      });
      const w = writer;
      // every output row is checked: a non-finite value fails the run (exit 1) instead of being written
      const sink: RowSink = {
        write(seq, start, rows) {
          const f32 = rows instanceof Float32Array ? rows : Float32Array.from(rows);
          for (let i = 0; i < f32.length; i++) {
            if (!Number.isFinite(f32[i])) {
              const row = start + Math.floor(i / d);
              throw new Error(`the output has a non-finite value (${f32[i]}) at sequence ${seq}, position ${row}, channel ${i % d}; nothing was written to ${outPath} (check the model's weights and the input for huge or non-finite values)`);
            }
          }
          w.write('output', (seq * L + start) * d, f32);
        },
      };
      bar = await progressBar('retnet run');
      const t0 = performance.now();
      await model.forwardStream(source, sink, { ...opts, onProgress: (done, total) => bar!.update(done, total) });
      bar.stop(); bar = null;
      writer.close(); writer = null;
      output.commit(); output = null;
      const s = (performance.now() - t0) / 1000;
      if (process.stderr.isTTY) process.stderr.write(`retnet run: ${B}×${L} tokens in ${s.toFixed(2)} s (${Math.round((B * L) / s)} tokens/s) → ${outPath}\n`);
      return 0;
    } catch (e) {
      bar?.stop();
      writer?.close();
      output?.abort(); // removes only the temporary file; --out is untouched
      throw e;
    } finally {
      input?.close();
      await model?.close();
    }
  },
};
export default run;
