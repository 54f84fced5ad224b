// Which executors exist. Each is loaded lazily (dynamic import) on first use,
// so importing the library never pulls in worker pools or TensorFlow.js.
import { registerExecutor } from './executor.js';

registerExecutor('wasm', () => import('../runtime/executor.js').then((m) => m.createWasmExecutor));
registerExecutor('tfjs', () => import('./tfjs/index.js').then((m) => m.createTfjsExecutor));
