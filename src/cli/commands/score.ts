// `retnet score`: bits per byte of files under a byte-level RetNet LM.
import { MAX_PARALLEL_L } from './run.js';
import { closeSync, openSync, statSync } from 'node:fs';
import { DEFAULT_LM_PATH, RetNetLM } from '../../lm/retnet-lm.js';
import { modelFiles, modelFolderFiles, resolveModelDir } from '../../model/fla.js';
import { fileURLToPath } from 'node:url';
import { scoreCorpus } from '../../corpus/score-corpus.js';
import { firstBadUtf8 } from '../../corpus/readers.js';
import { parse } from '../command.js';
import { errors } from '../../errors.js';
import { corpusOptionSpec, runCorpusMode, wantsCorpusMode } from '../corpus-cli.js';
import { intOption } from '../numbers.js';
import { predictedBytes, writeAll } from '../../corpus/writer.js';
import { AtomicOutput, checkOutputTarget } from '../safe-output.js';
import { checkPrecisionBackends, loadLM, needTokenizer, parseBackend, parsePrecision, processIO, progressBar, readInput, runCommand, writeEngineNotes, UsageError, type Command, type CommandIO } from '../lm-util.js';

const usage = `usage: retnet score [--model M.safetensors|DIR|ORG/NAME] [--backend js|wasm|tfjs] [--chunk-size N] [--precision f32|bf16] [--jsonl OUT] [--per-token] FILE...
       retnet score [--out SCORES.jsonl[.gz]] [corpus options] INPUT...
  Scores each FILE ('-' = stdin) under a RetNet language model and prints bytes, total bits,
  bits/byte and tokens/s per file (a tokenized model: also tokens and perplexity).
  --model       the shipped byte-level bytes-4x128 (default), a byte-LM .safetensors, or a
                fla-hub RetNet: a Hugging Face folder (config.json, *.safetensors,
                tokenizer.json) or ORG/NAME already in the local Hugging Face cache
  --backend B   wasm (default: the worker pool's WASM/BLAS kernels), js (the float64 reference)
                or tfjs (a GPU where one is found; docs/gpu.md)
  --chunk-size N  tokens per chunk of the chunkwise form (default 256; at most 16384)
  --jsonl OUT   one JSON record per file: {"file","bytes","bits","bits_per_byte"}; written
                to a temporary file and renamed when every file is scored (a failed run
                leaves OUT as it was); refused when OUT is one of the FILEs or the model,
                or an existing file that is not JSON Lines (docs/cli.md, outputs)
  --per-token   with --jsonl, --out or a corpus, add "logprobs": ln p(token t+1 | tokens 0..t) for each t
  --precision P f32 (default, or RETNET_PRECISION) or bf16: bfloat16 operands of the big matrix
                products, float32 accumulation (wasm backend; oneDNN where the CPU has bfloat16
                dot products, else rounded operands on the usual engine); see docs/engines.md

  Corpus mode: with --out, or when any INPUT is a corpus: a directory (walked recursively,
  sorted), *.jsonl / *.ndjson / *.json, each also .gz or .zst (one JSON document per line) or
  *.parquet. Then every INPUT is read as a corpus: JSONL and Parquet give one document per
  line/row, any other file (plain text, '-') is one document. One record per document, in
  input order: {"id","source","bytes","bits","bits_per_byte"}; a summary on stderr.
  Without --out the records go to stdout as they are scored (the same lines --out writes).
  --out FILE            output (.jsonl or .jsonl.gz), written as FILE.partial and renamed when complete
  --resume              continue an interrupted run from FILE.partial (same inputs, model, options; needs --out);
                        without it an existing FILE.partial is refused, never deleted
  --text-field NAME     JSONL/Parquet field with the text (default text)
  --id-field NAME       field with the id (default id; missing → FILE:LINE)
  --include GLOB        files to take from directories (default every regular file)
  --strict              a bad JSONL line / Parquet row is an error (default: reported and skipped)
  --max-doc-bytes N     longest JSONL line / document, in bytes (default 67108864 = 64 MiB);
                        a longer one is a bad record
  --summary-json FILE   the summary as JSON (snake_case fields: run_id, bits_per_byte, …); an
                        existing FILE must be an earlier summary (those fields), else it is refused
  --shard-bytes N       text bytes per shard / ragged batch (default 4194304)
  --queue redis://[user:pass@]host:port[/db]   (or rediss://) coordinate \`retnet worker\`s
                        through BullMQ on that Redis instead of scoring here (needs --out)
  --run-id ID           the queue run (default: a digest of inputs, model and options);
                        the same run id resumes: finished shards are not scored again
  --max-in-flight N     shards on the queue at once (default 8)
  --redis-timeout SEC   give up when Redis is unreachable this long (default 30)
  -h, --help            this text

  Exit codes: 0 ok, 1 error (nothing written to --out; a failed run before its first record
  leaves no FILE.partial), 2 bad command line.`;

