// Which executors exist. Each is loaded lazily (dynamic import) on first use,
// so importing the library never pulls in worker pools or TensorFlow.js.
import { registerExecutor } from './executor.js';

void registerExecutor; // backends register themselves below as they land
