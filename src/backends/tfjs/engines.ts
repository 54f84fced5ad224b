// Which TensorFlow.js engine to use, and how to load one. Shared by the main
// thread (option checks, error messages) and the tfjs worker (loading).

export type TfjsEngine = 'tfjs-node-gpu' | 'webgpu' | 'tfjs-node' | 'wasm' | 'cpu';
/** The automatic choice tries these in order ('webgpu' only on a real GPU adapter, never a software one). */
export const TFJS_ENGINES: readonly TfjsEngine[] = ['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm', 'cpu'];
/** Environment variable that names the engine (else: first that loads, in TFJS_ENGINES order). */
export const ENGINE_ENV = 'RETNET_TFJS_ENGINE';

/** Default bound on the elements of the largest per-window intermediate (compute.ts). */
export const DEFAULT_WINDOW_ELEMS = 1 << 24;

export const ENGINE_PACKAGE: Record<TfjsEngine, string> = {
  'tfjs-node-gpu': '@tensorflow/tfjs-node-gpu',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
  'tfjs-node': '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs',
};

export function installHint(engine: TfjsEngine): string {
  switch (engine) {
    case 'tfjs-node-gpu':
      return 'install it with `npm install @tensorflow/tfjs-node-gpu` (Linux x86-64, NVIDIA GPU with CUDA 11.2 and cuDNN 8.1; ' +
        'its install script downloads libtensorflow, so it needs network access to storage.googleapis.com)';
    case 'webgpu':
      return 'install it with `npm install webgpu @tensorflow/tfjs @tensorflow/tfjs-backend-webgpu` (Dawn, prebuilt; ' +
        'needs a Vulkan driver on Linux, Metal on macOS, D3D12 on Windows)';
    case 'tfjs-node':
      return 'install it with `npm install @tensorflow/tfjs-node` (its install script downloads libtensorflow)';
    case 'wasm':
      return 'install it with `npm install @tensorflow/tfjs @tensorflow/tfjs-backend-wasm`';
    case 'cpu':
      return 'install it with `npm install @tensorflow/tfjs`';
  }
}

/** Where a GPU comes from: WebGPU (from the registry, no CUDA), and tfjs-node-gpu only as the CUDA option. */
export function gpuAdvice(): string {
  return 'for a GPU, use WebGPU: `npm install webgpu @tensorflow/tfjs @tensorflow/tfjs-backend-webgpu` (prebuilt Dawn; Vulkan on Linux, ' +
    'Metal on macOS, D3D12 on Windows); on Linux x86-64 with CUDA 11.2 and cuDNN 8.1 only, @tensorflow/tfjs-node-gpu is the CUDA option';
}

/** What the worker reports after loading an engine. */
export interface EngineInfo {
  engine: TfjsEngine;
  /** tfjs backend name: 'tensorflow', 'webgpu', 'wasm' or 'cpu' */
  tfBackend: string;
  device: string;
  version: string;
  /** The WebGPU adapter (engine 'webgpu' only). */
  adapter?: AdapterInfo;
  /** Largest single tensor the engine can hold (bytes); absent: MAX_SCORE_BYTES applies. */
  maxTensorBytes?: number;
  /** Engines tried before this one (auto choice), with the reason each was skipped. */
  skipped: { engine: TfjsEngine; reason: string }[];
}

/** A failed load, as the worker reports it (errors do not cross comlink with their class). */
export interface EngineFailure { engine: TfjsEngine; reason: string; notInstalled: boolean }

/** What a WebGPU adapter says about itself, and the limits the E_MEMORY check uses. */
export interface AdapterInfo {
  vendor: string; architecture: string; device: string; description: string;
  /** A CPU emulation (llvmpipe, lavapipe, SwiftShader, WARP): never chosen automatically. */
  software: boolean;
  maxStorageBufferBindingSize: number; maxBufferSize: number;
}

/** Adapter-info fields as WebGPU reports them (GPUAdapterInfo, plus GPUAdapter.isFallbackAdapter). */
export interface RawAdapterInfo { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean }

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b/i;

/** Whether an adapter is a CPU emulation: flagged as the fallback adapter, an architecture
 *  'software' (Dawn on Mesa), or a known software rasteriser's name in device/description/vendor. */
export function isSoftwareAdapter(i: RawAdapterInfo): boolean {
  if (i.isFallbackAdapter) return true;
  if (/^(software|cpu)$/i.test(i.architecture ?? '')) return true;
  return SOFTWARE_NAMES.test(`${i.vendor ?? ''} ${i.device ?? ''} ${i.description ?? ''}`);
}

/** One line naming the adapter: "WebGPU: <description> (vendor <v>, architecture <a>[, software])". */
export function describeAdapter(a: AdapterInfo): string {
  const name = a.description || a.device || 'unnamed adapter';
  return `WebGPU: ${name} (vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'}${a.software ? ', software adapter: a CPU emulation' : ''})`;
}
