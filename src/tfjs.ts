// `retnet/tfjs`: the TensorFlow.js executor on its own, for callers that
// drive it directly (most use `backend: 'tfjs'` on RetNet/RetNetLM instead).
// Importing this entry loads no TensorFlow.js: the executor's worker thread
// loads an engine when createTfjsExecutor() starts it.
//
//   import { createTfjsExecutor } from 'retnet/tfjs';
//   const ex = await createTfjsExecutor({ engine: 'auto' });
//   console.log(ex.info()); // engine, device, the engines passed over
//   await ex.close();
export {
  createTfjsExecutor, TfjsExecutor, MAX_SCORE_BYTES, TFJS_ENGINES, ENGINE_ENV,
  type TfjsExecutorOptions, type TfjsBackendInfo, type TfjsEngine, type AdapterInfo,
} from './backends/tfjs/index.js';
export type { BackendInfo, Executor } from './backends/executor.js';
