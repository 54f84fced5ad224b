// Public API of the `retnet` package.
export { RetNet, MultiScaleRetention, retention, DEFAULT_PREFILL_CHUNK, type RecurrentState, type StepOptions, type PrefillOptions, type MSRConfig } from './model/retnet.js';
export { DEFAULT_CONFIG, type RetNetConfig, type Dims } from './model/config.js';
export { Tensor, allclose, maxAbs, maxAbsDiff, relMaxError, nmse, type DType, type FloatArray } from './tensor.js';
export { SafetensorsFile, SafetensorsWriter, readSafetensors, writeSafetensors, type StTensor, type StDType, type FileStamp } from './safetensors.js';
export { RetNetError, type ErrorCode } from './errors.js';
export type { ForwardOptions, BackendName, KernelsName, Precision, StateDtype } from './options.js';
export type { ActName } from './reference/ops.js';
export type { LoadOptions } from './model/weights.js';
export type { RowSource, RowSink, BackendInfo, Executor } from './backends/executor.js';
export type { StreamOptions } from './model/retnet.js';
export {
  RetNetLM, DEFAULT_LM_PATH, type ScoreOptions, type ScoreResult, type GenerateOptions, type GenerateResult, type LMStepResult, type LMStepOptions,
  type ScoreInput, type ByteScoreResult, type TextGenerateOptions, type TextGenerateResult,
} from './lm/retnet-lm.js';
export { ByteTokenizer, loadTokenizer, type Tokenizer, type StreamDecoder, type EncodeOptions, type TokenizerOptions, type TokenizerKind } from './tokenizer/index.js';
export { scoreCorpus, corpusWorker, corpusSummaryJson, DEFAULT_REDIS_TIMEOUT_MS, type ScoreCorpusOptions, type CorpusSummary, type CorpusProgress, type CorpusWorkerOptions } from './corpus/score-corpus.js';
export { readCorpus, readFiles } from './corpus/readers.js';
export { expandInputs, type InputFile } from './corpus/inputs.js';
export { planShards, DEFAULT_SHARD_BYTES, type Shard } from './corpus/shards.js';
export { OrderedWriter } from './corpus/writer.js';
// the queue layer (BullMQ, ioredis) and the Parquet/zstd readers load on first use, not with this entry
export { processShardJob, runWorker, coordinate } from './corpus/queue/lazy.js';
export type { WorkerOptions, WorkerStats } from './corpus/queue/worker.js';
export type { CoordinatorOptions, CoordinatorStats } from './corpus/queue/coordinator.js';
export { parseRedisUrl, type RedisTarget } from './corpus/queue/redis-url.js';
export type { CorpusDoc, CorpusItem, DocRecord, SkippedItem, ReadOptions } from './corpus/types.js';
