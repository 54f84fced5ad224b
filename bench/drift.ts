// The drift study as a benchmark entry: `retnet drift` at the benchmark's
// size (L = 65536, backends wasm,tfjs; the command's own defaults are smaller)
// unless arguments are given, writing CSV/JSON/SVG under bench/results/drift.
// Prints parameters and machine.
import { main } from '../src/cli/main.js';
import { machine } from '../src/cli/gen.js';

const argv = process.argv.slice(2);
const given = (flag: string) => argv.some((a) => a === flag || a.startsWith(`${flag}=`));
const defaults = [
  ...(given('--out-dir') ? [] : ['--out-dir', 'bench/results/drift']),
  ...(given('--length') ? [] : ['--length', '65536']),
  ...(given('--backends') ? [] : ['--backends', 'wasm,tfjs']),
];
console.log('retnet drift study; machine:', JSON.stringify(machine()), 'arguments:', JSON.stringify([...defaults, ...argv]));
process.exitCode = await main(['drift', ...defaults, ...argv]);
