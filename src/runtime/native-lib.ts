// Native libraries bound at run time through koffi (the CBLAS engine, the oneDNN
// binding): loading koffi itself, trying candidate library names in order, the
// C library, and the address of a shared WebAssembly.Memory's first byte.
import { createRequire } from 'node:module';
import { errors } from '../errors.js';

// koffi is a native addon: load it lazily (require, so the ESM graph stays free of it).
const require = createRequire(import.meta.url);
export type Koffi = typeof import('koffi');
export type KLib = ReturnType<Koffi['load']>;

/** koffi, or E_ENGINE saying that `who` needs it. */
export function requireKoffi(who: string): Koffi {
  try { return require('koffi') as Koffi; } catch (e) {
    throw errors.engine(`${who} needs the 'koffi' package, which did not load (${(e as Error).message}); reinstall retnet's dependencies`, e);
  }
}

/** The first of `names` that loads and that `bind` accepts (bind returns a string: why not);
 *  else `{ tried }`, one entry per name with its reason. */
export function loadFirst<T>(koffi: Koffi, names: readonly string[], bind: (lib: KLib, name: string) => T | string): { value: T } | { tried: string[] } {
  const tried: string[] = [];
  for (const name of names) {
    let lib: KLib;
    try { lib = koffi.load(name); } catch (e) { tried.push(`${name} (${(e as Error).message.split('\n')[0]})`); continue; }
    let r: T | string;
    try { r = bind(lib, name); } catch (e) { r = (e as Error).message; }
    if (typeof r === 'string') { tried.push(`${name} (loaded, but ${r})`); continue; }
    return { value: r };
  }
  return { tried };
}

/** Keeps the shared library `name` (already loaded by koffi) mapped until the process ends: one more
 *  dlopen reference with RTLD_NODELETE (Linux). koffi closes its libraries while Node tears down, and a
 *  library with threads of its own (oneDNN's OpenMP team, spinning or parked in libgomp after a
 *  multi-threaded call) would then run unmapped code: a segfault at exit. Best effort; false if not pinned. */
export function pinLibrary(koffi: Koffi, name: string): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const dlopen = loadLibc(koffi).func('void *dlopen(const char *, int)') as (n: string, f: number) => unknown;
    const RTLD_NOW = 0x2, RTLD_NODELETE = 0x1000;
    return dlopen(name, RTLD_NOW | RTLD_NODELETE) !== null;
  } catch { return false; }
}

/** The process's C library. */
export const loadLibc = (koffi: Koffi): KLib =>
  koffi.load(process.platform === 'win32' ? 'msvcrt.dll' : process.platform === 'darwin' ? 'libSystem.B.dylib' : 'libc.so.6');

/** memory → the address of its first byte (cached per memory). memset(p, 0, 0) writes nothing and returns p:
 *  koffi passes a typed array's own storage (no copy), so p is the buffer's address; it is the same in every
 *  worker and stable across memory.grow for a shared memory. */
export function memoryBase(libc: KLib): (memory: WebAssembly.Memory) => number {
  const memset = libc.func('uintptr_t memset(void *, int, size_t)') as (p: Uint8Array, c: number, n: number) => number | bigint;
  const bases = new WeakMap<WebAssembly.Memory, number>();
  return (memory) => {
    let b = bases.get(memory);
    if (b === undefined) { b = Number(memset(new Uint8Array(memory.buffer, 0, 1), 0, 0)); bases.set(memory, b); }
    return b;
  };
}
