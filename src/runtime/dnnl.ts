// oneDNN (libdnnl.so.2, Debian `libdnnl2`) bound at run time through koffi: the matmul
// primitive for the big products, bfloat16 or float32 operands with float32 accumulation,
// reading and writing float32 rows in place by byte address (e.g. the shared
// WebAssembly.Memory's base + a byte offset, as the CBLAS engine does).
//
// What this file relies on (oneDNN 2.6 C API, checked against its headers and by probes on
// this machine; see createDnnlMatmul):
// - A matmul primitive descriptor created with the weights memory desc `format_tag_any`
//   picks its own weights layout; the weights are reordered once into it (oneDNN-owned memory,
//   or a caller-given address) and reused by every call.
// - With M = DNNL_RUNTIME_DIM_VAL oneDNN 2.6 dispatches to `gemm:jit` (it packs W on each call);
//   with a fixed M it dispatches to the brgemm kernels (`brg:avx512_core_bf16`,
//   `brg:avx512_core_amx_bf16`, `brg:avx512_core` …), ~1.3× faster at M = 512 and ~3× at M = 7
//   here. `rows: 'fixed'` (the default) keeps one brgemm primitive per row count (created on
//   first use, cached) over the one reordered copy of W, each made with W's layout given (the
//   layout the M = 512 primitive chose), not `format_tag_any`: left to choose, brgemm picks its
//   column block from M, N and its threads (oneDNN 2.6 brgemm_matmul_utils.cpp: on AMX for one
//   block of both M and N; on AVX-512 where the threads outnumber the column blocks), so a
//   primitive for a few rows could want BA16a32b2a where W is in BA16a64b2a. `rows: 'runtime'`
//   is the single runtime-M primitive.
// - 2.6's brgemm matmul takes dense src and dst only (a leading dimension ≠ K or N sends it to
//   gemm:jit, with another weights layout): 'fixed' stages strided rows through dense scratches
//   (reorder primitives; O(M·(K+N)) bytes against O(M·N·K) flops).
// - oneDNN 2.6 has no matmul with float32 src and bfloat16 weights (`unimplemented`): the bf16
//   primitive's float32 src rows are first converted to bfloat16 (round to nearest even) into
//   a scratch by a oneDNN reorder primitive.
// - Accumulation (dst += src·Wᵀ) is a `sum` post-op (a second primitive per row count).
// - Threads: Debian's build uses OpenMP (libgomp; `dnnl_version()->cpu_runtime`). oneDNN 2.x
//   has no dnnl_set_num_threads for OpenMP builds; a primitive takes omp_get_max_threads() of
//   the creating thread when created and runs that many. `omp_set_num_threads` sets an ICV of
//   the calling thread only, so every thread that creates matmuls calls it (loadDnnl and
//   createDnnlMatmul do, with `threads`, default 1: the worker pool is the parallelism). It is
//   resolved through libdnnl's own handle, so it reaches the libgomp oneDNN is linked to.
//   (OMP_NUM_THREADS, read once when libgomp loads, also works but a Worker's process.env is a
//   copy and never reaches libgomp.) TBB builds: not limited from here (reported as 'tbb').
import { errors } from '../errors.js';

/** Library names tried in order when RETNET_DNNL is not set. */
export const DNNL_CANDIDATES: readonly string[] = process.platform === 'darwin'
  ? ['libdnnl.3.dylib', 'libdnnl.2.dylib', 'libdnnl.dylib']
  : process.platform === 'win32'
    ? ['dnnl.dll']
    : ['libdnnl.so.2', 'libdnnl.so.3', 'libdnnl.so'];

export const DNNL_INSTALL_HINT = 'install oneDNN (Debian/Ubuntu: apt-get install -y libdnnl2) or set RETNET_DNNL=/path/to/libdnnl.so.2';

export type DnnlDtype = 'bf16' | 'f32';

export interface DnnlLibrary {
  /** the path or name given to the loader */
  path: string;
  /** 'major.minor.patch' */
  version: string;
  /** the sources' git hash ('N/A' in Debian's build) */
  hash: string;
  /** CPU threading runtime: 'omp' | 'tbb' | 'seq' | 'threadpool' | 'none' | 'runtime N' */
  cpuRuntime: string;
  /** the effective CPU ISA oneDNN dispatches to, e.g. 'avx512_core_bf16', 'avx512_core_amx', 'avx2' */
  isa: string;
  /** e.g. 'onednn 2.6.3 (avx512_core_bf16, omp)' */
  label: string;
  /** whether this ISA has native bfloat16 dot products (AVX512-BF16 or AMX) */
  hasBf16Hardware: boolean;
  /** Sets the calling thread's oneDNN thread count (OpenMP: omp_set_num_threads); false where it cannot (TBB). */
  setThreads(n: number): boolean;
  /** the calling thread's thread count (omp_get_max_threads), null where unknown */
  threads(): number | null;
  /** the address of a WebAssembly.Memory's first byte */
  baseOf(memory: WebAssembly.Memory): number;
}

