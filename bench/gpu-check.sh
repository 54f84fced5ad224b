#!/usr/bin/env bash
# GPU check of the tfjs backend, for a machine with an NVIDIA GPU:
#   1. install @tensorflow/tfjs-node-gpu (not saved; needs network access for libtensorflow,
#      CUDA 11.2 + cuDNN 8.1 on the library path),
#   2. build, run the tfjs golden tests on the CUDA engine,
#   3. compare throughput: tfjs on tfjs-node-gpu vs tfjs on wasm (and the wasm backend if built),
#   4. print one summary. Every failure is reported with its cause; exit status 1 if any step failed.
# Usage: bash bench/gpu-check.sh        (from the repository root; logs in bench/results/gpu-check/)
set -u
cd "$(dirname "$0")/.."
LOG=bench/results/gpu-check
mkdir -p "$LOG"
declare -a SUMMARY=()
FAILED=0
step() { # name, command...
  local name=$1; shift
  echo "== $name: $*"
  if "$@" >"$LOG/$name.log" 2>&1; then SUMMARY+=("ok    $name")
  else
    local rc=$?; FAILED=1
    SUMMARY+=("FAIL  $name (exit $rc): $(grep -v '^\s*$' "$LOG/$name.log" | grep -iE 'error|fail|cannot|not ' | head -3 | tr '\n' ' ' | cut -c1-400)")
  fi
  tail -5 "$LOG/$name.log"
}

if command -v nvidia-smi >/dev/null 2>&1; then
  GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
else
  GPU="none found (nvidia-smi missing)"; FAILED=1
fi
echo "GPU: $GPU"
CUDA_LIBS=$( (ldconfig -p 2>/dev/null | grep -oE 'lib(cudart|cudnn)\.so\.[0-9.]+' | sort -u | tr '\n' ' ') || true)
echo "CUDA libraries on the loader path: ${CUDA_LIBS:-none}"

[ -d node_modules ] || step npm-ci npm ci
step install-tfjs-node-gpu npm install --no-save @tensorflow/tfjs-node-gpu
step build npm run build
step engine-load node --input-type=module -e "
  import { createTfjsExecutor } from './dist/src/backends/tfjs/index.js';
  const ex = await createTfjsExecutor({ engine: 'tfjs-node-gpu' });
  console.log(JSON.stringify(ex.info()));
  const ok = /CUDA GPU/.test(ex.info().device);
  await ex.close();
  if (!ok) { console.error('error: tfjs-node-gpu loaded but is not using a GPU'); process.exit(2); }"
step golden env RETNET_TFJS_TEST_ENGINES=tfjs-node-gpu node dist/test/run.js tfjs-golden
step throughput env BENCH_L="${BENCH_L:-2048}" BENCH_B="${BENCH_B:-2}" node dist/bench/tfjs-throughput.js tfjs-node-gpu wasm

echo
echo "================ gpu-check summary ================"
echo "GPU: $GPU"
grep -h '"engine"' "$LOG/engine-load.log" 2>/dev/null | head -1 | sed 's/^/engine: /'
for s in "${SUMMARY[@]}"; do echo "$s"; done
if [ -f "$LOG/throughput.log" ]; then
  echo "throughput (tokens/s):"
  node -e '
    const fs = require("fs");
    for (const line of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      const r = JSON.parse(line);
      console.log("  " + r.label.padEnd(20) + (r.stateDtype ?? "").padEnd(9) + (r.error ? "error: " + r.error : String(r.tokensPerSec).padStart(10) + "  (" + (r.device ?? "") + ")"));
    }' "$LOG/throughput.log" || true
fi
echo "logs: $LOG/"
exit $FAILED
