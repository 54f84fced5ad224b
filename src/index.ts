// Public API of the `retnet` package.
export { RetNet, MultiScaleRetention, retention, type RecurrentState, type StepOptions, type MSRConfig } from './model/retnet.js';
export { DEFAULT_CONFIG, type RetNetConfig, type Dims } from './model/config.js';
export { Tensor, allclose, maxAbs, maxAbsDiff, relMaxError, nmse, type DType, type FloatArray } from './tensor.js';
export { SafetensorsFile, SafetensorsWriter, readSafetensors, writeSafetensors, type StTensor, type StDType } from './safetensors.js';
export { RetNetError, type ErrorCode } from './errors.js';
export type { ForwardOptions, BackendName, KernelsName } from './options.js';
export type { ActName } from './reference/ops.js';
export type { LoadOptions } from './model/weights.js';
export type { RowSource, RowSink, BackendInfo, Executor } from './backends/executor.js';
export type { StreamOptions } from './model/retnet.js';
export { RetNetLM, DEFAULT_LM_PATH, type ScoreOptions, type ScoreResult, type GenerateOptions, type GenerateResult, type LMStepResult } from './lm/retnet-lm.js';