export interface DnnlMatmulOptions {
  /** output columns (rows of W) */
  N: number;
  /** reduction length (columns of W and of src) */
  K: number;
  /** operand type of the products: 'bf16' (src rounded to bfloat16 on the way in, float32 accumulation) or 'f32' */
  dtype: DnnlDtype;
  /** W [N, K] row-major: bfloat16 bits (Uint16Array; widened exactly for dtype 'f32') or float32 (Float32Array;
   *  rounded to bfloat16 for 'bf16'), or a byte address where such an array lies (`weightsType` says which).
   *  Omitted: `packedAt` already holds W reordered by another matmul of the same N, K, dtype. */
  weights?: Uint16Array | Float32Array | number;
  /** element type at a `weights` address (default: dtype) */
  weightsType?: DnnlDtype;
  /** Where the reordered W lives: omitted → oneDNN-owned memory; a byte address (packedBytes long,
   *  64-byte aligned; e.g. in the shared WASM memory, so every worker's primitive reads one copy)
   *  → written there when `weights` is given, else taken as already written there. */
  packedAt?: number;
  /** 'fixed' (default): one brgemm primitive per row count, created on first use; 'runtime': one
   *  primitive with M = DNNL_RUNTIME_DIM_VAL (oneDNN 2.6: gemm:jit) */
  rows?: 'fixed' | 'runtime';
  /** this thread's oneDNN threads (default 1) */
  threads?: number;
  /** library path (default RETNET_DNNL, then DNNL_CANDIDATES) */
  path?: string;
  /** only packedBytes is wanted (no weights memory is created; run() is unusable) */
  sizeOnly?: boolean;
  /** W is not reordered: every run() names it (weightsAt) as plain row-major [N, K] of `dtype`, leading
   *  dimension K — for weights made per call (e.g. BF16 rows widened to float32 into a scratch).
   *  `weights` and `packedAt` are then not given; packedBytes is N·K·(element size). */
  plainWeights?: boolean;
}

export interface DnnlMatmul {
  readonly N: number;
  readonly K: number;
  readonly dtype: DnnlDtype;
  readonly rows: 'fixed' | 'runtime';
  readonly library: DnnlLibrary;
  /** bytes of the reordered W */
  readonly packedBytes: number;
  /** byte address of the reordered W */
  readonly packedAddress: number;
  /** the implementation oneDNN dispatched to for `M` rows (creates that primitive if needed), e.g. 'brg:avx512_core_bf16' */
  impl(M?: number, accumulate?: boolean): string;
  /** dst[M, N] (= or +=) src[M, K]·Wᵀ. src, dst: byte addresses of float32 rows with leading dimensions
   *  ldSrc ≥ K, ldDst ≥ N (elements). `weightsAt`: the byte address of another W of the same N, K and
   *  dtype, already reordered there (packedBytes long, 64-byte aligned), used from this call on
   *  instead of the current one — so one matmul serves every weight of a shape. Synchronous. */
  run(src: number, M: number, ldSrc: number, dst: number, ldDst: number, accumulate?: boolean, weightsAt?: number): void;
  /** frees every primitive, memory object and the oneDNN-owned W; the object is unusable after */
  destroy(): void;
}

// ---- oneDNN 2.x C API constants (dnnl_types.h) ----
const OK = 0;
const ENGINE_CPU = 1;
const STREAM_DEFAULT = 1;
const DT = { bf16: 2, f32: 3 } as const, DT_U8 = 6;
const TAG_ANY = 1, TAG_AB = 3;
const Q_IMPL_INFO_STR = 8, Q_WEIGHTS_MD = 131;
const ARG_SRC = 1, ARG_DST = 17, ARG_WEIGHTS = 33;
const RUNTIME_DIM = -(2n ** 63n); // DNNL_RUNTIME_DIM_VAL = INT64_MIN
const MEMORY_ALLOCATE = 0xffffffffffffffffn; // DNNL_MEMORY_ALLOCATE = (void *)(size_t)-1, passed as a uintptr_t
// sizeof(dnnl_memory_desc_t) = 696, sizeof(dnnl_matmul_desc_t) = 2,800 in 2.6 (x86-64): buffers with room to spare
const MD_BYTES = 1024, OPDESC_BYTES = 4096;

const ISA: Record<number, string> = {
  0x0: 'all', 0x1: 'sse41', 0x3: 'avx', 0x7: 'avx2', 0x407: 'avx2_vnni', 0xf: 'avx512_mic', 0x1f: 'avx512_mic_4ops',
  0x27: 'avx512_core', 0x67: 'avx512_core_vnni', 0xe7: 'avx512_core_bf16', 0x3e7: 'avx512_core_amx',
};
const RUNTIMES: Record<number, string> = { 0: 'none', 1: 'seq', 2: 'omp', 4: 'tbb', 8: 'threadpool' };

