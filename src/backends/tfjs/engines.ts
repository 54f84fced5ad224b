// Which TensorFlow.js engine to use, and how to load one. Shared by the main
// thread (option checks, error messages) and the tfjs worker (loading).

export type TfjsEngine = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';
export const TFJS_ENGINES: readonly TfjsEngine[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];
/** Environment variable that names the engine (else: first that loads, in TFJS_ENGINES order). */
export const ENGINE_ENV = 'RETNET_TFJS_ENGINE';

export const ENGINE_PACKAGE: Record<TfjsEngine, string> = {
  'tfjs-node-gpu': '@tensorflow/tfjs-node-gpu',
  'tfjs-node': '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs',
};

export function installHint(engine: TfjsEngine): string {
  switch (engine) {
    case 'tfjs-node-gpu':
      return 'install it with `npm install @tensorflow/tfjs-node-gpu` (Linux x86-64, NVIDIA GPU with CUDA 11.2 and cuDNN 8.1; ' +
        'its install script downloads libtensorflow, so it needs network access to storage.googleapis.com)';
    case 'tfjs-node':
      return 'install it with `npm install @tensorflow/tfjs-node` (its install script downloads libtensorflow)';
    case 'wasm':
      return 'install it with `npm install @tensorflow/tfjs @tensorflow/tfjs-backend-wasm`';
    case 'cpu':
      return 'install it with `npm install @tensorflow/tfjs`';
  }
}

/** What the worker reports after loading an engine. */
export interface EngineInfo {
  engine: TfjsEngine;
  /** tfjs backend name: 'tensorflow', 'wasm' or 'cpu' */
  tfBackend: string;
  device: string;
  version: string;
  /** Engines tried before this one (auto choice), with the reason each was skipped. */
  skipped: { engine: TfjsEngine; reason: string }[];
}

/** A failed load, as the worker reports it (errors do not cross comlink with their class). */
export interface EngineFailure { engine: TfjsEngine; reason: string; notInstalled: boolean }
