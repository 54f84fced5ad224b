// Redis URLs: parsing redis:// or rediss:// into connection settings, and a
// form safe to print (credentials never appear in logs or errors). Only types
// from ioredis: this file loads no Redis client (the package entry uses it).
import type { RedisOptions } from 'ioredis';
import { errors } from '../../errors.js';

/** A parsed redis:// or rediss:// URL. */
export interface RedisTarget {
  /** ioredis connection options */
  options: RedisOptions;
  /** the URL without credentials, for messages */
  display: string;
}

/** Parse `redis://[user:pass@]host:port[/db]` (or rediss:// for TLS). The error never echoes the URL. */
export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try { u = new URL(url); } catch { throw errors.option('queue', 'a redis://[user:pass@]host:port[/db] or rediss:// URL', '(unparseable URL)'); }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw errors.option('queue', 'a redis:// or rediss:// URL', `${u.protocol}//…`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const dbText = u.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw errors.option('queue', 'a URL whose path is a database number', `/${dbText}`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const options: RedisOptions = { host, port, db };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') options.tls = { servername: host };
  const cred = u.username || u.password ? '***@' : '';
  return { options, display: `${u.protocol}//${cred}${u.host}${db ? `/${db}` : ''}` };
}

/** Remove anything credential-like from a message (belt and braces: ioredis messages carry host:port only). */
export function redact(message: string, target: RedisTarget): string {
  let m = message;
  for (const secret of [target.options.password, target.options.username]) if (secret) m = m.split(secret).join('***');
  return m.replace(/(rediss?:\/\/)[^@\s/]*@/g, '$1***@');
}