import { loadFirst, loadLibc, pinLibrary, memoryBase, requireKoffi, type Koffi, type KLib } from './native-lib.js';
type Fn = (...a: unknown[]) => unknown;

interface Api {
  koffi: Koffi;
  status2str: (s: number) => string;
  engineCreate: Fn; streamCreate: Fn; streamWait: Fn;
  mdByTag: Fn; mdByStrides: Fn; mdEqual: (a: unknown, b: unknown) => number; mdSize: (md: unknown) => number | bigint;
  matmulDescInit: Fn; reorderPdCreate: Fn;
  attrCreate: Fn; attrDestroy: Fn; attrSetPostOps: Fn; postOpsCreate: Fn; postOpsDestroy: Fn; postOpsAppendSum: Fn;
  pdCreate: Fn; pdDestroy: Fn; pdQuery: Fn; pdQueryMd: (pd: number, what: number, index: number) => number | bigint;
  primCreate: Fn; primDestroy: Fn; execute: Fn;
  memCreate: Fn; memDestroy: Fn; memSetHandle: Fn; memGetHandle: Fn;
  memcpy: Fn;
  engine: number; stream: number;
}

interface Loaded { lib: DnnlLibrary; api: Api }
const loaded = new Map<string, Loaded>();

function num(v: unknown): number { return typeof v === 'bigint' ? Number(v) : (v as number); }

function load(path: string | undefined): Loaded {
  const key = path ?? '';
  const have = loaded.get(key);
  if (have) return have;
  const koffi = requireKoffi('oneDNN (bound through koffi)');
  const r = loadFirst(koffi, path ? [path] : DNNL_CANDIDATES, (lib, name) => bind(koffi, lib, name));
  if ('value' in r) {
    // its OpenMP threads outlive any call: keep the code they run mapped through Node's teardown
    pinLibrary(koffi, r.value.lib.path);
    loaded.set(key, r.value);
    return r.value;
  }
  const tried = r.tried;
  throw errors.engine(`no oneDNN library could be loaded; tried: ${tried.join('; ')}. To use it, ${DNNL_INSTALL_HINT}`);
}

