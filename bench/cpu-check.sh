#!/usr/bin/env bash
# CPU check of precision 'bf16' (issue: bfloat16 on the CPU's matrix units), in one step, on
# whatever x86-64 CPU runs it — meant for a machine this project's sessions rarely get (an Intel
# Xeon with AMX), reached through the bundle of `bash bench/gpu-bundle.sh --cpu`:
#   1. cpu:    the CPU (model, cores, memory; whether it has AMX-BF16 and AVX512-BF16) and what
#              oneDNN's bf16 and f32 matmul dispatch to on the 1.3B shape's MLP product,
#   2. tests:  the tests of the bf16 path (kernels-bf16, dnnl, precision, fla-bf16); a test that
#              reports itself skipped is listed,
#   3. shape:  the fla 1.3B shape (random BF16 weights, 2.7 GB) written to a temporary folder,
#   4. fla:    1.3B scoring at bf16 (oneDNN) and f32 (oneDNN, CBLAS), 2 threads, with the machine's
#              matrix-product peaks and each run's fraction of them (bench/fla-1p3b.ts),
#   5. decode: greedy decoding at f32 and bf16 against the measured memory bandwidth (bench/decode.ts),
#   6. seed:   the seed model at L = 4,096, chunks of 512, 2 workers, every engine of the project
#              against the float32 native bound (bench/peers/peers.ts --only project),
#   7. one summary (and the JSON of each step under bench/results/cpu-check/). Exit status 1 if a step failed.
# No PyTorch here: the side-by-side ratios need `npm run bench:peers -- --fla` on a machine with it.
# Usage: bash bench/cpu-check.sh     (repository root after `npm ci && npm run build`, with
#                                    libdnnl2 and libopenblas0-pthread; or ./run-cpu-check.sh in the bundle)
# Env: CPU_CHECK_STEPS          steps to run (default "cpu tests shape fla decode seed")
#      CPU_CHECK_FLA_LENGTHS    scoring lengths (default 2048)
#      CPU_CHECK_FLA_ENGINES    scoring engines (default dnnl,dnnl-f32,blas)
#      CPU_CHECK_DECODE_TOKENS  decoded tokens per precision (default 32)
#      CPU_CHECK_SHAPE_DIR      where the 1.3B shape goes (default: a new folder under $TMPDIR, removed after)
#      CPU_CHECK_KEEP_CORETYPE=1  keep OPENBLAS_CORETYPE (by default it is unset: OpenBLAS then picks
#                               the kernels for this CPU itself; some VMs set it to an older core)
#      CPU_CHECK_LOG_DIR        where the logs and JSON go (default bench/results/cpu-check; new, empty or
#                               holding only this check's files, else refused; a relative
#                               folder here and in CPU_CHECK_SHAPE_DIR is taken from the caller's directory)
#      NODE                     the node binary (default: node on PATH)
set -u
if [ -n "${OPENBLAS_CORETYPE:-}" ] && [ "${CPU_CHECK_KEEP_CORETYPE:-}" != 1 ]; then
  echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE unset (CPU_CHECK_KEEP_CORETYPE=1 keeps it)"; unset OPENBLAS_CORETYPE
fi
# folders given in the environment are taken from the caller's directory
abs() { case $1 in /*|'') printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
LOG=$(abs "${CPU_CHECK_LOG_DIR:-}")
SHAPE=$(abs "${CPU_CHECK_SHAPE_DIR:-}")
cd "$(dirname "$0")/.."
NODE=${NODE:-node}
LOG=${LOG:-bench/results/cpu-check}
STEPS=" ${CPU_CHECK_STEPS:-cpu tests shape fla decode seed} "
FLA_LENGTHS=${CPU_CHECK_FLA_LENGTHS:-2048}
FLA_ENGINES=${CPU_CHECK_FLA_ENGINES:-dnnl,dnnl-f32,blas}
DECODE_TOKENS=${CPU_CHECK_DECODE_TOKENS:-32}
declare -a SUMMARY=()
FAILED=0
step() { # name, command...
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name"
  if "$@" >"$LOG/$name.log" 2>&1; then SUMMARY+=("ok    $name ($((SECONDS - t0)) s)")
  else
    local rc=$?; FAILED=1
    SUMMARY+=("FAIL  $name (exit $rc, $((SECONDS - t0)) s): $(grep -iE '^\s*fail|error:|cannot|not found|not load|refused' "$LOG/$name.log" | head -3 | sed 's/^ *//' | tr '\n' ' ' | cut -c1-400)")
  fi
  tail -6 "$LOG/$name.log"
}
wants() { [[ "$STEPS" == *" $1 "* ]]; }
for s in $STEPS; do
  case $s in cpu|tests|shape|fla|decode|seed) ;;
    *) echo "error: CPU_CHECK_STEPS: unknown step '$s' (the steps: cpu tests shape fla decode seed)" >&2; exit 2 ;;
  esac
