// Transparent huge pages for the shared WebAssembly memories (Linux).
//
// V8 backs a WebAssembly.Memory with anonymous 4 KiB pages. Where the kernel's transparent huge
// pages are in 'madvise' mode (Debian's default), a region gets 2 MiB pages only when the process
// asks: madvise(MADV_HUGEPAGE). The weights and activations the engines stream through live in
// these memories (2.7 GB for the 1.3B fla model): with 2 MiB pages, one page fault and one TLB entry
// where 4 KiB pages need 512. The advice is given once, on the memory's whole reservation (maximum
// pages, 2 MiB-aligned inside it), before any page is touched, so later growth is covered too. It
// changes no arithmetic: results are bit for bit the same. Measured on the AMD EPYC VM (2026-12-07,
// docs/engines.md#memory-pages): the 1.3B's weights pack in 14–19 s instead of 22–23 s (fewer
// faults); scoring and decoding speed the same within that VM's noise.
//
// RETNET_HUGEPAGES=0 turns it off (for A/B measurements); unset or 1: on. Elsewhere (not Linux, no
// koffi, THP 'never') it is a no-op, and pagesOf() says why.
import { readFileSync } from 'node:fs';
import { envValue } from '../env.js';
import { RetNetError, errors } from '../errors.js';
import { loadLibc, memoryBase, requireKoffi } from '../runtime/native-lib.js';

const MADV_HUGEPAGE = 14;
const HUGE = 2 * 2 ** 20;

/** The kernel's THP mode ('always' | 'madvise' | 'never'), or null where there is none (not Linux). */
export function thpMode(): 'always' | 'madvise' | 'never' | null {
  if (process.platform !== 'linux') return null;
  try {
    const m = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
    return m && (m[1] === 'always' || m[1] === 'madvise' || m[1] === 'never') ? m[1] : null;
  } catch { return null; }
}

/** Whether RETNET_HUGEPAGES asks for the advice (default yes); E_OPTION for a value other than 0 or 1. */
export function hugePagesWanted(): boolean {
  const v = envValue('RETNET_HUGEPAGES');
  if (v === undefined || v === '1') return true;
  if (v === '0') return false;
  throw new RetNetError('E_OPTION', `the environment variable RETNET_HUGEPAGES must be 0 (off) or 1 (on, the default) (got ${JSON.stringify(v)})`);
}

type Advise = (memory: WebAssembly.Memory, off: number, bytes: number, align: number, advice: number) => boolean;
let adviser: Advise | null | undefined;

/** madvise(advice) through koffi on bytes [off, off + bytes) of a memory (its address: native-lib.ts's
 *  memoryBase), rounded inward to `align`; false where koffi or the C library does not load. */
function advise(memory: WebAssembly.Memory, off: number, bytes: number, align: number, advice: number): boolean {
  adviser ??= (() => {
    try {
      const libc = loadLibc(requireKoffi('madvise on the shared memory'));
      const baseOf = memoryBase(libc);
      const madvise = libc.func('int madvise(uintptr_t, size_t, int)') as (a: number, n: number, advice: number) => number;
      return (m: WebAssembly.Memory, o: number, n: number, al: number, adv: number) => {
        const base = baseOf(m);
        const start = Math.ceil((base + o) / al) * al, end = Math.floor((base + o + n) / al) * al;
        return end > start && madvise(start, end - start, adv) === 0;
      };
    } catch { return null; }
  })();
  return adviser !== null && adviser(memory, off, bytes, align, advice);
}

const status = new WeakMap<WebAssembly.Memory, string>();

/** What a memory made now would get: 'huge pages (madvise)', 'huge pages (THP always)', or
 *  '4 KiB pages (why)' (for benchmark records made before or without one). */
export function hugePages(): string {
  const mode = thpMode();
  if (mode === null) return '4 KiB pages (no transparent huge pages here)';
  if (mode === 'always') return 'huge pages (THP always)';
  if (mode === 'never') return '4 KiB pages (THP never)';
  return hugePagesWanted() ? 'huge pages (madvise)' : '4 KiB pages (RETNET_HUGEPAGES=0)';
}

/** Ask for 2 MiB pages on `memory` (a fresh one: pages touched before are not converted at once) where
 *  hugePages() says so. `maxBytes`: its maximum size. Returns what backs it now (as {@link pagesOf}). */
export function adviseHugePages(memory: WebAssembly.Memory, maxBytes: number): string {
  let s = hugePages();
  if (s === 'huge pages (madvise)') {
    if (!advise(memory, 0, maxBytes, HUGE, MADV_HUGEPAGE)) s = '4 KiB pages (madvise failed)';
  }
  status.set(memory, s);
  return s;
}

/** What backs a memory made by createMemory, for backendInfo(): as hugePages(), or '4 KiB pages
 *  (madvise failed)'. The kernel may still back an advised region with 4 KiB pages where it finds no
 *  free 2 MiB page. */
export function pagesOf(memory: WebAssembly.Memory): string {
  return status.get(memory) ?? '4 KiB pages (not made by createMemory)';
}

const MADV_DONTNEED = 4; // Linux

/** Gives back to the system the pages of bytes [off, off + bytes) of `memory` (the whole 4 KiB pages
 *  inside it; madvise MADV_DONTNEED): scratch whose contents are dead, e.g. a staging buffer after the
 *  weights it held were packed, so that it stops counting in the process's RSS. The bytes read as zeros
 *  afterwards (fresh pages on the next touch). False where this cannot be done (not Linux, no koffi):
 *  nothing is released and nothing changes. Only for memory no other thread is using at the time. */
export function releasePages(memory: WebAssembly.Memory, off: number, bytes: number): boolean {
  if (off < 0 || bytes < 0 || off + bytes > memory.buffer.byteLength) throw new RangeError(`releasePages: [${off}, ${off + bytes}) outside the memory's ${memory.buffer.byteLength} bytes`);
  return process.platform === 'linux' && advise(memory, off, bytes, 4096, MADV_DONTNEED);
}
