// The `webgpu` engine's device (tfjs worker side): Dawn through the `webgpu`
// package gives Node a `navigator.gpu`; we request the adapter ourselves so we
// can name it, refuse a software one unless asked, size the E_MEMORY check to
// its limits, and watch the device for loss and out-of-memory errors. tfjs's
// WebGPU backend is then registered over that device.
import type * as TF from '@tensorflow/tfjs';
import { describeAdapter, isSoftwareAdapter, type AdapterInfo, type RawAdapterInfo } from './engines.js';

type Tf = typeof TF;

/** A failure of the device (lost, out of memory, internal or validation error). The worker
 *  throws it with this name; the main thread turns it into E_ENGINE and restarts the worker. */
export class EngineFault extends Error {
  constructor(message: string) { super(message); this.name = 'EngineFault'; }
}

// The few WebGPU types used here (the package's types.d.ts pulls in @webgpu/types globally).
interface GpuError { message: string; constructor: { name: string } }
interface GpuDevice {
  lost: Promise<{ reason: string; message: string }>;
  limits: Record<string, number>;
  pushErrorScope(filter: 'out-of-memory' | 'validation' | 'internal'): void;
  popErrorScope(): Promise<GpuError | null>;
  addEventListener(type: 'uncapturederror', fn: (ev: { error: GpuError }) => void): void;
  destroy(): void;
}
interface GpuAdapter {
  info?: RawAdapterInfo; isFallbackAdapter?: boolean;
  features: Set<string>; limits: Record<string, number>;
  requestDevice(desc: { requiredFeatures: string[]; requiredLimits: Record<string, number> }): Promise<GpuDevice>;
}
interface Gpu { requestAdapter(opts: { powerPreference: 'high-performance' }): Promise<GpuAdapter | null> }

/** The loaded device and its watch. */
export interface WebGpuDevice {
  adapter: AdapterInfo;
  /** Why the device is unusable (lost), or undefined. */
  fault(): string | undefined;
  /** Run fn with the device's error scopes open; a device error inside becomes an EngineFault. */
  guard<R>(what: string, fn: () => Promise<R>): Promise<R>;
  /** Debug: destroy the device, as a driver reset would lose it. */
  lose(): void;
}

/** Dynamic import (the worker's, so a missing package fails as Node's resolution does). */
export type Loader = (spec: string) => Promise<Record<string, unknown>>;

/** Install navigator.gpu from the `webgpu` package, pick the adapter and make the device;
 *  then register tfjs's 'webgpu' backend on it. Throws Error (with .code from the loader when a
 *  package is missing) or a plain Error naming why the adapter is refused. */
export async function openWebGpu(tf: Tf, load: Loader, allowSoftware: boolean): Promise<WebGpuDevice> {
  const dawn = await load('webgpu') as { create: (flags: string[]) => Gpu; globals: Record<string, unknown> };
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('Dawn found no WebGPU adapter (on Linux: no Vulkan driver; install the GPU vendor\'s Vulkan driver, or Mesa\'s for a software one)');
  const raw: RawAdapterInfo = { ...pick(adapter.info), isFallbackAdapter: adapter.isFallbackAdapter ?? adapter.info?.isFallbackAdapter };
  const info: AdapterInfo = {
    vendor: raw.vendor ?? '', architecture: raw.architecture ?? '', device: raw.device ?? '', description: raw.description ?? '',
    software: isSoftwareAdapter(raw),
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize,
  };
  if (info.software && !allowSoftware) {
    throw new Error(`the adapter Dawn found is a software one (${describeAdapter(info)}), not chosen automatically; ask for it with RETNET_TFJS_ENGINE=webgpu`);
  }
  // Imported once navigator.gpu exists: the package registers its kernels (and a backend
  // factory of its own, replaced below by one over our device).
  const mod = await load('@tensorflow/tfjs-backend-webgpu') as { WebGPUBackend: new (device: unknown, info?: unknown) => TF.KernelBackend };
  // The same device request as tfjs's own factory (its kernels assume these limits).
  const L = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize, maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize, maxBufferSize: L.maxBufferSize,
      maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX, maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
    },
  });
  let lost: string | undefined;
  const uncaptured: string[] = [];
  void device.lost.then((i) => { lost = `the WebGPU device was lost (${i.reason || 'unknown'}${i.message ? `: ${i.message}` : ''})`; });
  device.addEventListener('uncapturederror', (ev) => { uncaptured.push(errorText(ev.error)); });

  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new mod.WebGPUBackend(device, adapter.info));

  return {
    adapter: info,
    fault: () => lost,
    async guard<R>(what: string, fn: () => Promise<R>): Promise<R> {
      if (lost) throw new EngineFault(lost);
      const filters = ['out-of-memory', 'internal', 'validation'] as const;
      for (const f of filters) device.pushErrorScope(f);
      let result: R | undefined, failure: unknown, failed = false;
      try { result = await fn(); } catch (e) { failure = e; failed = true; }
      const found: string[] = [];
      for (let i = 0; i < filters.length; i++) {
        const e = await device.popErrorScope().catch(() => null);
        if (e) found.push(errorText(e));
      }
      found.push(...uncaptured.splice(0));
      if (lost) found.unshift(lost);
      if (found.length) throw new EngineFault(`${what}: ${found.join('; ')}`);
      if (failed) throw failure;
      return result as R;
    },
    lose: () => device.destroy(),
  };
}

function pick(i: RawAdapterInfo | undefined): RawAdapterInfo {
  // GPUAdapterInfo's fields are getters on the prototype: copy them out by name.
  return i ? { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: i.isFallbackAdapter } : {};
}

function errorText(e: GpuError): string {
  const kind = e.constructor?.name === 'GPUOutOfMemoryError' ? 'out of GPU memory' : e.constructor?.name ?? 'GPUError';
  return `${kind}${e.message ? `: ${e.message}` : ''}`;
}