function bind(koffi: Koffi, lib: KLib, name: string): Loaded {
  const f = (decl: string) => lib.func(decl) as Fn;
  const opt = (decl: string): Fn | null => { try { return lib.func(decl) as Fn; } catch { return null; } };
  // koffi type names are registered once per process: reuse on a second library
  let V: unknown;
  try { V = koffi.struct('retnet_dnnl_version_t', { major: 'int', minor: 'int', patch: 'int', hash: 'const char *', cpu_runtime: 'unsigned int', gpu_runtime: 'unsigned int' }); }
  catch { V = (koffi as unknown as { type: (n: string) => unknown }).type('retnet_dnnl_version_t'); }
  const versionFn = lib.func('const retnet_dnnl_version_t *dnnl_version()') as () => unknown;
  const v = koffi.decode(versionFn(), V as never) as { major: number; minor: number; patch: number; hash: string | null; cpu_runtime: number };
  if (v.major !== 2) throw new Error(`oneDNN ${v.major}.${v.minor}.${v.patch} is not supported (this binding uses the 2.x C API)`);
  const isaCode = num(f('int dnnl_get_effective_cpu_isa()')());
  const libc = loadLibc(koffi);
  const api: Api = {
    koffi,
    status2str: f('const char *dnnl_status2str(int)') as (s: number) => string,
    engineCreate: f('int dnnl_engine_create(void *engine, int kind, size_t index)'),
    streamCreate: f('int dnnl_stream_create(void *stream, uintptr_t engine, unsigned int flags)'),
    streamWait: f('int dnnl_stream_wait(uintptr_t stream)'),
    mdByTag: f('int dnnl_memory_desc_init_by_tag(void *md, int ndims, const int64_t *dims, int dt, int tag)'),
    mdByStrides: f('int dnnl_memory_desc_init_by_strides(void *md, int ndims, const int64_t *dims, int dt, const int64_t *strides)'),
    mdEqual: f('int dnnl_memory_desc_equal(uintptr_t a, uintptr_t b)') as Api['mdEqual'],
    mdSize: f('size_t dnnl_memory_desc_get_size(uintptr_t md)') as Api['mdSize'],
    matmulDescInit: f('int dnnl_matmul_desc_init(void *desc, void *src, void *weights, void *bias, void *dst)'),
    reorderPdCreate: f('int dnnl_reorder_primitive_desc_create(void *pd, void *src_md, uintptr_t src_engine, void *dst_md, uintptr_t dst_engine, uintptr_t attr)'),
    attrCreate: f('int dnnl_primitive_attr_create(void *attr)'),
    attrDestroy: f('int dnnl_primitive_attr_destroy(uintptr_t attr)'),
    attrSetPostOps: f('int dnnl_primitive_attr_set_post_ops(uintptr_t attr, uintptr_t post_ops)'),
    postOpsCreate: f('int dnnl_post_ops_create(void *post_ops)'),
    postOpsDestroy: f('int dnnl_post_ops_destroy(uintptr_t post_ops)'),
    postOpsAppendSum: f('int dnnl_post_ops_append_sum(uintptr_t post_ops, float scale)'),
    pdCreate: f('int dnnl_primitive_desc_create(void *pd, void *op_desc, uintptr_t attr, uintptr_t engine, uintptr_t hint)'),
    pdDestroy: f('int dnnl_primitive_desc_destroy(uintptr_t pd)'),
    pdQuery: f('int dnnl_primitive_desc_query(uintptr_t pd, int what, int index, void *result)'),
    pdQueryMd: f('uintptr_t dnnl_primitive_desc_query_md(uintptr_t pd, int what, int index)') as Api['pdQueryMd'],
    primCreate: f('int dnnl_primitive_create(void *prim, uintptr_t pd)'),
    primDestroy: f('int dnnl_primitive_destroy(uintptr_t prim)'),
    execute: f('int dnnl_primitive_execute(uintptr_t prim, uintptr_t stream, int nargs, void *args)'),
    memCreate: f('int dnnl_memory_create(void *memory, void *md, uintptr_t engine, uintptr_t handle)'),
    memDestroy: f('int dnnl_memory_destroy(uintptr_t memory)'),
    memSetHandle: f('int dnnl_memory_set_data_handle(uintptr_t memory, uintptr_t handle)'),
    memGetHandle: f('int dnnl_memory_get_data_handle(uintptr_t memory, void *handle)'),
    memcpy: libc.func('uintptr_t memcpy(uintptr_t dst, const void *src, size_t n)') as Fn,
    engine: 0, stream: 0,
  };
  const ck = check(api);
  api.engine = ck('dnnl_engine_create', (o) => api.engineCreate(o, ENGINE_CPU, 0));
  api.stream = ck('dnnl_stream_create', (o) => api.streamCreate(o, api.engine, STREAM_DEFAULT));

  const cpuRuntime = RUNTIMES[v.cpu_runtime] ?? `runtime ${v.cpu_runtime}`;
  const ompSet = cpuRuntime === 'omp' ? opt('void omp_set_num_threads(int)') : null;
  const ompGet = cpuRuntime === 'omp' ? opt('int omp_get_max_threads()') : null;
  const isa = ISA[isaCode] ?? `isa 0x${isaCode.toString(16)}`;
  const version = `${v.major}.${v.minor}.${v.patch}`;
  const baseOf = memoryBase(libc);
  const out: DnnlLibrary = {
    path: name, version, hash: v.hash ?? 'N/A', cpuRuntime, isa,
    label: `onednn ${version} (${isa}, ${cpuRuntime})`,
    hasBf16Hardware: isaCode === 0xe7 || isaCode === 0x3e7,
    setThreads(n) {
      if (cpuRuntime === 'seq') return n === 1;
      if (!ompSet) return false;
      ompSet(n);
      return true;
    },
    threads: () => cpuRuntime === 'seq' ? 1 : ompGet ? num(ompGet()) : null,
    baseOf,
  };
  out.setThreads(1);
  return { lib: out, api };
}

/** (what, call with an 8-byte out slot) → the handle written there; throws E_ENGINE on a non-zero status. */
function check(api: Api) {
  return (what: string, call: (out: Buffer) => unknown): number => {
    const o = Buffer.alloc(8);
    status(api, what, call(o));
    return Number(o.readBigUInt64LE(0));
  };
}
function status(api: Api, what: string, s: unknown): void {
  const code = num(s);
  if (code !== OK) throw errors.engine(`oneDNN ${what} failed: ${api.status2str(code)} (status ${code})`);
}

/** Loads oneDNN: `path` (RETNET_DNNL) or the first of DNNL_CANDIDATES that loads; sets the calling
 *  thread's oneDNN threads to 1. Throws E_ENGINE naming every attempt and the install command. */
export function loadDnnl(path: string | undefined = process.env.RETNET_DNNL || undefined): DnnlLibrary {
  return load(path).lib;
}

const bf16Probe = new Map<string, string | null>();
/** null when oneDNN (loaded from `path`) has a bfloat16 matmul on this CPU, else why not. oneDNN 2.6 has
 *  one from avx512_core up (emulated there, in hardware with AVX512-BF16 or AMX) and none below it (AVX2:
 *  primitive_desc_create is `unimplemented`); later versions add others, so this asks oneDNN (one tiny
 *  primitive descriptor, once per library) rather than reading the ISA. Throws when oneDNN does not load. */
