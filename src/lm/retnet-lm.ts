// A RetNet language model: embedding → RetNet → final norm → head (no bias) →
// log-softmax over the vocabulary. Two families load into it: the package's
// byte-level LM (seed layout, LayerNorm, 256 byte ids) and fla-hub RetNets
// (a Hugging Face folder: RMSNorm, a tokenizer.json; src/model/fla.ts).
// Scoring streams through
// RetNet.forwardStream (or, on the float64 js backend, a windowed loop over
// the reference with carried state), so memory stays flat in the text length:
// embedding rows are made on demand and each arriving block of output rows is
// turned into log-probs at once; no [L, d] activation is ever held.
import { errors } from '../errors.js';
import { readSafetensors, type StTensor } from '../safetensors.js';
import { Tensor } from '../tensor.js';
import { OPTION_KEYS, checkKnownKeys, kernelsFromEnv, resolveOptions, stepPrecision, throwIfAborted, type BackendName, type ForwardOptions, type KernelsRequest, type Precision, type StateDtype } from '../options.js';
import { dnnlForBf16, roundRowsBf16 } from '../runtime/dnnl-kernels.js';
import { DEFAULT_BACKEND, RetNet, releaseStepState, type RecurrentState, type StreamOptions } from '../model/retnet.js';
import { checkUnexpected, layersFromCheckpoint, seedLayerNames, LOAD_OPTION_KEYS, type Checkpoint, type LoadOptions } from '../model/weights.js';
import { boundLinear, checkWeightValues, layerNormBound } from '../model/check.js';
import * as js from '../backends/js.js';
import { jsSequence } from '../model/js-run.js';
import { WasmHead } from './wasm-head.js';
import { Rng, checkSeed } from '../random.js';
import { fileURLToPath } from 'node:url';
import { existsSync, statSync } from 'node:fs';
import { eosBeyondTokenizer, hubName, loadFlaFolder, tokenizerBeyondModel, resolveModelDir, type FlaLoadOptions, type FlaModel } from '../model/fla.js';
import { Bf16Matrix } from '../model/bf16.js';

/** A [V, d] table of the LM (embedding, head): float32, or BF16 as stored (rows widened on use, exactly). */
export type LMMatrix = Float32Array | Bf16Matrix;
/** Vocabulary rows of a BF16 head widened per block of the float64 head (headLogitsAny). */
const HEAD_VOCAB_BLOCK = 1024;
import { ByteTokenizer, loadTokenizer, utf8ByteLength, type Tokenizer } from '../tokenizer/index.js';

/** The model shipped with the package (src/assets, next to dist/). */
export const DEFAULT_LM_PATH = new URL('../../../src/assets/bytes-4x128.safetensors', import.meta.url);

const LN_EPS = 1e-5;
/** The final norm + head over rows r0..r0+m−1 of a block of output rows → logits [m, V] (valid until the next call). */
type HeadFn = (rows: ArrayLike<number>, r0: number, m: number) => {
  /** logits [m, V] */
  z: ArrayLike<number>;
  /** log Σ exp of each of the m rows (computed on demand) */
  lse: () => ArrayLike<number>;
};
/** Rows per block of the final norm + head. */
const HEAD_BLOCK = 64;
/** A streamed head (WasmHead's `stream`, scoring at precision 'bf16' on oneDNN): vocabulary rows per slice read
 *  from the file, rows a score() call keeps for one pass over the vocabulary, rows per product. A score() call
 *  streams when it has at least HEAD_STREAM_MIN rows to score and no whole packed head exists yet; its memory
 *  is then the waiting rows (16 MiB for the 1.3B shape), one slice's bits and its packed copy (8 + 8 MiB) and
 *  the logits of a block (2 MiB), not the whole packed head (125 MiB). */
const HEAD_STREAM_SLICE = 2048, HEAD_STREAM_ROWS = 2048, HEAD_STREAM_BLOCK = 256;
/** The fewest rows a score() call streams the head for. */
const HEAD_STREAM_MIN = 1024;
/** score/logits options: the forward's and the score's own (a misspelt perToken is named, with the
 *  keys it could have meant; before, the list left the score's own out) */
const SCORE_OPTION_KEYS: readonly string[] = [...OPTION_KEYS, 'perToken', 'onScored'];
/** Chunk size when neither chunkSize nor numChunks is given. */
export const DEFAULT_LM_CHUNK = 256;

/** Options of {@link RetNetLM.score} (forward options such as `chunkSize` and `backend` included). */
export interface ScoreOptions extends Omit<ForwardOptions, 'attnMask'> {
  /** Keep every byte's log-prob (`logprobs` in the result). */
  perToken?: boolean;
  /** Bytes scored so far (of all sequences), for progress bars. */
  onProgress?: (done: number, total: number) => void;
  /** A ragged batch: called with an input's index as soon as its score is done (in completion order, which need not be input order). */
  onScored?: (index: number) => void;
}

/** What `score` takes: text (a string, or its UTF-8 bytes as a Uint8Array) or token ids
 *  (Int32Array or number[], scored exactly as given: no BOS is added). */
export type ScoreInput = string | Uint8Array | Int32Array | number[];

/** The score of one text or sequence of ids (camelCase; the corpus JSONL records use snake_case). */
export interface ScoreResult {
  /** token ids in the sequence (with the BOS the tokenizer added to text); the byte LM: = bytes */
  tokens: number;
  /** −Σ ln p over the predicted tokens (every token but the first), in nats */
  nll: number;
  /** exp(nll / (tokens − 1)); 1 when fewer than 2 tokens */
  perplexity: number;
  /** text only: UTF-8 length of the text in bytes */
  bytes?: number;
  /** nll in bits (nll / ln 2) */
  bits: number;
  /** text only: bits per byte of the predicted text — bits / bytes when the tokenizer adds a BOS (every
   *  byte is predicted), bits / (bytes − 1) for the byte LM (its first byte is context only); 0 when nothing is predicted */
  bitsPerByte?: number;
  /** entry t = ln p(ids[t+1] | ids[0..t]), length tokens − 1 (with perToken) */
  logprobs?: Float64Array;
}

/** A byte-LM result for Uint8Array input: bytes, bits and bitsPerByte always present. */
export type ByteScoreResult = ScoreResult & {
  /** length of the text in bytes */
  bytes: number;
  /** bits per predicted byte */
  bitsPerByte: number;
};

/** Options of the byte LM's byte-level `generate({ prompt, … })`. */
export interface GenerateOptions {
  /** the prompt bytes */
  prompt: Uint8Array;
  /** bytes to produce (default 256) */
  maxBytes?: number;
  /** 0 → greedy (default); otherwise sample from softmax(logits / T) */
  temperature?: number;
  /** sampling seed (default 0) */
  seed?: number;
  /** chunk size for consuming the prompt (float64 chunkwise; default 256) */
  chunkSize?: number;
  /** called with each new byte */
  onByte?: (byte: number) => void;
  /** abort the generation (rejects with E_ABORTED) */
  signal?: AbortSignal;
  /** the recurrent step: 'wasm' (default; float32 activations, float64 state) or 'js' (float64) */
  backend?: 'js' | 'wasm';
  /** the wasm step's precision: 'f32' (default, or RETNET_PRECISION) or 'bf16' (see {@link LMStepOptions}) */
  precision?: Precision;
  /** the recurrent state's dtype: 'float64' (default) or 'float32' (see {@link LMStepOptions}) */
  stateDtype?: StateDtype;
}

/** The result of the byte LM's byte-level `generate({ prompt, … })`. */
export interface GenerateResult {
  /** the generated bytes (without the prompt) */
  bytes: Uint8Array;
  /** seconds spent consuming the prompt */
  prefillSeconds: number;
  /** seconds spent producing the output */
  decodeSeconds: number;
}

/** Options of {@link RetNetLM.step} and {@link RetNetLM.prefill}. */
export interface LMStepOptions {
  /** 'js' (float64 throughout; step's default) or 'wasm' (float32 activations, float64 state) */
  backend?: 'js' | 'wasm';
  /** 'wasm' only: 'f32' (default, or RETNET_PRECISION) or 'bf16' (bfloat16 operands in the matrix
   *  products and the head, float32 accumulation; oneDNN on all cores where the CPU has bfloat16 dot products) */
  precision?: Precision;
  /** dtype of the state made when none is given: 'float64' (default) or 'float32' (each S rounded to
   *  float32 after every update: half the state bytes a decoding step reads and writes). A given state
   *  keeps its own (RecurrentState). */
  stateDtype?: StateDtype;
}

/** One recurrent step of a language model. */
export interface LMStepResult {
  /** ln p(next token) for every token of the vocabulary */
  logprobs: Float64Array;
  /** the state after the step (pass it to the next one) */
  state: RecurrentState;
}

/** Options of text generation (`generate(prompt, options)`, `stream(prompt, options)`). */
export interface TextGenerateOptions {
  /** tokens to produce at most (default 64) */
  maxNewTokens?: number;
  /** 0 → greedy (default); otherwise sample from softmax(logits / T) */
  temperature?: number;
  /** sample only among the k most likely tokens (0 = all; default 0) */
  topK?: number;
  /** sample only from the smallest set of tokens whose probability reaches p (1 = all; default 1) */
  topP?: number;
  /** sampling seed (default 0) */
  seed?: number;
  /** stop when the generated text contains one of these (the stop text is not returned); EOS always stops */
  stop?: string[];
  /** cancels the generation (E_ABORTED) */
  signal?: AbortSignal;
  /** the recurrent step: 'wasm' (default; float32 activations, float64 state) or 'js' (float64) */
  backend?: 'js' | 'wasm';
  /** the wasm step's precision: 'f32' (default, or RETNET_PRECISION) or 'bf16' (see {@link LMStepOptions}) */
  precision?: Precision;
  /** the recurrent state's dtype: 'float64' (default) or 'float32' (see {@link LMStepOptions}) */
  stateDtype?: StateDtype;
  /** called as the prompt goes into the state (the chunkwise prefill, {@link RetNetLM.prefill}), after each
   *  chunk of 256 tokens: tokens done, of `total`, and the seconds so far; the last call, with done = total,
   *  comes before the first new token. `signal` is checked between chunks. */
  onPrefill?: (done: number, total: number, seconds: number) => void;
  /** called with each generated token id as it is chosen (an EOS and the tokens of a stop string
   *  included), before its text is yielded: e.g. to count tokens for a rate */
  onToken?: (id: number) => void;
}

