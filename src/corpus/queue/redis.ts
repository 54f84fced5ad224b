// Redis connection settings from a redis:// or rediss:// URL, a form of the
// URL safe to print (credentials never appear in logs or errors), and a
// watchdog that turns "Redis unreachable for longer than --redis-timeout"
// into one clear error instead of a hang.
import { Redis, type RedisOptions } from 'ioredis';
import { errors, RetNetError } from '../../errors.js';
import { redact, type RedisTarget } from './redis-url.js';

export { parseRedisUrl, redact, type RedisTarget } from './redis-url.js';

/** ioredis options for every connection we and BullMQ open: retry forever with
 *  a capped backoff (the watchdog, not ioredis, decides when to give up). */
export function connectionOptions(target: RedisTarget): RedisOptions {
  return {
    ...target.options,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    connectTimeout: 5000,
    retryStrategy: (times: number) => Math.min(100 * times, 1000),
  };
}

/** One client of our own plus a watchdog over its connection. */
export class RedisLink {
  readonly client: Redis;
  /** rejects once Redis has been unreachable for longer than the timeout */
  readonly lost: Promise<never>;
  private downSince: number | null = null;
  private lastError = '';
  private timer: NodeJS.Timeout;
  private rejectLost!: (e: Error) => void;
  private everReady = false;
  private closing = false;
  /** when the PING now outstanding was sent (null: none); see the heartbeat below */
  private pingSent: number | null = null;
  private lastPing = 0;

  constructor(readonly target: RedisTarget, readonly timeoutMs: number, private log: (line: string) => void, who: string) {
    this.lost = new Promise<never>((_, rej) => { this.rejectLost = rej; });
    this.lost.catch(() => {}); // observed through guard()
    this.client = new Redis({ ...connectionOptions(target), lazyConnect: true });
    this.client.on('error', (e: Error) => { this.lastError = redact((e as NodeJS.ErrnoException).code ?? e.message, target); });
    this.client.on('ready', () => {
      if (this.downSince !== null && this.everReady) this.log(`${who}: Redis at ${target.display} is back`);
      this.downSince = null; this.everReady = true;
    });
    this.client.on('close', () => {
      this.pingSent = null; // a lost connection is the watchdog's case above; its PING is not answered by a new one
      if (this.closing) return;
      if (this.downSince === null) {
        this.downSince = Date.now();
        if (this.everReady) this.log(`${who}: lost the connection to Redis at ${target.display}${this.lastError ? ` (${this.lastError})` : ''}; retrying for up to ${Math.round(timeoutMs / 1000)} s`);
      }
    });
    this.downSince = Date.now();
    // The heartbeat: a server that stops answering without closing the connection (frozen, or a network that
    // drops packets silently) raises no 'close', and every command waits on it for ever (before: coordinator and
    // workers hung, a worker's SIGTERM too). A PING at most every second while connected; one unanswered for
    // longer than the timeout is the same failure as a connection lost that long.
    const tick = Math.min(250, timeoutMs / 4), every = Math.min(1000, timeoutMs / 2);
    this.timer = setInterval(() => {
      const now = Date.now();
      if (this.downSince !== null && now - this.downSince > timeoutMs) {
        clearInterval(this.timer);
        const what = this.everReady ? 'lost the connection to Redis at' : 'cannot reach Redis at';
        this.rejectLost(errors.queue(`${what} ${target.display}${this.lastError ? ` (${this.lastError})` : ''} and could not connect within ${+(timeoutMs / 1000).toFixed(3)} s (--redis-timeout)`));
        return;
      }
      if (this.pingSent !== null && now - this.pingSent > timeoutMs) {
        // timers run before the loop reads its sockets: after a long synchronous stretch the PONG may be waiting
        // unread. Decide after one I/O turn (setImmediate runs after the poll phase), on the same PING
        const sent = this.pingSent;
        setImmediate(() => {
          if (this.pingSent !== sent || this.closing) return;
          clearInterval(this.timer);
          this.rejectLost(errors.queue(`Redis at ${target.display} stopped answering: no reply to PING in ${+(timeoutMs / 1000).toFixed(3)} s (--redis-timeout), though the connection is open`));
        });
        return;
      }
      if (this.pingSent === null && this.client.status === 'ready' && now - this.lastPing >= every) {
        const sent = this.pingSent = this.lastPing = now;
        this.client.ping().then(() => { if (this.pingSent === sent) this.pingSent = null; }, () => { if (this.pingSent === sent) this.pingSent = null; });
      }
    }, tick);
    this.client.connect().catch(() => {});
  }

  /** Wait for the first connection (or the timeout). */
  async ready(): Promise<void> {
    if (this.client.status !== 'ready') await this.guard(new Promise<void>((res) => this.client.once('ready', () => res())));
    // a database the server does not have: ioredis reports the failed SELECT as an 'error' and goes on
    // in database 0, and so would BullMQ's connections (before: the run's keys in db 0, exit 0)
    const db = this.target.options.db ?? 0;
    if (db !== 0) {
      try { await this.guard(this.client.select(db)); } catch (e) {
        if (e instanceof RetNetError) throw e;
        throw errors.queue(`Redis at ${this.target.display}: database ${db} cannot be used (${redact((e as Error).message, this.target)})`);
      }
    }
  }

  /** `p`, or the connection-lost error, whichever comes first. */
  guard<T>(p: Promise<T>): Promise<T> { return Promise.race([p, this.lost]); }

  close(): void {
    this.closing = true;
    clearInterval(this.timer);
    this.client.disconnect();
  }
}