export function dnnlBf16Missing(path: string | undefined = process.env.RETNET_DNNL || undefined): string | null {
  const lib = loadDnnl(path);
  const key = lib.path;
  if (!bf16Probe.has(key)) {
    let why: string | null = null;
    try { createDnnlMatmul({ N: 16, K: 32, dtype: 'bf16', path, sizeOnly: true }).destroy(); } catch (e) {
      if (!/: unimplemented \(status 3\)$/.test((e as Error).message)) throw e;
      why = `${lib.label} has no bfloat16 matmul on this CPU`;
    }
    bf16Probe.set(key, why);
  }
  return bf16Probe.get(key)!;
}

/** null when oneDNN loads here, else the reason (for tests' canRun and the engine's fallback). */
export function dnnlMissing(path?: string): string | null {
  try { loadDnnl(path); return null; } catch (e) { return (e as Error).message; }
}

const dims = (...d: (number | bigint)[]) => BigInt64Array.from(d.map((x) => BigInt(x)));

/** float32 → bfloat16 bits, round to nearest even (NaN stays a quiet NaN). */
export function toBf16(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
/** bfloat16 bits → number */
export function fromBf16(b: number): number {
  return new Float32Array(new Uint32Array([(b & 0xffff) << 16]).buffer)[0]!;
}

interface Step { prim: number; args: Buffer; n: number }
interface Entry {
  impl: string;
  /** reorders (src → dense scratch, dst → dense scratch), the matmul, (dense scratch → dst), in order */
  steps: Step[];
  /** memory objects whose handles each call sets: the caller's src/dst, the dense scratches (0: none) */
  srcUser: number; dstUser: number; srcStage: number; dstStage: number;
  srcBytes: number; dstBytes: number;
  /** what this entry created (destroyed when it leaves the cache) */
  ownPrims: number[]; ownMems: number[];
}

/** Dense staging scratch (bytes, 64-byte aligned by oneDNN), grown on demand. One pair per thread and
 *  library, shared by every matmul of that thread: calls are synchronous, so two never overlap. */
class Scratch {
  mem = 0; addr = 0; bytes = 0;
  constructor(private readonly api: Api) {}
  ensure(bytes: number): number {
    if (bytes > this.bytes) {
      const { api } = this;
      const size = Math.max(bytes, Math.min(2 * this.bytes, 1 << 30));
      const md = Buffer.alloc(MD_BYTES);
      status(api, 'memory_desc_init_by_strides', api.mdByStrides(md, 2, dims(1, size), DT_U8, dims(size, 1)));
      const m = check(api)('memory_create', (o) => api.memCreate(o, md, api.engine, MEMORY_ALLOCATE));
      if (this.mem) api.memDestroy(this.mem);
      this.mem = m; this.bytes = size;
      this.addr = check(api)('memory_get_data_handle', (o) => api.memGetHandle(m, o));
    }
    return this.addr;
  }
}
const scratches = new WeakMap<Api, { src: Scratch; dst: Scratch }>();
function threadScratch(api: Api): { src: Scratch; dst: Scratch } {
  let s = scratches.get(api);
  if (!s) { s = { src: new Scratch(api), dst: new Scratch(api) }; scratches.set(api, s); }
  return s;
}

/** Bytes W [N, K] occupies once reordered into the layout oneDNN's matmul picks (what
 *  createDnnlMatmul's `packedAt` must hold), for `dtype` operands. */
export function dnnlWeightsBytes(N: number, K: number, dtype: DnnlDtype, path?: string): number {
  const mm = createDnnlMatmul({ N, K, dtype, path, sizeOnly: true });
  try { return mm.packedBytes; } finally { mm.destroy(); }
}

/** A oneDNN matmul dst[M, N] (= | +=) src[M, K]·Wᵀ over float32 rows at byte addresses, W reordered once.
 *  One per thread: the primitives, scratch and stream are not shared between threads (the reordered W may be, via packedAt). */
export function createDnnlMatmul(opts: DnnlMatmulOptions): DnnlMatmul {
  const { N, K, dtype } = opts;
  const rows = opts.rows ?? 'fixed';
  if (!(Number.isInteger(N) && N > 0 && Number.isInteger(K) && K > 0)) throw errors.engine(`dnnl matmul: N and K must be positive integers (got N=${N}, K=${K})`);
  if (dtype !== 'bf16' && dtype !== 'f32') throw errors.engine(`dnnl matmul: dtype must be 'bf16' or 'f32' (got ${String(dtype)})`);
  const { lib, api } = load(opts.path ?? (process.env.RETNET_DNNL || undefined));
  lib.setThreads(opts.threads ?? 1);
  const ck = check(api);
  const st = (what: string, s: unknown) => status(api, what, s);
  const dt = DT[dtype];
  const owned: { mems: number[]; prims: number[]; pds: number[] } = { mems: [], prims: [], pds: [] };

  const md = () => Buffer.alloc(MD_BYTES);
  const mdStrided = (m: number | bigint, n: number, ld: number | bigint, t: number) => {
    const b = md(); st('memory_desc_init_by_strides', api.mdByStrides(b, 2, dims(m, n), t, dims(ld, 1))); return b;
  };
  /** a matmul pd for M rows (or RUNTIME_DIM) with fixed (or runtime) leading dimensions; `wLayout`: the
   *  weights' memory desc (default: plain rows with plainWeights, else format_tag_any — oneDNN's choice) */
  const matmulPd = (M: number | bigint, ldS: number | bigint, ldD: number | bigint, acc: boolean, wLayout?: ArrayBuffer): number => {
    const s = mdStrided(M, K, ldS, dt);
    let w: Buffer | ArrayBuffer = md();
    if (wLayout) w = wLayout;
    else if (opts.plainWeights) st('memory_desc_init_by_strides', api.mdByStrides(w, 2, dims(K, N), dt, dims(1, K))); // W [N, K] row-major
    else st('memory_desc_init_by_tag', api.mdByTag(w, 2, dims(K, N), dt, TAG_ANY));
    const d = mdStrided(M, N, ldD, DT.f32);
    const desc = Buffer.alloc(OPDESC_BYTES);
    st('matmul_desc_init', api.matmulDescInit(desc, s, w, null, d));
    let attr = 0, po = 0;
    try {
      if (acc) {
        attr = ck('primitive_attr_create', (o) => api.attrCreate(o));
        po = ck('post_ops_create', (o) => api.postOpsCreate(o));
        st('post_ops_append_sum', api.postOpsAppendSum(po, 1));
        st('primitive_attr_set_post_ops', api.attrSetPostOps(attr, po));
      }
      return ck(`matmul primitive_desc_create (${dtype}, M=${M === RUNTIME_DIM ? 'runtime' : M}, N=${N}, K=${K})`,
        (o) => api.pdCreate(o, desc, attr, api.engine, 0));
    } finally {
      if (po) api.postOpsDestroy(po);
      if (attr) api.attrDestroy(attr);
    }
  };
  const implOf = (pd: number): string => {
    const o = Buffer.alloc(8);
    st('primitive_desc_query(impl_info_str)', api.pdQuery(pd, Q_IMPL_INFO_STR, 0, o));
    return api.koffi.decode(o.readBigUInt64LE(0), 'char', -1) as string;
  };
  /** a memory object over `handle` (an address, 0 = set per call, or MEMORY_ALLOCATE) */
  const memory = (mdesc: Buffer | ArrayBuffer, handle: number | bigint): number => {
    const m = ck('memory_create', (o) => api.memCreate(o, mdesc, api.engine, handle));
    owned.mems.push(m);
    return m;
  };
  const forget = (mem: number) => { api.memDestroy(mem); owned.mems.splice(owned.mems.indexOf(mem), 1); };
  const handleOf = (mem: number) => ck('memory_get_data_handle', (o) => api.memGetHandle(mem, o));
  /** a memory desc owned by oneDNN (a primitive desc's), as a view the `void *` parameters take */
  const mdView = (p: number) => api.koffi.view(BigInt(p) as never, MD_BYTES) as ArrayBuffer;
  /** one-off reorder from → to */
  const reorder = (from: number, fromMd: Buffer | ArrayBuffer, to: number, toMd: Buffer | ArrayBuffer) => {
    const pd = ck('reorder primitive_desc_create', (o) => api.reorderPdCreate(o, fromMd, api.engine, toMd, api.engine, 0));
    try {
      const prim = ck('primitive_create(reorder)', (o) => api.primCreate(o, pd));
      try {
        const args = Buffer.alloc(32);
        args.writeInt32LE(ARG_SRC, 0); args.writeBigUInt64LE(BigInt(from), 8);
        args.writeInt32LE(ARG_DST, 16); args.writeBigUInt64LE(BigInt(to), 24);
        st('primitive_execute(reorder)', api.execute(prim, api.stream, 2, args));
        st('stream_wait', api.streamWait(api.stream));
      } finally { api.primDestroy(prim); }
    } finally { api.pdDestroy(pd); }
  };

  // ---- the reference primitive: its weights layout is the one W is reordered into ----
  const refPd = rows === 'runtime' ? matmulPd(RUNTIME_DIM, RUNTIME_DIM, RUNTIME_DIM, false) : matmulPd(512, K, N, false);
  owned.pds.push(refPd);
  const wMdPtr = num(api.pdQueryMd(refPd, Q_WEIGHTS_MD, 0)), wMd = mdView(wMdPtr);
  const packedBytes = num(api.mdSize(wMdPtr));
  let wMem: number;
  if (opts.plainWeights && (opts.weights !== undefined || opts.packedAt !== undefined)) throw errors.engine('dnnl matmul: plainWeights takes W per call (weightsAt), not weights or packedAt');
  if (opts.sizeOnly || opts.plainWeights) wMem = memory(wMd, 0);
  else if (opts.packedAt !== undefined) wMem = memory(wMd, opts.packedAt);
  else if (opts.weights === undefined) throw errors.engine('dnnl matmul: give weights, or packedAt with weights already reordered there');
  else wMem = memory(wMd, MEMORY_ALLOCATE);
  const packedAddress = handleOf(wMem);
  let wAt = packedAddress; // where wMem points now (run's weightsAt moves it)
  if (opts.weights !== undefined && !opts.sizeOnly) {
    const w = opts.weights;
    const wt: DnnlDtype = typeof w === 'number' ? (opts.weightsType ?? dtype) : w instanceof Uint16Array ? 'bf16' : 'f32';
    if (typeof w !== 'number' && w.length !== N * K) throw errors.engine(`dnnl matmul: weights hold ${w.length} values, want N·K = ${N * K}`);
    // W [N, K] row-major is the matmul's weights [K, N] with strides (1, K); the reorder converts f32 → bf16 (RNE)
    // or widens bf16 → f32 (exact) too
    const userMd = md();
    st('memory_desc_init_by_strides', api.mdByStrides(userMd, 2, dims(K, N), DT[wt], dims(1, K)));
    let userMem: number;
    if (typeof w === 'number') userMem = memory(userMd, w);
    else {
      userMem = memory(userMd, MEMORY_ALLOCATE);
      api.memcpy(handleOf(userMem), w, w.byteLength);
    }
    reorder(userMem, userMd, wMem, wMd);
    forget(userMem);
  }

  // ---- per (M, ldSrc, ldDst, accumulate): primitive, staging reorders, memory objects, exec args ----
  // oneDNN 2.6's brgemm matmul takes dense src and dst only (strided ones go to gemm:jit, which wants
  // another weights layout): 'fixed' stages through dense scratches — the bf16 src conversion writes a
  // dense copy anyway; a strided f32 src is copied; a strided dst is computed densely and copied out
  // (and, to accumulate, copied in first). Copies are reorder primitives: O(M·(K+N)) against O(M·N·K).
  const { src: srcScratch, dst: dstScratch } = threadScratch(api);
  const cache = new Map<string, Entry>();
  let runtimePrims: [number, string][] | null = null;
  const primFor = (M: number, acc: boolean): { prim: number; impl: string } => {
    if (rows === 'runtime') {
      if (!runtimePrims) {
        runtimePrims = [false, true].map((a) => {
          const pd = a ? matmulPd(RUNTIME_DIM, RUNTIME_DIM, RUNTIME_DIM, true) : refPd;
          if (a) owned.pds.push(pd);
          const prim = ck('primitive_create(matmul)', (o) => api.primCreate(o, pd));
          owned.prims.push(prim);
          return [prim, implOf(pd)];
        });
      }
      const [prim, impl] = runtimePrims[acc ? 1 : 0]!;
      return { prim, impl };
    }
    // the weights' layout is the reference primitive's, given, not left to oneDNN: its blocking heuristics
    // pick the N block (64, 48 or 32 columns: BA16a64b2a, BA16a32b2a, …) from M, N and the threads (a single
    // block of both M and N on AMX; fewer column blocks than threads on AVX-512), so a format_tag_any
    // primitive for a few rows may want another layout than M = 512's. Given the layout, brgemm keeps it.
    const pd = matmulPd(M, K, N, acc, wMd);
    try {
      if (!api.mdEqual(num(api.pdQueryMd(pd, Q_WEIGHTS_MD, 0)), wMdPtr)) {
        throw errors.engine(`dnnl matmul: the primitive for M=${M} (${implOf(pd)}) wants another weights layout than M=512; use rows: 'runtime'`);
      }
      const prim = ck('primitive_create(matmul)', (o) => api.primCreate(o, pd));
      owned.prims.push(prim);
      return { prim, impl: implOf(pd) };
    } finally { api.pdDestroy(pd); }
  };
  const reorderPrim = (from: Buffer, to: Buffer): number => {
    const pd = ck('reorder primitive_desc_create', (o) => api.reorderPdCreate(o, from, api.engine, to, api.engine, 0));
    try {
      const p = ck('primitive_create(reorder)', (o) => api.primCreate(o, pd));
      owned.prims.push(p);
      return p;
    } finally { api.pdDestroy(pd); }
  };
  const args = (...pairs: [number, number][]) => {
    const b = Buffer.alloc(16 * pairs.length);
    pairs.forEach(([arg, mem], i) => { b.writeInt32LE(arg, 16 * i); b.writeBigUInt64LE(BigInt(mem), 16 * i + 8); });
    return b;
  };
  const entry = (M: number, ldS: number, ldD: number, acc: boolean): Entry => {
    const key = `${M},${ldS},${ldD},${acc ? 1 : 0}`;
    let e = cache.get(key);
    if (e) return e;
    if (cache.size >= 64) { // destroy the oldest entry's own objects (primitives, memory objects)
      const k0 = cache.keys().next().value as string;
      const old = cache.get(k0)!;
      cache.delete(k0);
      for (const p of old.ownPrims) { api.primDestroy(p); owned.prims.splice(owned.prims.indexOf(p), 1); }
      for (const m of old.ownMems) forget(m);
    }
    const { prim, impl } = primFor(M, acc);
    const p0 = owned.prims.length - (rows === 'fixed' ? 1 : 0), m0 = owned.mems.length; // primFor's fixed-M primitive is this entry's
    const steps: Step[] = [];
    const srcUserMd = mdStrided(M, K, ldS, DT.f32), dstUserMd = mdStrided(M, N, ldD, DT.f32);
    const srcUser = memory(srcUserMd, 0), dstUser = memory(dstUserMd, 0);
    let srcMm = srcUser, dstMm = dstUser, srcBytes = 0, dstBytes = 0, srcStage = 0, dstStage = 0;
    if (dtype === 'bf16' || (rows === 'fixed' && ldS !== K)) {
      const denseMd = mdStrided(M, K, K, dt);
      srcStage = srcMm = memory(denseMd, 0);
      srcBytes = M * K * (dtype === 'bf16' ? 2 : 4);
      steps.push({ prim: reorderPrim(srcUserMd, denseMd), args: args([ARG_SRC, srcUser], [ARG_DST, srcMm]), n: 2 });
    }
    let out: Step | null = null;
    if (rows === 'fixed' && ldD !== N) {
      const denseMd = mdStrided(M, N, N, DT.f32);
      dstStage = dstMm = memory(denseMd, 0);
      dstBytes = M * N * 4;
      if (acc) steps.push({ prim: reorderPrim(dstUserMd, denseMd), args: args([ARG_SRC, dstUser], [ARG_DST, dstMm]), n: 2 });
      out = { prim: reorderPrim(denseMd, dstUserMd), args: args([ARG_SRC, dstMm], [ARG_DST, dstUser]), n: 2 };
    }
    steps.push({ prim, args: args([ARG_SRC, srcMm], [ARG_WEIGHTS, wMem], [ARG_DST, dstMm]), n: 3 });
    if (out) steps.push(out);
    e = { impl, steps, srcUser, dstUser, srcStage, dstStage, srcBytes, dstBytes, ownPrims: owned.prims.slice(p0), ownMems: owned.mems.slice(m0) };
    cache.set(key, e);
    return e;
  };

  let alive = true;
  return {
    N, K, dtype, rows, library: lib, packedBytes, packedAddress,
    impl(M = 512, accumulate = false) {
      if (!alive) throw errors.engine('dnnl matmul: used after destroy()');
      return entry(M, K, N, accumulate).impl;
    },
    run(src, M, ldSrc, dst, ldDst, accumulate = false, weightsAt) {
      if (!alive) throw errors.engine('dnnl matmul: used after destroy()');
      if (opts.sizeOnly) throw errors.engine('dnnl matmul: created with sizeOnly');
      if (weightsAt !== undefined && weightsAt !== wAt) {
        if (weightsAt % (opts.plainWeights ? 4 : 64) !== 0) throw errors.engine(`dnnl matmul: weightsAt ${weightsAt} is not ${opts.plainWeights ? 4 : 64}-byte aligned`);
        st('memory_set_data_handle(weights)', api.memSetHandle(wMem, weightsAt));
        wAt = weightsAt;
      }
      if (opts.plainWeights && !wAt) throw errors.engine('dnnl matmul: plainWeights needs weightsAt on run()');
      if (M === 0) return;
      // one row: its leading dimensions are immaterial, and dense ones skip the staging copies
      if (M === 1 && ldSrc >= K && ldDst >= N) { ldSrc = K; ldDst = N; }
      if (!(Number.isInteger(M) && M > 0 && ldSrc >= K && ldDst >= N)) {
        throw errors.engine(`dnnl matmul: bad sizes M=${M}, ldSrc=${ldSrc} (K=${K}), ldDst=${ldDst} (N=${N})`);
      }
      const e = entry(M, ldSrc, ldDst, accumulate);
      st('memory_set_data_handle(src)', api.memSetHandle(e.srcUser, src));
      st('memory_set_data_handle(dst)', api.memSetHandle(e.dstUser, dst));
      if (e.srcStage) st('memory_set_data_handle(src scratch)', api.memSetHandle(e.srcStage, srcScratch.ensure(e.srcBytes)));
      if (e.dstStage) st('memory_set_data_handle(dst scratch)', api.memSetHandle(e.dstStage, dstScratch.ensure(e.dstBytes)));
      for (const p of e.steps) st('primitive_execute', api.execute(p.prim, api.stream, p.n, p.args));
      st('stream_wait', api.streamWait(api.stream));
    },
    destroy() {
      if (!alive) return;
      alive = false;
      for (const p of owned.prims) api.primDestroy(p);
      for (const m of owned.mems) api.memDestroy(m);
      for (const p of owned.pds) api.pdDestroy(p);
      owned.prims.length = owned.mems.length = owned.pds.length = 0;
      cache.clear();
    },
  };
}
