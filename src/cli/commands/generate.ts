// `retnet generate`: continue a prompt byte by byte with the recurrent step.
import { parse } from '../command.js';
import { intOption, numberOption } from '../numbers.js';
import { statSync } from 'node:fs';
import { checkPrecisionBackends, loadLM, needTokenizer, parsePrecision, processIO, progressBar, readInput, runCommand, UsageError, type Command, type CommandIO } from '../lm-util.js';
import { DEFAULT_LM_CHUNK } from '../../lm/retnet-lm.js';
import { stepPrecision } from '../../options.js';

const usage = `usage: retnet generate [--model M.safetensors|DIR|ORG/NAME] (--prompt TEXT | --prompt-file FILE) [--max-bytes N | --max-new-tokens N]
                       [--temperature T] [--top-k K] [--top-p P] [--stop TEXT]... [--seed S] [--backend wasm|js]
                       [--precision f32|bf16] [--state-dtype float64|float32]
  Consumes TEXT (or FILE's UTF-8 text; - = stdin) into the recurrent state by the chunkwise form
  (chunks of 256 tokens; a progress bar on a terminal), then produces tokens one at a time with the
  recurrent step: greedy at temperature 0 (default), else seeded sampling (optionally among the
  top K tokens / the smallest set of probability P). The byte LM (default model) produces --max-bytes bytes
  (default 256); a tokenized model (a fla-hub folder) --max-new-tokens tokens (default 64),
  and stops early at its EOS token or at any --stop text (not printed).
  --backend: the step's arithmetic, wasm (default: WASM kernels, float32 activations,
  float64 state) or js (float64 throughout).
  --precision: the wasm step's matrix products, f32 (default, or RETNET_PRECISION) or bf16
  (bfloat16 operands, float32 sums: oneDNN on all cores where the CPU has bfloat16 dot
  products, else rounded operands on the WASM kernels; speeds in docs/benchmarks.md).
  --state-dtype: the recurrent state, float64 (default) or float32 (rounded after every
  update: half the bytes a step reads and writes for it).
  Prints the prompt and its continuation on stdout; on stderr the prompt's tokens and time, then
  the generation's.
  -h, --help   this text`;