/** What `generate(prompt, options)` returns. */
export interface TextGenerateResult {
  /** the generated text (without the prompt, without a stop string) */
  text: string;
  /** the generated token ids (including the EOS or the tokens of a stop string, if one ended it) */
  ids: Int32Array;
  /** why it ended */
  stopReason: 'length' | 'eos' | 'stop';
  /** seconds spent consuming the prompt */
  prefillSeconds: number;
  /** seconds spent producing the new tokens */
  decodeSeconds: number;
}

// ---------------------------------------------------------------- head kernels

/** Final norm of `n` rows of x [n, d] (float32 or float64) into out [n, d] float64: LayerNorm (eps 1e-5),
 *  or RMSNorm when `rmsEps` is given. */
function finalNorm(x: ArrayLike<number>, xOff: number, n: number, d: number, w: Float32Array, b: Float32Array, out: Float64Array, rmsEps?: number): void {
  if (rmsEps !== undefined) {
    for (let r = 0; r < n; r++) {
      const o = xOff + r * d;
      let ss = 0;
      for (let i = 0; i < d; i++) ss += x[o + i] * x[o + i];
      const inv = 1 / Math.sqrt(ss / d + rmsEps);
      for (let i = 0; i < d; i++) out[r * d + i] = x[o + i] * inv * w[i];
    }
    return;
  }
  for (let r = 0; r < n; r++) {
    const o = xOff + r * d;
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[o + i];
    mean /= d;
    let vr = 0;
    for (let i = 0; i < d; i++) { const t = x[o + i] - mean; vr += t * t; }
    const inv = 1 / Math.sqrt(vr / d + LN_EPS);
    for (let i = 0; i < d; i++) out[r * d + i] = (x[o + i] - mean) * inv * w[i] + b[i];
  }
}

/** logits [n, V] = h [n, d] · Wᵀ (W [V, d] float32), register-blocked 4 rows × 2
 *  vocab entries: each pass over d loads 4 + 2 values for 8 multiply-adds.
 *  (Measured in scalar V8 code: 4×2 ≈ 3 GFLOP/s, 4×1 ≈ 2.6, 1×1 ≈ 1.) */
function headLogits(h: Float64Array, n: number, d: number, W: Float32Array, V: number, out: Float64Array, ldo = V, oOff = 0): void {
  let r = 0;
  for (; r + 4 <= n; r += 4) {
    const h0 = r * d, h1 = h0 + d, h2 = h1 + d, h3 = h2 + d;
    const o0 = oOff + r * ldo, o1 = o0 + ldo, o2 = o1 + ldo, o3 = o2 + ldo;
    let v = 0;
    for (; v + 2 <= V; v += 2) {
      const wa = v * d, wb = wa + d;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let i = 0; i < d; i++) {
        const w = W[wa + i], u = W[wb + i];
        const x0 = h[h0 + i], x1 = h[h1 + i], x2 = h[h2 + i], x3 = h[h3 + i];
        a0 += x0 * w; a1 += x1 * w; a2 += x2 * w; a3 += x3 * w;
        b0 += x0 * u; b1 += x1 * u; b2 += x2 * u; b3 += x3 * u;
      }
      out[o0 + v] = a0; out[o1 + v] = a1; out[o2 + v] = a2; out[o3 + v] = a3;
      out[o0 + v + 1] = b0; out[o1 + v + 1] = b1; out[o2 + v + 1] = b2; out[o3 + v + 1] = b3;
    }
    for (; v < V; v++) {
      const wa = v * d;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let i = 0; i < d; i++) { const w = W[wa + i]; a0 += h[h0 + i] * w; a1 += h[h1 + i] * w; a2 += h[h2 + i] * w; a3 += h[h3 + i] * w; }
      out[o0 + v] = a0; out[o1 + v] = a1; out[o2 + v] = a2; out[o3 + v] = a3;
    }
  }
  for (; r < n; r++) {
    const ho = r * d;
    for (let v = 0; v < V; v++) {
      const wo = v * d;
      let a = 0;
      for (let i = 0; i < d; i++) a += h[ho + i] * W[wo + i];
      out[oOff + r * ldo + v] = a;
    }
  }
}

let headWide = new Float32Array(0);
/** headLogits over a float32 or BF16 head: a BF16 head is widened HEAD_VOCAB_BLOCK rows at a time (exact,
 *  so the logits are those of the widened head). */
function headLogitsAny(h: Float64Array, n: number, d: number, W: LMMatrix, V: number, out: Float64Array): void {
  if (!(W instanceof Bf16Matrix)) { headLogits(h, n, d, W, V, out); return; }
  const bits = W.bits();
  if (headWide.length < HEAD_VOCAB_BLOCK * d) headWide = new Float32Array(HEAD_VOCAB_BLOCK * d);
  for (let v0 = 0; v0 < V; v0 += HEAD_VOCAB_BLOCK) {
    const vb = Math.min(HEAD_VOCAB_BLOCK, V - v0);
    W.rowsInto(v0, vb, headWide, 0, bits);
    headLogits(h, n, d, headWide, vb, out, V, v0);
  }
}

/** Row `id` of an embedding table into `into` at `off` (BF16 widened exactly). */
export function embedRow(E: LMMatrix, d: number, id: number, into: Float32Array | Float64Array, off: number): void {
  // Every public entry point checks its ids against the vocabulary first (E_INPUT); this is the last
  // line should one forget: past the table, subarray is empty and set() copies nothing, so `into` kept
  // whatever an earlier call left there — a plausible distribution, silently wrong (nextLogprobs on a
  // fla model did this with bytes ≥ V).
  const rows = E instanceof Bf16Matrix ? E.rows : E.length / d;
  if (!(Number.isInteger(id) && id >= 0 && id < rows)) throw new Error(`internal: embedding row ${String(id)} requested from a table of ${rows} rows (an id reached the embedding unchecked)`);
  if (E instanceof Bf16Matrix) E.rowsInto(id, 1, into, off);
  else into.set(E.subarray(id * d, (id + 1) * d), off);
}

/** log-sum-exp of logits[off, off + V). */
function logSumExp(z: ArrayLike<number>, off: number, V: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) if (z[off + v] > m) m = z[off + v];
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(z[off + v] - m);
  return m + Math.log(s);
}

/** The UTF-8 bytes of a text that its first token stands for (a text without BOS: they are given, not
 *  predicted): one for a byte; for a Hugging Face tokenizer, HfTokenizerImpl.tokenBytes. */
/** The UTF-8 text of `b` (E_INPUT naming `what` when it is not valid UTF-8). */
function utf8Text(b: Uint8Array, what: string): string {
  try { return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(b); } catch {
    throw errors.input(`${what} is not valid UTF-8 (a Uint8Array is taken as the UTF-8 bytes of a text; pass token ids as an Int32Array)`);
  }
}

function firstTokenBytes(tok: Tokenizer, id: number): number {
  if (tok.kind === 'bytes') return 1;
  const tokenBytes = (tok as { tokenBytes?: (id: number) => number }).tokenBytes; // the HF tokenizer's (hf.ts, loaded on demand)
  return tokenBytes ? tokenBytes.call(tok, id) : utf8ByteLength(tok.decode([id]));
}

/** Per-sequence accumulator of log-probs. `textBytes`: the UTF-8 length of the text the ids came
 *  from (null for ids given as such); `unpredicted`: how many of those bytes no prediction covers — 0
 *  after a BOS, else the first token's (it is given, not predicted). */
class SeqScore {
  nll = 0; // −Σ ln p
  readonly logprobs: Float64Array | null;
  constructor(readonly ids: ArrayLike<number>, perToken: boolean, readonly textBytes: number | null, readonly unpredicted: number) {
    this.logprobs = perToken ? new Float64Array(Math.max(0, ids.length - 1)) : null;
  }
  get length(): number { return this.ids.length; }
  result(): ScoreResult {
    const scored = Math.max(0, this.ids.length - 1);
    const bits = this.nll / Math.LN2;
    const r: ScoreResult = { tokens: this.ids.length, nll: this.nll, perplexity: scored > 0 ? Math.exp(this.nll / scored) : 1, bits };
    if (this.textBytes !== null) {
      const predicted = Math.max(0, this.textBytes - this.unpredicted);
      r.bytes = this.textBytes;
      r.bitsPerByte = predicted > 0 && scored > 0 ? bits / predicted : 0;
    }
    if (this.logprobs) r.logprobs = this.logprobs;
    return r;
  }
}

/** A score() call's rows through a streamed head (WasmHead's `stream`): output rows are copied here until
 *  `capacity` rows wait (or the call ends), then one pass over the vocabulary scores them all; a sequence
 *  whose last rows were waiting is reported done (`done`) after the pass that scored them. Each sequence's
 *  log-probs are summed in position order, as consumeRows sums them. The rows wait in this object, not in
 *  the head: two score() calls at once share only the head's memory inside a pass, which is synchronous. */
