// The queue layer as the package entry exports it: the same functions, each
// importing its module (and with it BullMQ and ioredis) on its first call, so
// `import { RetNet } from 'retnet'` loads no Redis or queue code.
import type { RetNetLM } from '../../lm/retnet-lm.js';
import type { DocRecord } from '../types.js';
import type { Shard } from '../shards.js';
import type { OrderedWriter } from '../writer.js';
import type { CoordinatorOptions, CoordinatorStats } from './coordinator.js';
import type { WorkerOptions, WorkerStats } from './worker.js';

/** The queue worker's job processor: job data (+ the local model) → records, or a failure with its reason. */
export async function processShardJob(data: unknown, lm: RetNetLM, modelSha: string, modelLabel: string): Promise<DocRecord[]> {
  return (await import('./worker.js')).processShardJob(data, lm, modelSha, modelLabel);
}

/** Take shard jobs from the run's BullMQ queue and score them until `o.signal` aborts (or Redis is lost). */
export async function runWorker(o: WorkerOptions): Promise<WorkerStats> {
  return (await import('./worker.js')).runWorker(o);
}

/** Put `shards` on the run's BullMQ queue and write the workers' results through `writer`, in order. */
export async function coordinate(shards: AsyncIterable<Shard>, writer: OrderedWriter, o: CoordinatorOptions): Promise<CoordinatorStats> {
  return (await import('./coordinator.js')).coordinate(shards, writer, o);
}