done
# The folder holds only this check's files (it removes and rewrites them): a new or empty folder, or one
# with nothing but the names below, never someone else's folder given by mistake.
OURS=" cpu.log tests.log shape.log fla.log decode.log seed.log build.log fla-1p3b.json decode.json peers-seed.json "
if [ -e "$LOG" ] && [ ! -d "$LOG" ]; then echo "error: the log folder $LOG exists and is not a folder" >&2; exit 2; fi
if [ -d "$LOG" ]; then
  for f in "$LOG"/* "$LOG"/.[!.]*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    n=$(basename "$f")
    if [[ "$OURS" != *" $n "* ]] || [ ! -f "$f" ] || [ -L "$f" ]; then
      echo "error: the log folder $LOG holds $n, which this check did not write: give a new or empty folder (CPU_CHECK_LOG_DIR)" >&2; exit 2
    fi
  done
fi
mkdir -p "$LOG" || exit 2
# the files of the steps this run makes (another step's stay)
for s in $STEPS; do rm -f "$LOG/$s.log"; done
wants fla && rm -f "$LOG/fla-1p3b.json"
wants decode && rm -f "$LOG/decode.json"
wants seed && rm -f "$LOG/peers-seed.json"

DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
MODEL=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
FLAGS=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -E '^(amx_bf16|amx_tile|amx_int8|avx512_bf16|avx512f|avx2)$' | sort | tr '\n' ' ')
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
echo "cpu-check $DATE; host $(uname -srm); cpu: ${MODEL:-unknown}, $(nproc) cores, $MEM; flags: ${FLAGS:-none of amx/avx512}"

if [ ! -f dist/src/cli/main.js ]; then step build npm run build; fi

if wants cpu; then
  step cpu "$NODE" --input-type=module -e "
    import { dnnlImplFor } from './dist/src/runtime/dnnl-kernels.js';
    import { loadDnnl, dnnlBf16Missing, dnnlMissing } from './dist/src/runtime/dnnl.js';
    import { loadBlas } from './dist/src/runtime/blas-kernels.js';
    import { readFileSync } from 'node:fs';
    const why = dnnlMissing();
    if (why) { console.error('error: oneDNN did not load: ' + why); process.exit(1); }
    const lib = loadDnnl();
    console.log('oneDNN ' + lib.version + ' (' + lib.path + ', runtime ' + lib.cpuRuntime + '): ISA ' + lib.isa + ', bfloat16 dot products: ' + (lib.hasBf16Hardware ? 'yes' : 'no'));
    const noBf16 = dnnlBf16Missing();
    for (const dt of ['bf16', 'f32']) console.log(dt + ' matmul, 256 x 5632 x 2048: ' + (dt === 'bf16' && noBf16 ? 'none (' + noBf16 + ')' : dnnlImplFor(5632, 2048, 256, undefined, dt)));
    console.log('AMX in the bf16 dispatch: ' + (!noBf16 && /amx/.test(dnnlImplFor(5632, 2048, 256, undefined, 'bf16')) ? 'yes' : 'no'));
    try { console.log('CBLAS: ' + loadBlas().label); } catch (e) { console.log('CBLAS: none (' + e.message.split('\\n')[0] + ')'); }
    const maps = new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/ +/)[5]).filter((f) => /lib(dnnl|openblas|gomp|stdc)/.test(f ?? '')));
    console.log('libraries mapped: ' + [...maps].join(', '));"
fi
if wants tests; then
  step tests "$NODE" dist/test/run.js kernels-bf16 dnnl precision fla-bf16
  SKIPS=$(grep -c '^SKIPPED: ' "$LOG/tests.log" || true)
  [ "$SKIPS" = 0 ] || SUMMARY+=("note  tests: $SKIPS skipped: $(grep '^SKIPPED: ' "$LOG/tests.log" | head -4 | cut -c10-120 | tr '\n' ';')")
fi
MADE_SHAPE=0
if wants shape; then
  if [ -z "$SHAPE" ]; then SHAPE=$(mktemp -d)/fla13; MADE_SHAPE=1; fi
  step shape "$NODE" bench/make-fla-shape.mjs "$SHAPE"
fi
if wants fla; then
  if [ -z "$SHAPE" ]; then SUMMARY+=("FAIL  fla: no 1.3B shape (add the shape step, or set CPU_CHECK_SHAPE_DIR)"); FAILED=1
  else step fla "$NODE" dist/bench/fla-1p3b.js --dir "$SHAPE" --engines "$FLA_ENGINES" --lengths "$FLA_LENGTHS" --out "$LOG/fla-1p3b.json"; fi
fi
if wants decode; then
  if [ -z "$SHAPE" ]; then SUMMARY+=("FAIL  decode: no 1.3B shape (add the shape step, or set CPU_CHECK_SHAPE_DIR)"); FAILED=1
  else step decode "$NODE" dist/bench/decode.js --dir "$SHAPE" --tokens "$DECODE_TOKENS" --precisions f32,bf16 --out "$LOG/decode.json"; fi
fi
if wants seed; then
  step seed "$NODE" dist/bench/peers/peers.js --only project --lengths 4096 --reps 3 --out "$LOG/peers-seed.json"
fi
if [ "$MADE_SHAPE" = 1 ]; then rm -rf "$(dirname "$SHAPE")"; fi

echo
echo "cpu-check $DATE; cpu: ${MODEL:-unknown}, $(nproc) cores; flags: ${FLAGS:-none of amx/avx512}"
grep -h -E '^(oneDNN|bf16 matmul|f32 matmul|AMX|CBLAS|libraries)' "$LOG/cpu.log" 2>/dev/null
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} (OpenBLAS picks its own kernels when unset)"
grep -h -E '[0-9]+ passed, [0-9]+ failed' "$LOG/tests.log" 2>/dev/null | tail -1
printf '%s\n' "${SUMMARY[@]}"
echo "logs and JSON: $(cd "$LOG" && pwd)/"
exit $FAILED
