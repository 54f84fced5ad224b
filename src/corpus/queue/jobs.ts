// The shard job's payload (what the coordinator puts on the queue and a worker
// takes) and its result, with validation on both ends: a worker fails a
// malformed job with the reason, a coordinator rejects a malformed result.
import type { ShardScoreOptions } from '../score-shard.js';
import type { CorpusDoc, DocRecord } from '../types.js';
import type { Shard } from '../shards.js';

export const JOB_VERSION = 1;
/** The Redis hash naming the runs that have shards to score: run id → queue name. */
export const RUNS_KEY = 'retnet:runs';
export const queueName = (runId: string) => `retnet-score-${runId}`;
/** BullMQ job id of shard i (ids may not be '0'). */
export const jobIdOf = (shard: number) => `shard-${shard}`;

export interface ShardJob {
  v: number;
  run: string;
  shard: number;
  first: number;
  /** SHA-256 of the model file the coordinator scores with */
  model: string;
  options: ShardScoreOptions;
  ids: string[];
  sources: string[];
  lengths: number[];
  /** the documents' bytes, concatenated, base64 */
  data: string;
}

export function encodeShard(shard: Shard, run: string, model: string, options: ShardScoreOptions): ShardJob {
  return {
    v: JOB_VERSION, run, shard: shard.index, first: shard.first, model, options,
    ids: shard.docs.map((d) => d.id), sources: shard.docs.map((d) => d.source), lengths: shard.docs.map((d) => d.bytes.length),
    data: Buffer.concat(shard.docs.map((d) => d.bytes)).toString('base64'),
  };
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The documents of a job, or the reason it is malformed. */
export function decodeShard(data: unknown): { job: ShardJob; docs: CorpusDoc[] } | { error: string } {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { error: 'payload is not an object' };
  const j = data as Partial<ShardJob>;
  if (j.v !== JOB_VERSION) return { error: `payload version ${JSON.stringify(j.v)} is not ${JOB_VERSION}` };
  if (!isStr(j.run) || !isNat(j.shard) || !isNat(j.first)) return { error: 'run, shard or first missing or of the wrong type' };
  if (!isStr(j.model) || !/^[0-9a-f]{64}$/.test(j.model)) return { error: 'model is not a SHA-256 hex digest' };
  const o = j.options;
  if (typeof o !== 'object' || o === null) return { error: 'options missing' };
  if (o.backend !== undefined && !['js', 'wasm', 'tfjs'].includes(o.backend)) return { error: `options.backend ${JSON.stringify(o.backend)} is not js, wasm or tfjs` };
  if (o.chunkSize !== undefined && !(isNat(o.chunkSize) && o.chunkSize > 0)) return { error: 'options.chunkSize is not a positive integer' };
  if (o.perToken !== undefined && typeof o.perToken !== 'boolean') return { error: 'options.perToken is not a boolean' };
  if (o.precision !== undefined && o.precision !== 'f32' && o.precision !== 'bf16') return { error: `options.precision ${JSON.stringify(o.precision)} is not f32 or bf16` };
  const n = Array.isArray(j.ids) ? j.ids.length : -1;
  if (n < 1 || !j.ids!.every(isStr)) return { error: 'ids is not a non-empty list of strings' };
  if (!Array.isArray(j.sources) || j.sources.length !== n || !j.sources.every(isStr)) return { error: 'sources is not a list of strings as long as ids' };
  if (!Array.isArray(j.lengths) || j.lengths.length !== n || !j.lengths.every(isNat)) return { error: 'lengths is not a list of byte counts as long as ids' };
  if (!isStr(j.data) || !/^[A-Za-z0-9+/]*={0,2}$/.test(j.data)) return { error: 'data is not base64' };
  const bytes = Buffer.from(j.data, 'base64');
  const total = j.lengths.reduce((a, b) => a + b, 0);
  if (bytes.length !== total) return { error: `data holds ${bytes.length} bytes, lengths add up to ${total}` };
  const docs: CorpusDoc[] = [];
  let off = 0;
  for (let i = 0; i < n; i++) { docs.push({ id: j.ids![i], source: j.sources![i], bytes: bytes.subarray(off, off + j.lengths[i]) }); off += j.lengths[i]; }
  return { job: j as ShardJob, docs };
}

/** A worker's result for a shard, checked against the shard before it is written. */
export function checkResult(value: unknown, shard: Shard, perToken: boolean): DocRecord[] | string {
  if (!Array.isArray(value) || value.length !== shard.docs.length) return `expected ${shard.docs.length} records, got ${Array.isArray(value) ? value.length : typeof value}`;
  for (let i = 0; i < value.length; i++) {
    const r = value[i] as DocRecord, d = shard.docs[i];
    if (typeof r !== 'object' || r === null || r.id !== d.id || r.source !== d.source || r.bytes !== d.bytes.length) return `record ${i} does not match document ${JSON.stringify(d.id)}`;
    if (typeof r.bits !== 'number' || !Number.isFinite(r.bits) || typeof r.bits_per_byte !== 'number' || !Number.isFinite(r.bits_per_byte)) return `record ${i} has non-finite bits`;
    if (perToken !== Array.isArray(r.logprobs)) return `record ${i} ${perToken ? 'lacks' : 'has'} logprobs`;
  }
  return value as DocRecord[];
}
