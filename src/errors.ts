// Every error the library throws on bad input is a RetNetError with a stable
// `code`, made by one of the factories below, so messages stay uniform and
// callers can branch on the code.

/** The `code` of a {@link RetNetError}: what kind of problem it is. */
export type ErrorCode =
  | 'E_OPTION'      // an option has a wrong type or value
  | 'E_INPUT'       // an input tensor has a wrong shape or non-finite values
  | 'E_SAFETENSORS' // a safetensors file is malformed, truncated or hostile
  | 'E_DTYPE'       // a tensor's dtype is not supported
  | 'E_WEIGHTS'     // weights are missing, unexpected or of the wrong shape
  | 'E_CONFIG'      // a model folder's config.json asks for something this runtime cannot honour
  | 'E_MEMORY'      // the request would need more memory than allowed
  | 'E_WORKER'      // a worker thread failed or died
  | 'E_ABORTED'     // the caller aborted
  | 'E_ENGINE'      // a requested compute engine is unavailable
  | 'E_CORPUS'      // a corpus input or output is unusable (bad line with --strict, missing column, …)
  | 'E_QUEUE'       // the job queue (Redis/BullMQ) is unreachable or a shard failed on it
  | 'E_CLOSED';     // the model was closed

/** Characters that must not reach a terminal raw: C0 controls (incl. ESC,
 *  NUL, CR, LF), DEL, C1 controls (0x9b is CSI on some terminals), the line and
 *  paragraph separators and the bidi embedding/override/isolate marks. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const hex4 = (c: string) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');

/** `s` with every unsafe character written as a \uXXXX escape (no quotes added). */
export function escapeControl(s: string): string {
  return s.replace(UNSAFE, hex4);
}

/** Longest text (in UTF-16 units) quoted into a message before it is cut. */
const MAX_QUOTE = 120;

/** `s` (JSON-quoted unless `bare`), control characters escaped, cut after
 *  120 characters: a hostile name can be megabytes long. */
function shown(s: string, bare: boolean): string {
  const head = s.length <= MAX_QUOTE ? s : s.slice(0, MAX_QUOTE);
  const tail = s.length <= MAX_QUOTE ? '' : `… (${s.length} characters)`;
  return escapeControl(bare ? head : JSON.stringify(head)) + tail;
}

/** A string from a file (tensor name, dtype, metadata key…) for an error
 *  message: JSON-quoted, control characters escaped, cut if long. */
export const quote = (s: string): string => shown(s, false);

/** Any value from a file (a shape, offsets…) as short, escaped JSON text. */
export function excerpt(v: unknown): string {
  let t: string;
  // String() of a deeply nested array recurses as JSON.stringify does: both guarded (before: a value nested
  // 100,000 deep in a config.json ended the run as "Maximum call stack size exceeded", exit 1)
  try { t = JSON.stringify(v) ?? String(v); } catch {
    try { t = String(v); } catch { t = Array.isArray(v) ? '[…] (nested too deep to show)' : `${typeof v} (too deep to show)`; }
  }
  return shown(t, true);
}

/** What a value that should have been a typed array is, for an error message: "a plain Array",
 *  "an Int32Array", "null", "string". */
export function kindOf(v: unknown): string {
  if (Array.isArray(v)) return 'a plain Array';
  if (ArrayBuffer.isView(v)) {
    const n = (v as object).constructor.name;
    return `${/^[AEIO]/.test(n) ? 'an' : 'a'} ${n}`; // "a Uint8Array": U as in "you"
  }
  return v === null ? 'null' : typeof v;
}

/** The first `max` names and how many there are in all:
 *  `"a", "b", "c", … (500000 in all)`; `(none)` when empty. `bare`: names
 *  unquoted (still escaped and cut). */
export function listNames(names: readonly string[], max = 5, bare = false): string {
  if (names.length === 0) return '(none)';
  const head = names.slice(0, max).map((n) => shown(n, bare)).join(', ');
  return names.length > max ? `${head}, … (${names.length} in all)` : head;
}

/** Every error the library throws on bad input or a failed run, with a stable `code` and a message that names the problem. */
export class RetNetError extends Error {
  /** what kind of problem (branch on this, not on the message) */
  readonly code: ErrorCode;
  /** The message is passed through escapeControl: a hostile file's text
   *  quoted into it (names, dtypes, parser messages) cannot carry escape
   *  sequences, NULs or line breaks to a terminal or a log. */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(escapeControl(message), options);
    this.name = 'RetNetError';
    this.code = code;
  }
}

const show = (v: unknown): string => {
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return excerpt(v);
};

export const errors = {
  option: (name: string, want: string, got: unknown) =>
    new RetNetError('E_OPTION', `options.${name} must be ${want} (got ${show(got)})`),
  config: (name: string, want: string, got: unknown) =>
    new RetNetError('E_OPTION', `config.${name} must be ${want} (got ${show(got)})`),
  input: (message: string) => new RetNetError('E_INPUT', message),
  safetensors: (file: string, message: string) => new RetNetError('E_SAFETENSORS', `${file}: ${message}`),
  dtype: (file: string, name: string, dtype: string) =>
    new RetNetError('E_DTYPE', `${file}: tensor ${quote(name)} has dtype ${/^\w{1,16}$/.test(dtype) ? dtype : quote(dtype)}; supported: F32, F64, F16, BF16 (and I32, I64, U8 for integer data)`),
  weights: (message: string) => new RetNetError('E_WEIGHTS', message),
  modelConfig: (file: string, key: string, want: string, got: unknown) =>
    new RetNetError('E_CONFIG', `${file}: ${quote(key)} must be ${want} (got ${show(got)})`),
  memory: (message: string) => new RetNetError('E_MEMORY', message),
  worker: (message: string, cause?: unknown) => new RetNetError('E_WORKER', message, { cause }),
  aborted: (reason?: unknown) => new RetNetError('E_ABORTED', `operation aborted${reason !== undefined ? `: ${String(reason instanceof Error ? reason.message : reason)}` : ''}`),
  engine: (message: string, cause?: unknown) => new RetNetError('E_ENGINE', message, { cause }),
  corpus: (message: string, cause?: unknown) => new RetNetError('E_CORPUS', message, { cause }),
  queue: (message: string, cause?: unknown) => new RetNetError('E_QUEUE', message, { cause }),
  closed: () => new RetNetError('E_CLOSED', 'the model was closed; create or load a new one'),
};
