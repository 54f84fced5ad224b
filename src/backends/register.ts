// Which executors exist. Each is loaded lazily (dynamic import) on first use,
// so importing the library never pulls in worker pools or TensorFlow.js.
import { registerExecutor } from './executor.js';

void registerExecutor; // backends register themselves below as they land

// tfjs: one worker thread owning TensorFlow.js (engine from RETNET_TFJS_ENGINE, else the first that loads).
registerExecutor('tfjs', () => import('./tfjs/index.js').then((m) => m.createTfjsExecutor));