class StreamedScoring {
  private staged = 0;
  private readonly segs: { seq: SeqScore; start: number; n: number }[] = [];
  private finished: SeqScore[] = [];
  /** `rows`: room for `capacity` rows [capacity, d] (the caller's, kept between calls) */
  constructor(private readonly head: WasmHead, private readonly d: number, private readonly capacity: number, private readonly rows: Float32Array,
    private readonly done: (s: SeqScore) => void) {
    if (rows.length < capacity * d) throw new Error(`StreamedScoring: room for ${rows.length / d} rows, not ${capacity}`);
  }

  /** rows kept, waiting for the next pass */
  get waiting(): number { return this.staged; }

  /** Output rows [n, d] of positions start..start+n−1 of `seq`. */
  push(seq: SeqScore, start: number, rows: ArrayLike<number>, n: number): void {
    const useful = Math.min(n, seq.length - 1 - start), R = this.capacity, d = this.d;
    for (let r0 = 0; r0 < useful;) {
      if (this.staged === R) this.flush();
      const m = Math.min(useful - r0, R - this.staged), at = this.staged * d;
      if (rows instanceof Float32Array) this.rows.set(rows.subarray(r0 * d, (r0 + m) * d), at);
      else for (let i = 0; i < m * d; i++) this.rows[at + i] = rows[r0 * d + i]!;
      this.segs.push({ seq, start: start + r0, n: m });
      this.staged += m; r0 += m;
    }
    if (start + n === seq.length) this.finished.push(seq);
  }

  /** Scores the waiting rows, then reports the sequences they finished. */
  flush(): void {
    const n = this.staged;
    if (n > 0) {
      const next = new Int32Array(n), lp = new Float64Array(n);
      let o = 0;
      for (const g of this.segs) for (let r = 0; r < g.n; r++) next[o++] = g.seq.ids[g.start + r + 1]!;
      this.head.streamLogprobs(this.rows, n, next, lp);
      o = 0;
      for (const g of this.segs) {
        for (let r = 0; r < g.n; r++) {
          const l = lp[o++]!;
          g.seq.nll -= l;
          if (g.seq.logprobs) g.seq.logprobs[g.start + r] = l;
        }
      }
      this.segs.length = 0; this.staged = 0;
    }
    const fin = this.finished;
    this.finished = [];
    for (const s of fin) this.done(s);
  }
}

// ---------------------------------------------------------------- the model

/** Refuses a byte-LM checkpoint without its own tensors by their names alone (load calls it on the header). */
function lmNames(label: string, names: ReadonlyMap<string, unknown>): void {
  for (const name of ['embed.weight', 'head.weight', 'final_norm.weight', 'final_norm.bias']) {
    if (!names.has(name)) {
      // a file of a fla-hub folder (model.layers.N.attn.*): where it loads, as layersFromCheckpoint says it
      const fla = [...names.keys()].some((k) => /^model\.(layers\.\d+\.attn\.|embeddings\.)/.test(k));
      throw errors.weights(`${label}: not a language-model checkpoint: missing ${name}` +
        (fla ? '; its tensors are a fla-hub RetNet\'s (model.layers.N.attn.*): pass its folder (with config.json) instead — RetNetLM.loadFolder(DIR); `retnet score` and `generate` take DIR' : ''));
    }
  }
}

/** E_WEIGHTS for a NaN, ±Infinity or value beyond float32's range in the LM's own
 *  tensors ([V, d] matrices or [d] vectors); for the byte LM's embedding, name the row's byte. */
function checkLMWeights(label: string, d: number, ws: Record<string, ArrayLike<number> | Bf16Matrix>, bytes = true): void {
  for (const [name, data] of Object.entries(ws)) {
    if (data instanceof Bf16Matrix) continue; // BF16 tables are checked as loaded (src/model/fla.ts)
    const shape = data.length === d ? [d] : [data.length / d, d];
    checkWeightValues(label, name, data, shape, name === 'embed.weight' && bytes
      ? ([row]) => `embedding row ${row}, the vector of byte ${row} = 0x${row.toString(16).padStart(2, '0')}; any text containing that byte would score NaN`
      : undefined);
  }
}

/** The LM's own tensors and its text side. */
export interface LMParts {
  embed: LMMatrix; head: LMMatrix; normWeight: Float32Array; normBias: Float32Array; vocab: number;
  /** the final norm: LayerNorm (eps 1e-5, the byte LM) or RMSNorm with this eps (fla) */
  normKind?: 'layernorm' | 'rmsnorm'; normEps?: number;
  tokenizer?: Tokenizer;
  /** what the model is, for `info` and messages */
  source?: {
    /** byte LM or fla family */
    kind: 'bytes' | 'fla';
    /** file or folder */
    path: string;
    /** the fla config, for fla models */
    fla?: FlaModel;
  };
}

const isModelFolderSpec = (p: string): boolean => (existsSync(p) ? statSync(p).isDirectory() : hubName(p) !== null);

/**
 * A RetNet language model: the shipped byte LM, a byte-LM checkpoint, or a pretrained
 * fla-hub RetNet folder with its tokenizer. Scores text (bits per byte, perplexity),
 * returns logits, and generates with the recurrent step. Call {@link RetNetLM.close} when done.
 *
 * @example
 * ```ts
 * import { RetNetLM } from 'retnet';
 * const lm = await RetNetLM.load();   // the shipped byte LM; or a folder, or 'fla-hub/retnet-1.3B-100B' from the HF cache
 * const r = await lm.score(new TextEncoder().encode('print("hello")\n'));
 * console.log(r.bitsPerByte);
 * await lm.close();
 * ```
 */
export class RetNetLM {
  /** the RetNet under the embedding and head */
  readonly model: RetNet;
  /** embed [V, d] (float32, or BF16 as stored) */
  readonly embed: LMMatrix;
  /** the output head [V, d] (float32, or BF16 as stored; the embedding itself when tied) */
  readonly head: LMMatrix;
  /** final norm weight [d] */
  readonly normWeight: Float32Array;
  /** final norm bias [d] (zeros for RMSNorm) */
  readonly normBias: Float32Array;
  /** vocabulary size V */
  readonly vocab: number;
  /** model width d */
  readonly d: number;
  /** text ↔ ids: bytes for the byte LM, the model folder's tokenizer.json for fla models */
  readonly tokenizer: Tokenizer;
  /** the final norm's kind */
  readonly normKind: 'layernorm' | 'rmsnorm';
  /** the final norm's eps */
  readonly normEps: number;
  /** what the model is and where it was loaded from */
  readonly source: NonNullable<LMParts['source']>;
  /** scratch for the head: normed rows and logits, grown on demand */
  private wasmHead: WasmHead | undefined;
  /** precision 'bf16' heads: on oneDNN ('dnnl') or rounded operands on the WASM GEMM ('round') */
  private readonly bf16Heads = new Map<'dnnl' | 'round' | 'dnnl-stream', WasmHead>();
  /** the rows a score() call keeps for a streamed head (StreamedScoring), when no call holds them */
  private streamBuf: Float32Array | null = null;
  /** score() calls using a streamed head now, and a streamed head replaced by the whole one while they ran */
  private streamUsers = 0;
  private retiredStream: WasmHead | null = null;
  private hBuf = new Float64Array(0);
  private zBuf = new Float64Array(0);
  private closed = false;

  constructor(model: RetNet, w: LMParts) {
    this.model = model;
    this.embed = w.embed; this.head = w.head; this.normWeight = w.normWeight; this.normBias = w.normBias;
    this.vocab = w.vocab;
    this.d = model.dims.d;
    this.normKind = w.normKind ?? 'layernorm';
    this.normEps = w.normEps ?? LN_EPS;
    this.tokenizer = w.tokenizer ?? new ByteTokenizer();
    this.source = w.source ?? { kind: 'bytes', path: '(in memory)' };
    if (this.tokenizer.vocabSize > this.vocab) throw errors.weights(`the tokenizer has ${this.tokenizer.vocabSize} ids but the model's vocabulary has ${this.vocab}`);
    checkLMWeights('RetNetLM weights', this.d, { 'embed.weight': this.embed, 'head.weight': this.head, 'final_norm.weight': this.normWeight, 'final_norm.bias': this.normBias }, this.tokenizer.kind === 'bytes');
    // the head against float32's range, in every constructor call (before: only fromCheckpoint checked it, and a
    // head built in memory scored NaN); a BF16 head was held to it by the fla loader
    // (the layers' rule, src/model/check.ts: its input is the final norm's output)
    if (!(this.head instanceof Bf16Matrix)) {
      boundLinear(this.source.path, { name: 'head.weight', W: this.head, b: null, inDim: this.d, outDim: this.vocab }, layerNormBound(this.d, this.normWeight, this.normBias));
    }
  }

  /** Load a language model: a byte-LM safetensors file (default: the model shipped with the package),
   *  or a fla-family Hugging Face folder (`DIR`, or `ORG/NAME` in the local hub cache).
   *
   *  @example
   *  ```ts
   *  const bytes = await RetNetLM.load();                              // the shipped byte LM
   *  const fla = await RetNetLM.load('fla-hub/retnet-1.3B-100B');      // after `hf download fla-hub/retnet-1.3B-100B`
   *  ```
   */
  static async load(path?: string | URL, options: LoadOptions = {}): Promise<RetNetLM> {
    const p = path === undefined ? DEFAULT_LM_PATH : path;
    const file = p instanceof URL ? fileURLToPath(p) : p;
    checkKnownKeys(options, LOAD_OPTION_KEYS); // (null: E_OPTION) before a file is read (fromCheckpoint checks them again, cheaply)
    if (isModelFolderSpec(file)) {
      // the fla family fixes its activations and reads its heads from config.json: these would be ignored
      const given = Object.entries(options ?? {}).find(([, v]) => v !== undefined);
      if (given) throw errors.option(given[0], `left out for a model folder (${file}: its config.json decides)`, given[1]);
      return RetNetLM.loadFolder(file);
    }
    // refused by its names before its tensors are read (a fla shard given here was read whole first)
    const { tensors, metadata } = readSafetensors(file, (names) => { lmNames(file, names); seedLayerNames(file, names); });
    return RetNetLM.fromCheckpoint({ tensors, metadata, label: file }, options);
  }