export const generate: Command = {
  name: 'generate',
  summary: 'continue a prompt with a RetNet language model (recurrent decoding)',
  usage,
  run(argv: string[], io: CommandIO = processIO()): Promise<number> {
    return runCommand(io, usage, async () => {
      const a = parse({ usage }, argv, {
        model: { type: 'string' }, prompt: { type: 'string' }, 'prompt-file': { type: 'string' }, 'max-bytes': { type: 'string' },
        temperature: { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' }, precision: { type: 'string' }, 'state-dtype': { type: 'string' },
        'max-new-tokens': { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' }, stop: { type: 'string', multiple: true },
      }, true, io.stdout);
      if (!a) return;
      const { values, positionals } = a;
      if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
      if (values.prompt !== undefined && values['prompt-file'] !== undefined) throw new UsageError('give --prompt TEXT or --prompt-file FILE, not both');
      if (values['prompt-file'] === undefined && (values.prompt === undefined || values.prompt === '')) throw new UsageError('--prompt TEXT is required (at least one byte), or --prompt-file FILE');
      const maxBytes = intOption('max-bytes', values['max-bytes'], { min: 0 }) ?? 256;
      const temperature = numberOption('temperature', values.temperature, { min: 0 }) ?? 0;
      const seed = intOption('seed', values.seed, { min: 0, max: 2 ** 32 - 1 }) ?? 0;
      const backend = values.backend ?? 'wasm';
      if (backend !== 'wasm' && backend !== 'js') throw new UsageError(`--backend must be wasm or js (got ${JSON.stringify(backend)})`);
      const precision = parsePrecision(values.precision, [backend]); // RETNET_PRECISION too, on wasm
      checkPrecisionBackends(precision, [backend]); // the rule score, bench and the corpus mode share
      const stateDtype = values['state-dtype'] ?? 'float64';
      if (stateDtype !== 'float64' && stateDtype !== 'float32') throw new UsageError(`--state-dtype must be float64 or float32 (got ${JSON.stringify(stateDtype)})`);
      const topK = intOption('top-k', values['top-k'], { min: 0 }) ?? 0;
      // the range in the message (before: "--top-p must be a number ≥ 0" for 1e-1, whose range is (0, 1])
      const topP = numberOption('top-p', values['top-p'], { min: 0, max: 1, minExclusive: true }) ?? 1;
      // top-k and top-p filter a sampled choice: at temperature 0 (greedy) a value that would filter does nothing
      // (before: accepted and ignored, so `--top-k 50 --seed 2` gave the greedy text); their "off" values
      // (--top-k 0, --top-p 1) stay accepted there
      if (temperature === 0 && (topK > 0 || topP < 1)) {
        throw new UsageError(`${topK > 0 ? '--top-k' : '--top-p'} acts only when sampling: give --temperature T > 0 with it (at temperature 0, the default, the most likely token is taken)`);
      }
      const stop = (values.stop as string[] | undefined) ?? [];
      if (stop.some((x) => x === '')) throw new UsageError('--stop TEXT must not be empty');
      // every number checked before the model loads (before: --max-new-tokens only after loading and packing it)
      const maxNewTokens = intOption('max-new-tokens', values['max-new-tokens'], { min: 0 }) ?? 64;
      if (temperature === 0 && values.seed !== undefined) io.stderr.write('note: --seed has no effect at temperature 0 (greedy decoding draws nothing)\n');
      const prompt = values['prompt-file'] !== undefined ? await readPrompt(values['prompt-file'], io) : values.prompt!;
      needTokenizer(values.model, 'generate');
      const lm = await loadLM(values.model);
      try {
        // the flags that depend on the kind of model, before the packing (before: after it, seconds on a 1.3B)
        if (lm.tokenizer.kind !== 'bytes') {
          if (values['max-bytes'] !== undefined) throw new UsageError('--max-bytes is for the byte LM; a tokenized model takes --max-new-tokens');
        } else if (values['max-new-tokens'] !== undefined || topK !== 0 || topP !== 1 || stop.length) {
          throw new UsageError('--max-new-tokens, --top-k, --top-p and --stop are for tokenized models (a fla-hub folder); the byte LM takes --max-bytes and --temperature');
        }
        // a folder without tokenizer.json cannot encode the prompt: fail before the packing (before: after it,
        // seconds on a 1.3B) and before anything reaches stdout
        const promptIds = lm.tokenizer.kind !== 'bytes' ? lm.tokenizer.encode(prompt) : null;
        // the one-time packing first, timed apart, so that the prompt's and the generation's times are their own
        const setup = backend === 'wasm' ? lm.warmUp({ precision, stateDtype }) : 0;
        if (promptIds) {
          io.stdout.write(prompt);
          let t1 = 0, promptTokens = 0, promptSeconds = 0;
          // a progress bar (on a terminal) for a prompt of more than one chunk
          let bar: Awaited<ReturnType<typeof progressBar>> | null = null;
          const onPrefill = (done: number, total: number, sec: number) => {
            if (done < total) { bar?.update(done); return; }
            bar?.stop();
            promptTokens = total; promptSeconds = sec; t1 = performance.now();
          };
          if (promptIds.length > DEFAULT_LM_CHUNK) bar = await progressBar(io, promptIds.length, 'prompt');
          let generated = 0;
          const onToken = () => { generated++; };
          for await (const piece of lm.stream(promptIds, { maxNewTokens, temperature, topK, topP, seed, stop, backend, precision, stateDtype, onPrefill, onToken })) { io.stdout.write(piece); }
          io.stdout.write('\n');
          const decodeSeconds = (performance.now() - t1) / 1000;
          // the precision that ran: the flag, else RETNET_PRECISION on the wasm step (before: the flag only)
          const how = `${backend}${stepPrecision(backend, precision) === 'bf16' ? ', bf16' : ''}${stateDtype === 'float32' ? ', float32 state' : ''}`;
          const si = lm.model.stepInfo();
          io.stderr.write((setup > 0 ? `setup ${setup.toFixed(2)} s (the weights packed for the step and the head); ` : '') +
            `prompt ${promptTokens} tokens in ${promptSeconds.toFixed(2)} s (chunkwise, ${perSecond(promptTokens, promptSeconds)} tokens/s); ` +
            `generated ${generated} token${generated === 1 ? '' : 's'} in ${decodeSeconds.toFixed(2)} s (${perSecond(generated, decodeSeconds)} tokens/s, recurrent step, ${how})\n`);
          if (backend === 'wasm' && si) io.stderr.write(`engines: step ${si.step}; prompt ${si.prefill}\n`);
          return;
        }
        const promptBytes = new TextEncoder().encode(prompt);
        io.stdout.write(prompt);
        // the bytes as UTF-8 text, as the library's text API gives them: a byte sequence that is not UTF-8
        // becomes U+FFFD, a character cut by --max-bytes too (before: the raw bytes, invalid UTF-8 on stdout)
        const dec = lm.tokenizer.streamDecoder(promptBytes);
        let pending = '';
        const flush = () => { if (pending) { io.stdout.write(pending); pending = ''; } };
        const r = await lm.generate({
          prompt: promptBytes, maxBytes, temperature, seed, backend, precision, stateDtype,
          onByte: (b) => { pending += dec.push(b); if (b === 10 || pending.length >= 64) flush(); },
        });
        pending += dec.flush();
        flush();
        io.stdout.write('\n');
        const rate = r.decodeSeconds > 0 ? Math.round(r.bytes.length / r.decodeSeconds) : 0;
        io.stderr.write(`${r.bytes.length} bytes in ${r.decodeSeconds.toFixed(2)} s: ${rate} bytes/s decode (recurrent step, ${backend}); prompt ${promptBytes.length} bytes in ${r.prefillSeconds.toFixed(2)} s` +
          (setup > 0 ? `; setup ${setup.toFixed(2)} s (the weights packed for the step and the head)` : '') + '\n');
      } finally {
        await lm.close();
      }
    });
  },
};

/** The text of --prompt-file (- = stdin): UTF-8, at least one byte. */
async function readPrompt(file: string, io: CommandIO): Promise<string> {
  if (file !== '-') {
    let st;
    try { st = statSync(file); } catch (e) { throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
    // a pipe or a terminal reads as stdin does (`--prompt-file <(…)`, /dev/stdin); only a folder is refused
    // (before: anything but a regular file)
    if (st.isDirectory()) throw new Error(`${file}: is a directory, not a prompt file`);
  }
  const bytes = await readInput(file, io);
  const name = file === '-' ? 'stdin' : file;
  if (bytes.length === 0) throw new Error(`${name} is empty: a prompt needs at least one byte`);
  try { return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes); } catch {
    throw new Error(`${name} is not UTF-8 text`);
  }
}

/** n / seconds: a whole number from 100 up, else 3 significant digits ('-' for no time). */
function perSecond(n: number, seconds: number): string {
  if (!(seconds > 0)) return '-';
  const r = n / seconds;
  return r >= 100 ? String(Math.round(r)) : r.toPrecision(3); // no exponent form
}

export default generate;
