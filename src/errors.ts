// Every error the library throws on bad input is a RetNetError with a stable
// `code`, made by one of the factories below, so messages stay uniform and
// callers can branch on the code.

export type ErrorCode =
  | 'E_OPTION'      // an option has a wrong type or value
  | 'E_INPUT'       // an input tensor has a wrong shape or non-finite values
  | 'E_SAFETENSORS' // a safetensors file is malformed, truncated or hostile
  | 'E_DTYPE'       // a tensor's dtype is not supported
  | 'E_WEIGHTS'     // weights are missing, unexpected or of the wrong shape
  | 'E_MEMORY'      // the request would need more memory than allowed
  | 'E_WORKER'      // a worker thread failed or died
  | 'E_ABORTED'     // the caller aborted
  | 'E_ENGINE'      // a requested compute engine is unavailable
  | 'E_CORPUS'      // a corpus input or output is unusable (bad line with --strict, missing column, …)
  | 'E_QUEUE'       // the job queue (Redis/BullMQ) is unreachable or a shard failed on it
  | 'E_CLOSED';     // the model was closed

export class RetNetError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetNetError';
    this.code = code;
  }
}

const show = (v: unknown): string => {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  try { return JSON.stringify(v); } catch { return String(v); }
};

export const errors = {
  option: (name: string, want: string, got: unknown) =>
    new RetNetError('E_OPTION', `options.${name} must be ${want} (got ${show(got)})`),
  config: (name: string, want: string, got: unknown) =>
    new RetNetError('E_OPTION', `config.${name} must be ${want} (got ${show(got)})`),
  input: (message: string) => new RetNetError('E_INPUT', message),
  safetensors: (file: string, message: string) => new RetNetError('E_SAFETENSORS', `${file}: ${message}`),
  dtype: (file: string, name: string, dtype: string) =>
    new RetNetError('E_DTYPE', `${file}: tensor ${show(name)} has dtype ${dtype}; supported: F32, F64, F16, BF16 (and I32, I64, U8 for integer data)`),
  weights: (message: string) => new RetNetError('E_WEIGHTS', message),
  memory: (message: string) => new RetNetError('E_MEMORY', message),
  worker: (message: string, cause?: unknown) => new RetNetError('E_WORKER', message, { cause }),
  aborted: (reason?: unknown) => new RetNetError('E_ABORTED', `operation aborted${reason !== undefined ? `: ${String(reason instanceof Error ? reason.message : reason)}` : ''}`),
  engine: (message: string, cause?: unknown) => new RetNetError('E_ENGINE', message, { cause }),
  corpus: (message: string, cause?: unknown) => new RetNetError('E_CORPUS', message, { cause }),
  queue: (message: string, cause?: unknown) => new RetNetError('E_QUEUE', message, { cause }),
  closed: () => new RetNetError('E_CLOSED', 'the model was closed; create or load a new one'),
};