  /** Whether `load(spec)` takes `spec` as a model folder (an existing directory, or ORG/NAME). */
  static isFolderSpec(spec: string): boolean { return isModelFolderSpec(spec); }

  /** A fla-family model folder (config.json, safetensors, tokenizer.json). Without tokenizer.json the
   *  model still scores token ids; text needs one. */
  static async loadFolder(spec: string, options: FlaLoadOptions = {}): Promise<RetNetLM> {
    checkKnownKeys(options, ['bf16']);
    const dir = resolveModelDir(spec);
    const fm = loadFlaFolder(dir, options);
    const tokenizer = fm.files.tokenizerPath ? await loadTokenizer(fm.files.tokenizerPath, { eosId: fm.fla.eosId }, (n) => eosBeyondTokenizer(fm.files.configPath, fm.fla, n)) : undefined;
    if (tokenizer && tokenizer.vocabSize > fm.fla.vocab) throw tokenizerBeyondModel(fm.files.tokenizerPath!, fm.files.configPath, tokenizer.vocabSize, fm.fla.vocab);
    const model = new RetNet(fm.config, fm.layers);
    return new RetNetLM(model, {
      embed: fm.embed, head: fm.head, normWeight: fm.finalNorm, normBias: new Float32Array(fm.fla.d), vocab: fm.fla.vocab,
      normKind: 'rmsnorm', normEps: fm.fla.eps, tokenizer: tokenizer ?? new NoTokenizer(fm.fla.vocab, dir),
      source: { kind: 'fla', path: dir, fla: fm },
    });
  }