/** Fail early (before loading the model) on a missing, unreadable or non-regular file. */
function checkFile(file: string): void {
  if (file === '-') return;
  let st;
  try { st = statSync(file); } catch (e) { throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  if (st.isDirectory()) throw new Error(`${file}: is a directory (give the files in it, or score it as a corpus with --out)`);
  if (!st.isFile()) throw new Error(`${file}: not a regular file`);
}

/** A score that is not a finite number (weights that overflow float32 on this text): exit 1, never a "NaN bits/byte" line. */
function nonFinite(name: string, bits: number): Error {
  return errors.input(`${name}: the model's score is ${bits} (not finite): its weights overflow float32 arithmetic on this text; nothing is written`);
}

/** The files of --model: the .safetensors file (default: the shipped one), or every file of a model folder. */
function modelPaths(model: string | undefined): string[] {
  if (model === undefined) return [fileURLToPath(DEFAULT_LM_PATH)];
  if (!RetNetLM.isFolderSpec(model)) return [model];
  try { return modelFolderFiles(modelFiles(resolveModelDir(model))); } catch { return [model]; } // a bad folder is refused when loaded
}

export const score: Command = {
  name: 'score',
  summary: 'bits per byte (and perplexity) of files or corpora under a RetNet language model',
  usage,
  run(argv: string[], io: CommandIO = processIO()): Promise<number> {
    return runCommand(io, usage, async () => {
      const a = parse({ usage }, argv, {
        model: { type: 'string' }, backend: { type: 'string' }, 'chunk-size': { type: 'string' }, precision: { type: 'string' },
        jsonl: { type: 'string' }, 'per-token': { type: 'boolean' },
        ...corpusOptionSpec,
      }, true, io.stdout);
      if (!a) return;
      const { values, positionals } = a;
      if (wantsCorpusMode(values, positionals)) return runCorpusMode(values, positionals, io, scoreCorpus);
      if (positionals.length === 0) throw new UsageError('give at least one FILE (or - for stdin)');
      if (positionals.filter((f) => f === '-').length > 1) throw new UsageError("stdin ('-') can be given only once");
      const backend = parseBackend(values.backend);
      // a chunk longer than the parallel form's limit (its C×C score tiles) is refused here, as run's and bench's
      // (before: after the model loaded, with the library's option names)
      const chunkSize = intOption('chunk-size', values['chunk-size'], { max: MAX_PARALLEL_L });
      const precision = parsePrecision(values.precision as string | undefined, [backend]);
      checkPrecisionBackends(precision, [backend]);
      if (values['per-token'] && values.jsonl === undefined) throw new UsageError('--per-token needs --jsonl OUT');
      // before any work: --jsonl must not be a scored file or the model (also through a link) nor a special file
      const jsonlTarget = values.jsonl === undefined ? undefined
        : checkOutputTarget(values.jsonl, [...positionals.map((f) => ({ label: 'FILE', path: f })), ...modelPaths(values.model).map((path) => ({ label: '--model', path }))], '--jsonl', { kind: 'jsonl' });
      for (const f of positionals) checkFile(f);
      needTokenizer(values.model, 'score');
      const lm = await loadLM(values.model);
      const tokens = lm.tokenizer.kind !== 'bytes'; // a tokenized model: tokens, nll and perplexity as well
      let fd: number | undefined;
      let jsonl: AtomicOutput | undefined;
      try {
        if (jsonlTarget !== undefined) {
          jsonl = AtomicOutput.create(jsonlTarget);
          try { fd = openSync(jsonl.tempPath, 'w'); } catch (e) { throw new Error(`cannot write ${values.jsonl}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
        }
        let allBytes = 0, allBits = 0, allScored = 0, allSec = 0, allTokens = 0, allNll = 0, allPredicted = 0;
        const notes = new Set<string>();
        for (const file of positionals) {
          const bytes = await readInput(file, io);
          const name = file === '-' ? '(stdin)' : file;
          if (tokens) { // a tokenized model scores text: say which file and where, before any work
            const bad = firstBadUtf8(bytes);
            if (bad >= 0) throw errors.input(`${name}: not valid UTF-8 at byte ${bad} (a tokenized model scores text; the byte LM, the default --model, scores any bytes)`);
          }
          const bar = await progressBar(io, bytes.length);
          const t0 = performance.now();
          let r;
          try {
            r = await lm.score(bytes, { backend, chunkSize, precision, perToken: values['per-token'] === true, onProgress: (d) => bar.update(d) });
          } finally { bar.stop(); }
          const sec = (performance.now() - t0) / 1000;
          await writeEngineNotes(lm.model, io.stderr, notes);
          if (!Number.isFinite(r.bits)) throw nonFinite(name, r.bits);
          if (tokens) io.stdout.write(`${name}: ${r.bytes} bytes, ${r.tokens} tokens, ${r.bits.toFixed(1)} bits, ${r.bitsPerByte.toFixed(4)} bits/byte, perplexity ${r.perplexity.toFixed(3)}, ${Math.round(r.tokens / Math.max(sec, 1e-9))} tokens/s\n`);
          else io.stdout.write(`${name}: ${r.bytes} bytes, ${r.bits.toFixed(1)} bits, ${r.bitsPerByte.toFixed(4)} bits/byte, ${Math.round(r.bytes / Math.max(sec, 1e-9))} tokens/s\n`);
          if (fd !== undefined) {
            const rec: Record<string, unknown> = { file: name, bytes: r.bytes, bits: r.bits, bits_per_byte: r.bitsPerByte };
            if (tokens) Object.assign(rec, { tokens: r.tokens, nll: r.nll, ppl: r.perplexity });
            if (r.logprobs) rec.logprobs = Array.from(r.logprobs);
            writeAll(fd, JSON.stringify(rec) + '\n');
          }
          allBytes += r.bytes; allBits += r.bits; allScored += predictedBytes({ bits: r.bits, bits_per_byte: r.bitsPerByte! }); allSec += sec;
          allTokens += r.tokens; allNll += r.nll; allPredicted += Math.max(0, r.tokens - 1);
        }
        if (positionals.length > 1) {
          const bpb = (allScored ? allBits / allScored : 0).toFixed(4);
          // a tokenized model: tokens, and the perplexity over every predicted token of every file (as a corpus summary)
          if (tokens) io.stdout.write(`total: ${allBytes} bytes, ${allTokens} tokens, ${allBits.toFixed(1)} bits, ${bpb} bits/byte, perplexity ${(allPredicted ? Math.exp(allNll / allPredicted) : 1).toFixed(3)}, ${Math.round(allTokens / Math.max(allSec, 1e-9))} tokens/s\n`);
          else io.stdout.write(`total: ${allBytes} bytes, ${allBits.toFixed(1)} bits, ${bpb} bits/byte, ${Math.round(allBytes / Math.max(allSec, 1e-9))} tokens/s\n`);
        }
        if (fd !== undefined) { closeSync(fd); fd = undefined; }
        jsonl?.commit();
      } finally {
        if (fd !== undefined) closeSync(fd);
        jsonl?.abort(); // after a commit: nothing; after a failure: removes only the temporary file
        await lm.close();
      }
    });
  },
};

export default score;
