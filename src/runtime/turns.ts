// One call at a time over a shared resource (an executor's arena, a tfjs worker), in call order.
import { errors } from '../errors.js';

/** Calls run one after another, in the order they came. A call still waiting its turn is rejected at
 *  once when its signal aborts (it keeps its place in the line, so the call after it still waits for
 *  the one before), and when `closed()` says the owner closed meanwhile. */
export class Turns {
  private last: Promise<void> = Promise.resolve();

  constructor(private readonly closed: () => boolean = () => false) {}

  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const prev = this.last;
    let release!: () => void;
    this.last = new Promise((r) => (release = r));
    try {
      await (signal ? untilAborted(prev, signal) : prev);
    } catch (e) { void prev.then(release); throw e; }
    try {
      if (this.closed()) throw errors.closed();
      return await fn();
    } finally { release(); }
  }
}

/** `p`, or E_ABORTED as soon as `signal` aborts (the listener removed either way). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(errors.aborted(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(errors.aborted(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}
