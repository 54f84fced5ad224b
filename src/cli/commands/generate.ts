// `retnet generate`: continue a prompt byte by byte with the recurrent step.
import { RetNetLM } from '../../lm/retnet-lm.js';
import { parse } from '../command.js';
import { intOption, numberOption } from '../numbers.js';
import { processIO, runCommand, UsageError, type Command, type CommandIO } from '../lm-util.js';

const usage = `usage: retnet generate [--model M.safetensors] --prompt TEXT [--max-bytes N] [--temperature T] [--seed S] [--backend wasm|js]
  Consumes TEXT (chunkwise, float64), then produces N bytes (default 256) one at a time
  with the recurrent step: greedy at temperature 0 (default), else seeded sampling.
  --backend: the step's arithmetic, wasm (default: WASM kernels, float32 activations,
  float64 state) or js (float64 throughout).
  Prints the prompt and its continuation on stdout, the decode rate on stderr.
  -h, --help   this text`;

export const generate: Command = {
  name: 'generate',
  summary: 'continue a prompt with a byte-level RetNet language model (recurrent decoding)',
  usage,
  run(argv: string[], io: CommandIO = processIO()): Promise<number> {
    return runCommand(io, usage, async () => {
      const a = parse({ usage }, argv, {
        model: { type: 'string' }, prompt: { type: 'string' }, 'max-bytes': { type: 'string' },
        temperature: { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' },
      }, true, io.stdout);
      if (!a) return;
      const { values, positionals } = a;
      if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
      if (values.prompt === undefined || values.prompt === '') throw new UsageError('--prompt TEXT is required (at least one byte)');
      const maxBytes = intOption('max-bytes', values['max-bytes'], { min: 0 }) ?? 256;
      const temperature = numberOption('temperature', values.temperature, { min: 0 }) ?? 0;
      const seed = intOption('seed', values.seed, { min: 0, max: 2 ** 32 - 1 }) ?? 0;
      const backend = values.backend ?? 'wasm';
      if (backend !== 'wasm' && backend !== 'js') throw new UsageError(`--backend must be wasm or js (got ${JSON.stringify(backend)})`);
      const lm = await RetNetLM.load(values.model);
      try {
        const prompt = new TextEncoder().encode(values.prompt);
        io.stdout.write(prompt);
        const pending: number[] = [];
        const flush = () => { if (pending.length) { io.stdout.write(Uint8Array.from(pending)); pending.length = 0; } };
        const r = await lm.generate({
          prompt, maxBytes, temperature, seed, backend,
          onByte: (b) => { pending.push(b); if (b === 10 || pending.length >= 64) flush(); },
        });
        flush();
        io.stdout.write('\n');
        const rate = r.decodeSeconds > 0 ? Math.round(r.bytes.length / r.decodeSeconds) : 0;
        io.stderr.write(`${r.bytes.length} bytes in ${r.decodeSeconds.toFixed(2)} s: ${rate} bytes/s decode (recurrent step, ${backend}); prompt ${prompt.length} bytes in ${r.prefillSeconds.toFixed(2)} s\n`);
      } finally {
        await lm.close();
      }
    });
  },
};

export default generate;