  /** A byte LM from tensors already read (embed, head, final norm and the RetNet's weights). */
  static fromCheckpoint(ck: Checkpoint, options: LoadOptions = {}): RetNetLM {
    lmNames(ck.label, ck.tensors);
    const { config, layers, used } = layersFromCheckpoint(ck, '', options);
    const d = config.dimModel;
    const f32 = (name: string, shape: number[]): Float32Array => {
      const t: StTensor = ck.tensors.get(name)!;
      if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
        throw errors.weights(`${ck.label}: weight ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) throw errors.weights(`${ck.label}: weight ${name} must be a floating-point tensor`);
      checkLMWeights(ck.label, d, { [name]: t.data });
      used.add(name);
      return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    };
    const eShape = ck.tensors.get('embed.weight')!.shape;
    const vocab = eShape[0];
    if (eShape.length !== 2 || eShape[1] !== d) throw errors.weights(`${ck.label}: embed.weight has shape [${eShape.join(', ')}], expected [vocab, ${d}]`);
    if (vocab !== 256) throw errors.weights(`${ck.label}: embed.weight has ${vocab} rows; a byte-level model needs 256`);
    const w = {
      embed: f32('embed.weight', [vocab, d]), head: f32('head.weight', [vocab, d]),
      normWeight: f32('final_norm.weight', [d]), normBias: f32('final_norm.bias', [d]), vocab,
    };
    if (ck.tensors.has('head.bias')) throw errors.weights(`${ck.label}: head.bias is not supported (the head has no bias)`);
    checkUnexpected(ck, used);
    return new RetNetLM(new RetNet(config, layers), { ...w, source: { kind: 'bytes', path: ck.label } });
  }

  private scratch(rows: number): { h: Float64Array; z: Float64Array } {
    if (this.hBuf.length < rows * this.d) this.hBuf = new Float64Array(rows * this.d);
    if (this.zBuf.length < rows * this.vocab) this.zBuf = new Float64Array(rows * this.vocab);
    return { h: this.hBuf, z: this.zBuf };
  }

  /** The head for the float64 loops: a file-backed BF16 head (large models) is read once, here, and kept. */
  private residentHead(): LMMatrix {
    const W = this.head;
    if (!(W instanceof Bf16Matrix) || W.resident) return W;
    this.headResident ??= new Bf16Matrix(W.rows, W.cols, W.bits());
    return this.headResident;
  }
  private headResident: Bf16Matrix | undefined;

  /** The final norm + head a forward with these options uses: float64 loops (js), the WASM GEMM
   *  (float32), or a bfloat16 head (precision 'bf16': oneDNN where the body's engine is oneDNN — the
   *  same rule as the pool's 'auto' — else rounded operands on the WASM GEMM). Checks the options. */
  private async headFor(options: ScoreOptions): Promise<HeadFn> {
    const r = this.resolveScore(options);
    const V = this.vocab;
    if (r.backend === 'js') {
      return (rows, r0, m) => {
        const z = this.headBlock(rows, r0, m, false);
        return { z, lse: () => Float64Array.from({ length: m }, (_, i) => logSumExp(z, i * V, V)) };
      };
    }
    if (r.precision !== 'bf16') {
      return (rows, r0, m) => {
        const z = this.headBlock(rows, r0, m, true);
        return { z, lse: () => this.wasmHead!.logSumExp(m) };
      };
    }
    const head = this.bf16Head(r.kernels);
    return (rows, r0, m) => ({ z: head.logits(rows, r0 * this.d, m), lse: () => head.logSumExp(m) });
  }

  /** The forward options of score-like calls, checked (unknown keys named) and resolved. */
  private resolveScore(options: ScoreOptions): ReturnType<typeof resolveOptions> {
    checkKnownKeys(options, SCORE_OPTION_KEYS);
    const { perToken: _p, onProgress: _o, onScored: _s, ...fwd } = options;
    return resolveOptions(fwd, { backend: DEFAULT_BACKEND });
  }

  /** The streamed bfloat16 head for a score() call of `rows` rows to score, or null for the whole packed one:
   *  streamed when precision 'bf16' runs on oneDNN here, the head is BF16 read from the file (a large model),
   *  the call has at least HEAD_STREAM_MIN rows (a short call would read and pack the whole head for a few
   *  rows), and no whole packed head exists (once one does, it serves every call: it costs nothing more). */
  private streamedHead(options: ScoreOptions, rows: number): WasmHead | null {
    const r = this.resolveScore(options);
    if (r.backend === 'js' || r.precision !== 'bf16' || rows < HEAD_STREAM_MIN) return null;
    const W = this.head;
    if (!(W instanceof Bf16Matrix) || W.resident || !W.readsRows || this.bf16Heads.has('dnnl')) return null;
    const { lib } = dnnlForBf16(r.kernels);
    if (!lib) return null;
    let h = this.bf16Heads.get('dnnl-stream');
    if (!h) {
      h = new WasmHead(W, this.normWeight, this.normBias, this.d, this.vocab, HEAD_STREAM_BLOCK, this.rmsEps, 'bf16',
        { dnnl: { lib }, round: roundRowsBf16 }, undefined, { slice: HEAD_STREAM_SLICE });
      this.bf16Heads.set('dnnl-stream', h);
    }
    return h;
  }

  /** The bfloat16 head under kernel request `kernels`: oneDNN on all cores where dnnlForBf16 says so
   *  (the pool's rule: the head runs where the body does), else rounded operands on the WASM GEMM. */
  private bf16Head(kernels: KernelsRequest): WasmHead {
    const { lib } = dnnlForBf16(kernels);
    const key = lib ? 'dnnl' : 'round';
    let h = this.bf16Heads.get(key);
    if (!h) {
      h = new WasmHead(this.head, this.normWeight, this.normBias, this.d, this.vocab, HEAD_BLOCK, this.rmsEps, 'bf16', { dnnl: lib ? { lib } : null, round: roundRowsBf16 });
      this.bf16Heads.set(key, h);
      if (key === 'dnnl') {
        // the whole head serves every call now: the streamed one goes, at once or when the calls using it end
        const old = this.bf16Heads.get('dnnl-stream');
        this.bf16Heads.delete('dnnl-stream'); this.streamBuf = null;
        if (old && this.streamUsers > 0) this.retiredStream = old; else old?.close();
      }
    }
    return h;
  }

  /** Output rows [n, d] of positions start..start+n−1 of `seq` → its log-probs. */
  private consumeRows(seq: SeqScore, start: number, rows: ArrayLike<number>, n: number, head: HeadFn): void {
    const L = seq.length, V = this.vocab;
    // The last position predicts nothing inside the text.
    const useful = Math.min(n, L - 1 - start);
    for (let r0 = 0; r0 < useful; r0 += HEAD_BLOCK) {
      const m = Math.min(HEAD_BLOCK, useful - r0);
      const { z, lse: lseOf } = head(rows, r0, m);
      const lse = lseOf();
      for (let r = 0; r < m; r++) {
        const t = start + r0 + r;
        const lp = z[r * V + seq.ids[t + 1]] - lse[r];
        seq.nll -= lp;
        if (seq.logprobs) seq.logprobs[t] = lp;
      }
    }
  }

  /** Logits [m, V] of output rows r0..r0+m−1 (m ≤ HEAD_BLOCK) of `rows` [n, d] — final norm + head on the
   *  WASM kernels (float32 backends) or in float64 loops (js). Valid until the next call. */
  private headBlock(rows: ArrayLike<number>, r0: number, m: number, float32: boolean): ArrayLike<number> {
    const d = this.d, V = this.vocab;
    if (float32) {
      this.wasmHead ??= new WasmHead(this.head, this.normWeight, this.normBias, d, V, HEAD_BLOCK, this.rmsEps);
      return this.wasmHead.logits(rows, r0 * d, m);
    }
    const sc = this.scratch(m);
    finalNorm(rows, r0 * d, m, d, this.normWeight, this.normBias, sc.h, this.rmsEps);
    headLogitsAny(sc.h, m, d, this.residentHead(), V, sc.z);
    return sc.z;
  }

  /** Logits [T, V] at every position of one text or sequence of ids (text is tokenized with the BOS):
   *  float64 on the js backend, float32 arithmetic widened on the others. */
  async logits(input: string | Uint8Array | Int32Array | number[], options: Omit<ScoreOptions, 'perToken'> = {}): Promise<{
    /** the ids scored */
    ids: Int32Array;
    /** [T, V], row-major */
    logits: Float64Array;
  }> {
    if (this.closed) throw errors.closed();
    checkKnownKeys(options, SCORE_OPTION_KEYS);
    const seq = this.toSeq(input, 'input', false);
    const T = seq.length, V = this.vocab;
    if (T * V > 2 ** 28) throw errors.memory(`logits of ${T} tokens × ${V} ids would be ${T * V} float64 values; score the text instead, or pass fewer tokens`);
    const out = new Float64Array(T * V);
    const head = await this.headFor(options);
    await this.run(T > 0 ? [seq] : [], options, (_s, start, rows, n) => {
      for (let r0 = 0; r0 < n; r0 += HEAD_BLOCK) {
        const m = Math.min(HEAD_BLOCK, n - r0);
        const { z } = head(rows, r0, m);
        for (let i = 0; i < m * V; i++) out[(start + r0) * V + i] = z[i];
      }
    });
    return { ids: Int32Array.from(seq.ids), logits: out };
  }

  /** Log-softmax of one output row. */
  /** Log-softmax of one output row through the float32 head (WasmHead: WASM GEMM on the packed head,
   *  the WASM log-sum-exp) — the float32 step's head, as scoring's float32 backends use. */
  private rowLogprobs32(row: ArrayLike<number>, precision: Precision = 'f32'): Float64Array {
    const d = this.d, V = this.vocab;
    let head: WasmHead;
    if (precision === 'bf16') head = this.bf16Head(kernelsFromEnv());
    else head = this.wasmHead ??= new WasmHead(this.head, this.normWeight, this.normBias, d, V, HEAD_BLOCK, this.rmsEps);
    const z = head.logits(row, 0, 1), lse = head.logSumExp(1)[0];
    const out = new Float64Array(V);
    for (let v = 0; v < V; v++) out[v] = z[v] - lse;
    return out;
  }

  private rowLogprobs(row: ArrayLike<number>, off = 0): Float64Array {
    const { h, z } = this.scratch(1);
    finalNorm(row, off, 1, this.d, this.normWeight, this.normBias, h, this.rmsEps);
    headLogitsAny(h, 1, this.d, this.residentHead(), this.vocab, z);
    const lse = logSumExp(z, 0, this.vocab);
    const out = new Float64Array(this.vocab);
    for (let v = 0; v < this.vocab; v++) out[v] = z[v] - lse;
    return out;
  }

  private get rmsEps(): number | undefined { return this.normKind === 'rmsnorm' ? this.normEps : undefined; }

  private checkBytes(b: unknown, what: string): Uint8Array {
    if (this.closed) throw errors.closed();
    if (!(b instanceof Uint8Array)) throw errors.input(`${what} must be a Uint8Array`);
    return b;
  }

  /** One input of `score` as ids, with what bits per byte needs. */
  private toSeq(x: unknown, what: string, perToken: boolean): SeqScore {
    if (typeof x === 'string') {
      const ids = this.tokenizer.encode(x);
      const bos = this.tokenizer.bosId !== null && ids.length > 0 && ids[0] === this.tokenizer.bosId;
      let given = bos || ids.length === 0 ? 0 : firstTokenBytes(this.tokenizer, ids[0]!);
      // a space the pre-tokenizer put before the text (GPT-2's add_prefix_space: "hello" → "Ġhello") is not one of
      // its bytes (before: counted, so the predicted bytes came out one short, or none for a two-token text)
      if (given > 0 && !x.startsWith(' ') && this.tokenizer.decode([ids[0]!]).startsWith(' ')) given -= 1;
      return new SeqScore(ids, perToken, this.tokenizer.byteLength(x), given);
    }
    if (x instanceof Uint8Array) {
      if (this.tokenizer.kind === 'bytes') return new SeqScore(x, perToken, x.length, x.length > 0 ? 1 : 0);
      let text: string;
      // ignoreBOM: a leading U+FEFF is text like any other (the default decoder drops it, and
      // its 3 bytes with it), so a Uint8Array scores as the same bytes under every tokenizer
      try { text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(x); } catch {
        throw errors.input(`${what} is not valid UTF-8 (a Uint8Array is taken as the UTF-8 bytes of a text; pass token ids as an Int32Array)`);
      }
      return this.toSeq(text, what, perToken);
    }
    if (x instanceof Int32Array || Array.isArray(x)) {
      for (let i = 0; i < x.length; i++) {
        const id = x[i];
        if (!Number.isInteger(id) || id < 0 || id >= this.vocab) throw errors.input(`${what}[${i}] = ${String(id)} is not a token id in [0, ${this.vocab})`);
      }
      return new SeqScore(x instanceof Int32Array ? x : Int32Array.from(x), perToken, null, 0);
    }
    throw errors.input(`${what} must be a string (text), a Uint8Array (UTF-8 text) or token ids (Int32Array or number[])`);
  }

  /** Score one text or sequence of ids, or a ragged batch of them (one streamed pass over all).
   *  Text is tokenized (with the tokenizer's BOS); ids are scored exactly as given.
   *
   *  @example
   *  ```ts
   *  const r = await lm.score('Some text.');          // { tokens, nll, perplexity, bytes, bits, bitsPerByte }
   *  const many = await lm.score(['one', 'two']);     // a ragged batch, one streamed pass
   *  ```
   */
  async score(input: Uint8Array, options?: ScoreOptions): Promise<ByteScoreResult>;
  async score(input: string | Int32Array | number[], options?: ScoreOptions): Promise<ScoreResult>;
  async score(input: Uint8Array[], options?: ScoreOptions): Promise<ByteScoreResult[]>;
  async score(input: ScoreInput[], options?: ScoreOptions): Promise<ScoreResult[]>;
  async score(input: ScoreInput | ScoreInput[], options: ScoreOptions = {}): Promise<ScoreResult | ScoreResult[]> {
    if (this.closed) throw errors.closed();
    checkKnownKeys(options, SCORE_OPTION_KEYS); // first: null is E_OPTION, not a TypeError at options.perToken
    if (options.perToken !== undefined && typeof options.perToken !== 'boolean') throw errors.option('perToken', 'a boolean', options.perToken);
    for (const k of ['onProgress', 'onScored'] as const) if (options[k] !== undefined && typeof options[k] !== 'function') throw errors.option(k, 'a function', options[k]);
    // a non-empty number[] is one sequence of ids; any other array (also []) is a batch
    const single = !Array.isArray(input) || (input.length > 0 && input.every((v) => typeof v === 'number'));
    const items = (single ? [input] : input) as ScoreInput[];
    const seqs = items.map((x, i) => this.toSeq(x, single ? 'input' : `input[${i}]`, options.perToken === true));
    const streamed = this.streamedHead(options, seqs.reduce((a, s) => a + Math.max(0, s.length - 1), 0));
    const head = streamed ? null : await this.headFor(options);
    const onScored = options.onScored, index = new Map(seqs.map((s, i) => [s, i]));
    if (onScored) seqs.forEach((s, i) => { if (s.length === 0) onScored(i); });
    // the rows a streamed call keeps: the model's one buffer, or a new one while another call holds it
    const buf = streamed ? this.streamBuf ?? new Float32Array(HEAD_STREAM_ROWS * this.d) : null;
    if (buf === this.streamBuf) this.streamBuf = null;
    const stream = streamed ? new StreamedScoring(streamed, this.d, HEAD_STREAM_ROWS, buf!, (s) => onScored?.(index.get(s)!)) : null;
    // progress counts the tokens whose rows are scored: the forward's count less the rows still waiting
    // for a pass over the vocabulary (else it said done up to 2,047 rows, one pass, early)
    const onProgress = options.onProgress;
    let told = -1, last: [number, number] | null = null;
    const progress = stream && onProgress ? (done: number, total: number) => {
      last = [done, total];
      const now = done - stream.waiting;
      if (now > told) { told = now; onProgress(now, total); }
    } : onProgress;
    if (streamed) this.streamUsers++;
    try {
      await this.run(seqs.filter((s) => s.length > 0), { ...options, onProgress: progress }, (s, start, rows, n) => {
        if (stream) { stream.push(s, start, rows, n); return; }
        this.consumeRows(s, start, rows, n, head!);
        if (onScored && start + n === s.length) onScored(index.get(s)!);
      });
      stream?.flush();
      if (stream && onProgress && last !== null && last[0] > told) onProgress(last[0], last[1]);
    } finally {
      if (streamed) {
        this.streamUsers--;
        // back to the model for the next call while streaming goes on; a head the whole one replaced meanwhile is
        // closed by its last user (before, it was closed under this call, whose passes then ran on one thread)
        if (this.bf16Heads.get('dnnl-stream') === streamed) this.streamBuf ??= buf;
        else if (this.streamUsers === 0) this.retiredStream?.close();
        if (this.streamUsers === 0) this.retiredStream = null;
      }
    }
    const out = seqs.map((s) => s.result());
    return single ? out[0] : out;
  }

  /** ln p(next token | context) for every id of the vocabulary (every byte value for the byte LM): the
   *  forward over the whole context (chunkwise). The context is read as {@link score} reads an input: a
   *  string or a Uint8Array is text (the byte LM's bytes as they are; a tokenized model's UTF-8 text,
   *  tokenized with its BOS), an Int32Array or number[] token ids (each checked to be in [0, vocab)). */
  async nextLogprobs(context: ScoreInput, options: ScoreOptions = {}): Promise<Float64Array> {
    if (this.closed) throw errors.closed();
    checkKnownKeys(options, SCORE_OPTION_KEYS);
    // before: only `instanceof Uint8Array` was checked, and its bytes went in as token ids on every
    // model — on a fla model ids ≥ V read no embedding row at all (see embedRow)
    const seq = this.toSeq(context, 'context', false);
    if (seq.length === 0) throw errors.input(`context must hold at least one ${this.tokenizer.kind === 'bytes' ? 'byte' : 'token'}`);
    let out: Float64Array | null = null;
    await this.run([seq], options, (s, start, rows, n) => {
      if (start + n === seq.length) out = this.rowLogprobs(rows, (n - 1) * this.d);
    });
    return out!;
  }

  /** The streamed forward: `onRows(seq, start, rows, n)` gets every output row block, in order per sequence. */
  private async run(seqs: SeqScore[], options: ScoreOptions, onRows: (s: SeqScore, start: number, rows: ArrayLike<number>, n: number) => void): Promise<void> {
    if (seqs.length === 0) return;
    checkKnownKeys(options, SCORE_OPTION_KEYS);
    const { perToken: _p, onProgress, onScored: _s, ...fwd } = options;
    const opts: ForwardOptions = { ...fwd };
    if (opts.chunkSize === undefined && opts.numChunks === undefined) opts.chunkSize = DEFAULT_LM_CHUNK;
    const r = resolveOptions(opts, { backend: DEFAULT_BACKEND });
    const d = this.d;
    if (!this.model.dims.arch.retentionNorms) {
      if (opts.normalizeAttn || opts.normalizeRetn) throw errors.option(opts.normalizeAttn ? 'normalizeAttn' : 'normalizeRetn', `false for a ${this.model.dims.arch.name}-family model (it has no retention normalisations)`, true);
    }
    const total = seqs.reduce((a, s) => a + s.length, 0);
    if (r.backend === 'js') {
      // Float64 reference, window by window with carried state (src/model/js-run.ts).
      let done = 0;
      const spec = { config: this.model.config, dims: this.model.dims, layers: this.model.layers };
      const check = () => { throwIfAborted(r.signal); if (this.closed) throw errors.closed(); };
      for (const s of seqs) {
        const L = s.length;
        await jsSequence({ spec, mode: 'retnet', plan: r.plan(L), flags: { normalizeAttn: r.normalizeAttn, normalizeRetn: r.normalizeRetn }, check }, L,
          (start, into) => {
            for (let t = 0; t < into.length / d; t++) embedRow(this.embed, d, s.ids[start + t], into, t * d);
          },
          (start, y) => {
            const n = y.length / d;
            onRows(s, start, y, n);
            done += n;
            onProgress?.(done, total);
          });
      }
      return;
    }
    const streamOpts: StreamOptions = { ...opts, onProgress };
    await this.model.forwardStream(
      {
        lengths: seqs.map((s) => s.length),
        read: (seq, start, into) => {
          const b = seqs[seq].ids, n = into.length / d;
          for (let t = 0; t < n; t++) embedRow(this.embed, d, b[start + t], into, t * d);
        },
      },
      { write: (seq, start, rows) => onRows(seqs[seq], start, rows, rows.length / d) },
      streamOpts,
    );
  }

  // ---------------------------------------------------------------- recurrent use

  /** A zero recurrent state at position 0: S float64 (default) or float32 ({@link RetNet.initState}). */
  initState(stateDtype: StateDtype = 'float64'): RecurrentState { return this.model.initState(1, stateDtype); }

  /** Give a state's memory back now ({@link RetNet.releaseState}); the state cannot be used afterwards. */
  releaseState(state: RecurrentState): void { this.model.releaseState(state); }

  /** Feed one token (a byte of the byte LM); returns ln p(next token) over the vocabulary and the advanced state
   *  (float64). backend 'js' (default): float64 throughout; 'wasm': the float32 step and the float32 head. */
  step(byte: number, state?: RecurrentState, options: LMStepOptions = {}): LMStepResult {
    if (this.closed) throw errors.closed();
    checkKnownKeys(options, ['backend', 'precision', 'stateDtype']);
    if (options.stateDtype !== undefined && options.stateDtype !== 'float64' && options.stateDtype !== 'float32') throw errors.option('stateDtype', "'float64' or 'float32'", options.stateDtype);
    state ??= this.initState(options.stateDtype);
    if (!Number.isInteger(byte) || byte < 0 || byte >= this.vocab) {
      throw errors.input(`${this.tokenizer.kind === 'bytes' ? 'byte' : 'token id'} must be an integer in [0, ${this.vocab}) (got ${byte})`);
    }
    const e = new Float64Array(this.d);
    embedRow(this.embed, this.d, byte, e, 0);
    const x = new Tensor(e, [1, this.d]);
    const backend = options.backend ?? 'js';
    const precision = stepPrecision(backend, options.precision);
    const { y, state: st } = this.model.step(x, state, { backend, precision });
    return { logprobs: backend === 'wasm' ? this.rowLogprobs32(y.data, precision) : this.rowLogprobs(y.data), state: st };
  }

  /** Consume `prompt` (bytes of the byte LM, or token ids) into a fresh state; returns the state and
   *  ln p(next token). 'js': float64 chunkwise; 'wasm': the chunkwise form on the step's engine
   *  ({@link RetNet.prefill}: float32 activations, the state in float64 or `stateDtype`), chunks of `chunkSize`. */
  prefill(prompt: Uint8Array | Int32Array | number[], chunkSize = DEFAULT_LM_CHUNK, backend: 'js' | 'wasm' = 'js', precision?: Precision, stateDtype: StateDtype = 'float64'): LMStepResult {
    this.checkPrompt(prompt, chunkSize);
    // the checks step and generate make: promptState and prefillInto branch on backend === 'wasm' and
    // take anything else for js, where precision is never read (before: 'WASM' ran the float64 path,
    // and 'bf16' or 'fp8' on js were accepted and ignored)
    if (backend !== 'js' && backend !== 'wasm') throw errors.option('backend', "'js' or 'wasm'", backend);
    stepPrecision(backend, precision);
    const state = this.promptState(backend, precision, stateDtype);
    return { logprobs: this.prefillInto(prompt, state, chunkSize, backend, precision), state };
  }

  /** A fresh state for a prompt: on 'wasm' made in the step's memory (no copy at the first chunk). */
  private promptState(backend: 'js' | 'wasm', precision: Precision | undefined, stateDtype: StateDtype = 'float64'): RecurrentState {
    return backend === 'wasm' ? this.model.initState(1, stateDtype, { backend: 'wasm', precision: stepPrecision('wasm', precision) }) : this.initState(stateDtype);
  }

  /** The checks of {@link prefill}'s prompt and chunk size. */
  private checkPrompt(prompt: unknown, chunkSize: number): asserts prompt is Uint8Array | Int32Array | number[] {
    if (this.closed) throw errors.closed();
    if (!(prompt instanceof Uint8Array || prompt instanceof Int32Array || Array.isArray(prompt))) throw errors.input('prompt must be a Uint8Array or token ids');
    // a Uint8Array is bytes: the byte LM's ids, but text to a tokenized model (as score takes it) — never
    // its token ids (before: "Hello" as ids 72, 101, …: wrong log-probs, no error)
    if (prompt instanceof Uint8Array && this.tokenizer.kind !== 'bytes') throw errors.input('prompt is a Uint8Array (bytes) but this model reads tokens: pass token ids as an Int32Array (e.g. lm.tokenizer.encode(text))');
    const ids = prompt;
    if (ids.length === 0) throw errors.input(`prompt must hold at least one ${this.tokenizer.kind === 'bytes' ? 'byte' : 'token'}`);
    for (let i = 0; i < ids.length; i++) if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= this.vocab) throw errors.input(`prompt[${i}] = ${String(ids[i])} is not a token id in [0, ${this.vocab})`);
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw errors.option('chunkSize', 'a positive integer', chunkSize);
  }

  /** Checked `ids` into `state` (advanced in place, from its position) in chunks of `chunkSize`; ln p(next token). */
  private prefillInto(ids: ArrayLike<number>, state: RecurrentState, chunkSize: number, backend: 'js' | 'wasm', precision?: Precision): Float64Array {
    const d = this.d, L = ids.length;
    if (backend === 'wasm') {
      // the chunkwise form on the step's engine (RetNet.prefill): the weights read once per chunk
      const x = new Float32Array(L * d);
      for (let t = 0; t < L; t++) embedRow(this.embed, d, ids[t], x, t * d);
      const p = stepPrecision('wasm', precision);
      const { y } = this.model.prefill(new Tensor(x, [L, d]), state, { backend: 'wasm', precision: p, chunkSize });
      return this.rowLogprobs32(y.data.subarray((L - 1) * d, L * d), p);
    }
    const x = new Float64Array(L * d);
    for (let t = 0; t < L; t++) embedRow(this.embed, d, ids[t], x, t * d);
    const y = js.retnetForward(this.model.layers, this.model.dims, this.model.acts, x, L,
      { form: 'chunkwise', chunkSize: Math.min(chunkSize, L) }, { normalizeAttn: false, normalizeRetn: false }, state.layers.map((l) => l[0]), state.pos);
    state.pos += L;
    return this.rowLogprobs(y, (L - 1) * d);
  }

  /** {@link prefill} one chunk per call, yielding to the event loop between chunks (where `signal` is
   *  checked and `progress(done)` told): the same chunk boundaries, so the same numbers as one call. */
  private async prefillInChunks(ids: Int32Array | number[], chunkSize: number, backend: 'js' | 'wasm', precision: Precision | undefined, stateDtype: StateDtype | undefined,
    signal: AbortSignal | undefined, progress: (done: number) => void): Promise<LMStepResult> {
    this.checkPrompt(ids, chunkSize);
    const state = this.promptState(backend, precision, stateDtype);
    let logprobs: Float64Array | undefined;
    try {
      for (let t0 = 0; t0 < ids.length; t0 += chunkSize) {
        if (t0 > 0) {
          await new Promise<void>((res) => setImmediate(res));
          throwIfAborted(signal);
          if (this.closed) throw errors.closed();
        }
        logprobs = this.prefillInto(ids.slice(t0, t0 + chunkSize), state, chunkSize, backend, precision);
        progress(Math.min(t0 + chunkSize, ids.length));
      }
    } catch (e) {
      releaseStepState(this.model, state);
      throw e;
    }
    return { logprobs: logprobs!, state };
  }

  /** Text generation: `generate(prompt, options)` with a string prompt (tokenized with the BOS) or token
   *  ids, returning text. The byte LM's older form `generate({ prompt: Uint8Array, maxBytes, … })`
   *  returning bytes still works.
   *
   *  @example
   *  ```ts
   *  const g = await lm.generate('Once upon a time', { maxNewTokens: 32, temperature: 0.8, topP: 0.95, seed: 1 });
   *  console.log(g.text, g.stopReason);
   *  ```
   */
  async generate(prompt: string | Int32Array | Uint8Array | number[], options?: TextGenerateOptions): Promise<TextGenerateResult>;
  async generate(options: GenerateOptions): Promise<GenerateResult>;
  async generate(a: string | Int32Array | Uint8Array | number[] | GenerateOptions, options: TextGenerateOptions = {}): Promise<TextGenerateResult | GenerateResult> {
    if (typeof a === 'string' || a instanceof Int32Array || a instanceof Uint8Array || Array.isArray(a)) {
      let text = '';
      const ids: number[] = [];
      const t0 = performance.now();
      let t1 = t0;
      let stopReason: TextGenerateResult['stopReason'] = 'length';
      for await (const ev of this.tokens(a, options, () => { t1 = performance.now(); })) {
        ids.push(ev.id);
        text = ev.text;
        if (ev.stop) { stopReason = ev.stop; break; }
      }
      const t2 = performance.now();
      return { text, ids: Int32Array.from(ids), stopReason, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000 };
    }
    return this.generateBytes(a);
  }

  /** The generated text as it arrives (pieces that concatenate to `generate(...).text`). */
  async *stream(prompt: string | Int32Array | Uint8Array | number[], options: TextGenerateOptions = {}): AsyncIterable<string> {
    let sent = 0;
    for await (const ev of this.tokens(prompt, options)) {
      // hold back what could still become the start of a stop string
      const safe = ev.stop ? ev.text.length : ev.text.length - holdBack(ev.text, options.stop ?? []);
      if (safe > sent) { yield ev.text.slice(sent, safe); sent = safe; }
      if (ev.stop) return;
    }
  }

  /** Token by token: the id, the text so far (stop string cut off), and why it stopped, if it did. */
  private async *tokens(prompt: string | Int32Array | Uint8Array | number[], options: TextGenerateOptions, prefilled?: () => void):
    AsyncGenerator<{ id: number; text: string; stop?: TextGenerateResult['stopReason'] }> {
    checkKnownKeys(options, ['maxNewTokens', 'temperature', 'topK', 'topP', 'seed', 'stop', 'signal', 'backend', 'precision', 'stateDtype', 'onPrefill', 'onToken']);
    if (options.onPrefill !== undefined && typeof options.onPrefill !== 'function') throw errors.option('onPrefill', 'a function', options.onPrefill);
    if (options.onToken !== undefined && typeof options.onToken !== 'function') throw errors.option('onToken', 'a function', options.onToken);
    const { maxNewTokens = 64, temperature = 0, topK = 0, topP = 1, seed = 0, stop = [], signal, backend = 'wasm' } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw errors.option('signal', 'an AbortSignal', signal);
    if (backend !== 'js' && backend !== 'wasm') throw errors.option('backend', "'js' or 'wasm'", backend);
    const precision = stepPrecision(backend, options.precision);
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw errors.option('maxNewTokens', 'a non-negative integer', maxNewTokens);
    if (typeof temperature !== 'number' || !(temperature >= 0) || !Number.isFinite(temperature)) throw errors.option('temperature', 'a finite number ≥ 0', temperature);
    if (!Number.isInteger(topK) || topK < 0) throw errors.option('topK', 'a non-negative integer', topK);
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw errors.option('topP', 'a number in (0, 1]', topP);
    if (!Array.isArray(stop) || !stop.every((x) => typeof x === 'string' && x.length > 0)) throw errors.option('stop', 'an array of non-empty strings', stop);
    checkSeed(seed);
    // a Uint8Array prompt: the byte LM's bytes, a tokenized model's UTF-8 text (as in score)
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt)
      : prompt instanceof Uint8Array ? (this.tokenizer.kind !== 'bytes' ? this.tokenizer.encode(utf8Text(prompt, 'prompt')) : Int32Array.from(prompt)) : prompt;
    throwIfAborted(signal);
    const t0 = performance.now();
    let { logprobs, state } = await this.prefillInChunks(ids, DEFAULT_LM_CHUNK, backend, precision, options.stateDtype, signal,
      (done) => options.onPrefill?.(done, ids.length, (performance.now() - t0) / 1000));
    prefilled?.();
    try {
      const rng = new Rng(seed);
      const dec = this.tokenizer.streamDecoder(ids); // continues the prompt's text (a word token keeps its leading space)
      let text = '';
      const maxStop = stop.reduce((m, s) => Math.max(m, s.length), 0);
      const eos = this.tokenizer.eosId, tokV = this.tokenizer.vocabSize;
      for (let i = 0; i < maxNewTokens; i++) {
        throwIfAborted(signal);
        if (this.closed) throw errors.closed();
        checkDistribution(logprobs, ids.length + i, 'tokens');
        // a model whose vocabulary is padded beyond its tokenizer's ids (rows no text maps to) picks
        // only among the ids the tokenizer can decode: the distribution over them, renormalized
        const among = logprobs.length > tokV ? logprobs.subarray(0, tokV) : logprobs;
        const id = temperature === 0 ? argmax(among) : sample(among, temperature, rng, topK, topP);
        options.onToken?.(id);
        if (id === eos) { text += dec.flush(); yield { id, text, stop: 'eos' }; return; }
        const before = text.length;
        text += dec.push(id);
        // only a match that ends in the new text is new: the search starts max(stop length) − 1
        // characters before it (before: the whole text after every token, quadratic in its length)
        const hit = text.length > before ? firstStop(text, stop, Math.max(0, before - maxStop + 1)) : -1;
        if (hit >= 0) { yield { id, text: text.slice(0, hit), stop: 'stop' }; return; }
        const last = i + 1 === maxNewTokens;
        if (last) { text += dec.flush(); yield { id, text, stop: 'length' }; return; }
        yield { id, text };
        ({ logprobs, state } = this.step(id, state, { backend, precision }));
        if ((i & 15) === 15) await new Promise<void>((res) => setImmediate(res));
      }
    } finally {
      // the state never leaves this generator: its memory goes to the next generation's state
      releaseStepState(this.model, state);
    }
  }

  /** Produce bytes one at a time with the recurrent step (greedy at temperature 0, else seeded sampling). */
  private async generateBytes(options: GenerateOptions): Promise<GenerateResult> {
    checkKnownKeys(options, ['prompt', 'maxBytes', 'temperature', 'seed', 'chunkSize', 'onByte', 'signal', 'backend', 'precision', 'stateDtype']);
    const { prompt, maxBytes = 256, temperature = 0, seed = 0, chunkSize = DEFAULT_LM_CHUNK, onByte, signal, backend = 'wasm' } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw errors.option('signal', 'an AbortSignal', signal);
    if (onByte !== undefined && typeof onByte !== 'function') throw errors.option('onByte', 'a function', onByte);
    throwIfAborted(signal);
    if (backend !== 'js' && backend !== 'wasm') throw errors.option('backend', "'js' or 'wasm'", backend);
    const precision = stepPrecision(backend, options.precision);
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw errors.option('maxBytes', 'a non-negative integer', maxBytes);
    if (typeof temperature !== 'number' || !(temperature >= 0) || !Number.isFinite(temperature)) throw errors.option('temperature', 'a finite number ≥ 0', temperature);
    checkSeed(seed);
    const t0 = performance.now();
    // the prompt in float64 chunk by chunk, yielding between chunks: an abort or close() is honoured while
    // a long prompt is read (before: one synchronous pass, the event loop blocked and the signal unseen)
    let { logprobs, state } = await this.prefillInChunks(Int32Array.from(this.checkBytes(prompt, 'prompt')), chunkSize, 'js', undefined, options.stateDtype, signal, () => {});
    const t1 = performance.now();
    const rng = new Rng(seed);
    // The output grows as bytes come (doubling, capped at maxBytes): maxBytes is a limit, not a size
    // to reserve — `retnet generate --max-bytes 9007199254740991` (run until stopped) made
    // new Uint8Array(2^53 − 1) here and died after printing the prompt; a large but possible limit
    // reserved gigabytes it might never use. A run to maxBytes ends with out.length === maxBytes: no copy.
    let out = new Uint8Array(Math.min(maxBytes, 4096));
    try {
      for (let i = 0; i < maxBytes; i++) {
        throwIfAborted(signal);
        if (this.closed) throw errors.closed();
        checkDistribution(logprobs, prompt.length + i, 'bytes');
        const b = temperature === 0 ? argmax(logprobs) : sample(logprobs, temperature, rng);
        if (i === out.length) {
          const grown = new Uint8Array(Math.min(maxBytes, 2 * out.length));
          grown.set(out);
          out = grown;
        }
        out[i] = b;
        onByte?.(b);
        if (i + 1 < maxBytes) ({ logprobs, state } = this.step(b, state, { backend, precision }));
        if ((i & 63) === 63) await new Promise<void>((res) => setImmediate(res));
      }
    } finally {
      // as in tokens(): the state never leaves this call, so its memory goes back to the step for the
      // next generation (before: kept until a garbage collection; a loop of calls filled the step's
      // memory and ended in E_MEMORY)
      releaseStepState(this.model, state);
    }
    const t2 = performance.now();
    return { bytes: out, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000 };
  }

  /** Backend for tests and tools. */
  get defaultBackend(): BackendName { return DEFAULT_BACKEND; }

  /** Does now, for the 'wasm' step at `precision`, the one-time work that the first step, prefill or
   *  generate would do: packs the weights for the step (and its prefill), packs the LM head, and makes a
   *  state's memory (then hands it to the next state). Later calls then time only their own work (what
   *  `retnet generate` reports as its setup). Returns the seconds it took (≈ 0 when already done). */
  warmUp(options: { precision?: Precision; stateDtype?: StateDtype } = {}): number {
    if (this.closed) throw errors.closed();
    checkKnownKeys(options, ['precision', 'stateDtype']);
    const t0 = performance.now();
    const precision = stepPrecision('wasm', options.precision);
    const state = this.model.initState(1, options.stateDtype ?? 'float64', { backend: 'wasm', precision });
    releaseStepState(this.model, state);
    this.rowLogprobs32(new Float32Array(this.d), precision);
    return (performance.now() - t0) / 1000;
  }

  /** Ends any worker threads; every later call (any backend) is E_CLOSED. */
  close(): Promise<void> {
    this.closed = true;
    for (const h of this.bf16Heads.values()) h.close();
    this.bf16Heads.clear();
    this.retiredStream?.close(); this.retiredStream = null;
    this.streamBuf = null;
    this.wasmHead?.close();
    this.wasmHead = undefined;
    return this.model.close();
  }
}

/** A NaN would make argmax/sample pick an arbitrary token: weights that overflow float32 on this text. */
function checkDistribution(logprobs: ArrayLike<number>, after: number, unit: 'tokens' | 'bytes'): void {
  for (let v = 0; v < logprobs.length; v++) {
    if (Number.isNaN(logprobs[v])) throw errors.input(`the model's next-token distribution after ${after} ${unit} is not a number (NaN at id ${v}): its weights overflow the arithmetic on this prompt`);
  }
}

export function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

/** Index of the first occurrence of any stop string in `text` at or after `from`, or −1. */
function firstStop(text: string, stop: string[], from = 0): number {
  let best = -1;
  for (const s of stop) { const i = text.indexOf(s, from); if (i >= 0 && (best < 0 || i < best)) best = i; }
  return best;
}

/** Characters at the end of `text` that are a proper prefix of some stop string (held back while streaming). */
function holdBack(text: string, stop: string[]): number {
  let n = 0;
  for (const s of stop) for (let k = Math.min(s.length - 1, text.length); k > n; k--) if (text.endsWith(s.slice(0, k))) { n = k; break; }
  return n;
}

/** The k-th largest value of `v` (1 ≤ k ≤ v.length), reordering `v` (Hoare's selection, descending). */
function kthLargest(v: Float64Array, k: number): number {
  let lo = 0, hi = v.length - 1;
  const at = k - 1;
  while (lo < hi) {
    const a = v[lo]!, b = v[(lo + hi) >>> 1]!, c = v[hi]!;
    const pivot = a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b); // median of three
    let i = lo, j = hi;
    while (i <= j) {
      while (v[i]! > pivot) i++;
      while (v[j]! < pivot) j--;
      if (i <= j) { const t = v[i]!; v[i] = v[j]!; v[j] = t; i++; j--; }
    }
    if (at <= j) hi = j; else if (at >= i) lo = i; else return v[at]!;
  }
  return v[at]!;
}

/** The ids whose logprob is at least the M-th largest (ties with it kept), most likely first, ties by id. */
function topIds(logprobs: Float64Array, M: number): number[] {
  const t = kthLargest(Float64Array.from(logprobs), M);
  const ids: number[] = [];
  for (let i = 0; i < logprobs.length; i++) if (logprobs[i]! >= t) ids.push(i);
  return ids.sort((a, b) => logprobs[b]! - logprobs[a]! || a - b);
}

/** Every id, most likely first, ties by id. */
function allIds(logprobs: Float64Array): number[] {
  return Array.from({ length: logprobs.length }, (_, i) => i).sort((a, b) => logprobs[b]! - logprobs[a]! || a - b);
}

/** A token from softmax(logprobs / T), restricted to the top k (k > 0: the k most likely, and any tied with
 *  the k-th, as transformers keeps them) and to the smallest most-likely set of mass ≥ p. Only the
 *  candidates are sorted (before: the whole vocabulary, every token: 18 ms a token at 32,000 ids).
 *  @internal exported for its tests (test/suite-gaps.test.ts), not part of the package's API */
export function sample(logprobs: Float64Array, temperature: number, rng: Rng, topK = 0, topP = 1): number {
  const V = logprobs.length;
  const byK = topK > 0 && topK < V, byP = topP < 1;
  let idx: number[] | null = null;
  let total = 0; // top-p alone: the mass of all V ids (weights relative to the largest)
  if (byK) idx = topIds(logprobs, topK);
  else if (byP) {
    // the most likely M ids, M growing while their mass (one pass, no sort) stays below topP; only the set
    // chosen is sorted, and past V/4 the whole vocabulary is sorted at once (never slower than one full
    // sort: a flat distribution's nucleus is most of it)
    let m0 = -Infinity;
    for (let i = 0; i < V; i++) if (logprobs[i]! / temperature > m0) m0 = logprobs[i]! / temperature;
    const ws = new Float64Array(V); // the weights the cut below takes, computed once
    if (m0 !== -Infinity) for (let i = 0; i < V; i++) { ws[i] = Math.exp(logprobs[i]! / temperature - m0); total += ws[i]!; }
    const scratch = new Float64Array(V);
    let M = Math.min(V, 64);
    for (; M * 4 <= V && total > 0; M *= 4) {
      scratch.set(logprobs);
      const t = kthLargest(scratch, M);
      let mass = 0;
      for (let i = 0; i < V; i++) if (logprobs[i]! >= t) mass += ws[i]!;
      if (mass >= topP * total) break;
    }
    idx = M * 4 <= V ? topIds(logprobs, M) : allIds(logprobs);
    // the cut below must fall inside the set (its sums, in sorted order, can round below the set's mass):
    // otherwise the whole vocabulary, as a full sort would take it
    if (idx.length < V && total > 0) {
      let acc = 0, reached = false;
      for (const i of idx) { acc += ws[i]! / total; if (acc >= topP) { reached = true; break; } }
      if (!reached) idx = allIds(logprobs);
    }
  }
  const n = idx ? idx.length : V;
  const at = (j: number) => (idx ? idx[j]! : j);
  let m = -Infinity;
  for (let j = 0; j < n; j++) if (logprobs[at(j)] / temperature > m) m = logprobs[at(j)] / temperature;
  // a temperature so small that every logprob / T is −∞ (below ~1e-307): the T → 0 limit, greedy
  // (before: the weights were exp(−∞ + ∞) = NaN and the last id of the vocabulary came out every time)
  if (m === -Infinity) {
    let best = at(0);
    for (let j = 1; j < n; j++) if (logprobs[at(j)] > logprobs[best]) best = at(j);
    return best;
  }
  const w = new Float64Array(n);
  let s = 0;
  for (let j = 0; j < n; j++) { w[j] = Math.exp(logprobs[at(j)] / temperature - m); s += w[j]; }
  let count = n;
  if (byP) {
    // candidates are sorted most likely first: keep the shortest prefix whose mass reaches topP (of all V
    // ids' mass without top-k, of the k candidates' with it)
    const all = byK ? s : total;
    let acc = 0;
    for (let j = 0; j < n; j++) { acc += w[j] / all; if (acc >= topP) { count = j + 1; break; } }
    s = 0;
    for (let j = 0; j < count; j++) s += w[j];
  }
  let u = rng.uniform() * s;
  for (let j = 0; j < count; j++) { u -= w[j]; if (u < 0) return at(j); }
  return at(count - 1);
}

/** The tokenizer of a model folder without tokenizer.json: ids only. */
class NoTokenizer implements Tokenizer {
  readonly kind = 'hf' as const;
  readonly bosId = null;
  readonly eosId = null;
  constructor(readonly vocabSize: number, private readonly dir: string) {}
  private refuse(): never { throw errors.input(`${this.dir} has no tokenizer.json: no text in or out — score token ids (an Int32Array), or run step() on ids`); }
  encode(): Int32Array { return this.refuse(); }
  decode(): string { return this.refuse(); }
  streamDecoder(): never { return this.refuse(); }
  byteLength(text: string): number { return Buffer.byteLength(text, 'utf8'); }
}
