// The drift study as a benchmark entry: `retnet drift` with its defaults
// (L = 65536, backends wasm,tfjs) unless arguments are given, writing
// CSV/JSON/SVG under bench/results/drift. Prints parameters and machine.
import { main } from '../src/cli/main.js';
import { machine } from '../src/cli/gen.js';

const argv = process.argv.slice(2);
console.log('retnet drift study; machine:', JSON.stringify(machine()), 'arguments:', JSON.stringify(argv));
process.exitCode = await main(['drift', ...(argv.includes('--out-dir') ? [] : ['--out-dir', 'bench/results/drift']), ...argv]);
