#!/usr/bin/env bash
# GPU check of the tfjs backend's WebGPU engine (Dawn), in one step, on whatever
# real GPU adapter Dawn finds (Vulkan on Linux: NVIDIA, AMD, Intel):
#   1. the adapter: named, refused if it is a software one (llvmpipe, SwiftShader),
#   2. the golden check: the PyTorch fixtures through the WebGPU engine (float32 tolerance 2e-5·max|ref|),
#   3. the CPU/GPU comparison on the seed model (6 layers, 8 heads, d=512), chunks of 512 tokens,
#      L = 4096, 16384, 65536: the project's wasm backend (all cores) vs tfjs on WebGPU,
#   4. one table (and bench/results/gpu-check.json). Exit status 1 if any step failed.
# Usage: bash bench/gpu-check.sh     (repository root after `npm ci && npm run build`,
#                                    or ./run-gpu-check.sh in the bundle of bench/gpu-bundle.sh)
# Env: GPU_CHECK_LENGTHS   lengths (default "4096 16384 65536")
#      GPU_CHECK_MODEL     model flags for `retnet bench` (default "--layers 6 --dim 512 --heads 8", the seed's)
#      GPU_CHECK_WORKERS   wasm worker threads (default: all cores)
#      GPU_CHECK_ALLOW_SOFTWARE=1  run on a software adapter too (a CPU emulation: the numbers then
#                          only show that it runs; used to test this script and the bundle on llvmpipe)
#      NODE                the node binary (default: node on PATH)
set -u
cd "$(dirname "$0")/.."
NODE=${NODE:-node}
LOG=bench/results/gpu-check
mkdir -p "$LOG"
rm -f "$LOG"/*.log "$LOG"/*.json
LENGTHS=${GPU_CHECK_LENGTHS:-4096 16384 65536}
MODEL=${GPU_CHECK_MODEL:---layers 6 --dim 512 --heads 8}
WORKERS=${GPU_CHECK_WORKERS:-$("$NODE" -p 'require("os").availableParallelism()')}
# Dawn's Vulkan backend warns when XDG_RUNTIME_DIR is unset
[ -n "${XDG_RUNTIME_DIR:-}" ] || { XDG_RUNTIME_DIR=$(mktemp -d); export XDG_RUNTIME_DIR; }
export RETNET_TFJS_ENGINE=webgpu
declare -a SUMMARY=()
FAILED=0
step() { # name, command...
  local name=$1; shift
  echo "== $name"
  if "$@" >"$LOG/$name.log" 2>&1; then SUMMARY+=("ok    $name")
  else
    local rc=$?; FAILED=1
    SUMMARY+=("FAIL  $name (exit $rc): $(grep -v '^\s*$' "$LOG/$name.log" | grep -iE 'error|fail|cannot|not |refused' | head -3 | tr '\n' ' ' | cut -c1-400)")
  fi
  grep -v '^Warning: max' "$LOG/$name.log" | tail -4
}

DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
GPU="(nvidia-smi not found)"
command -v nvidia-smi >/dev/null 2>&1 && GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
echo "gpu-check $DATE; host $(uname -srm); nvidia-smi: $GPU; VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"

if [ ! -f dist/src/cli/main.js ]; then step build npm run build; fi
step adapter "$NODE" --input-type=module -e "
  import { createTfjsExecutor } from './dist/src/backends/tfjs/index.js';
  const ex = await createTfjsExecutor({ engine: 'webgpu' });
  const i = ex.info();
  await ex.close();
  console.log('ADAPTER ' + JSON.stringify(i));
  if (i.adapter?.software && process.env.GPU_CHECK_ALLOW_SOFTWARE !== '1') {
    console.error('error: Dawn found only a software adapter (' + i.device + '), not a GPU; ' +
      'check the GPU driver\\'s Vulkan ICD (VK_DRIVER_FILES, vulkaninfo), or set GPU_CHECK_ALLOW_SOFTWARE=1 to run on it anyway');
    process.exit(3);
  }"
DEVICE=$(sed -n 's/^ADAPTER //p' "$LOG/adapter.log" | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).device)}catch{console.log("none")}})')
echo "adapter: $DEVICE"
if [ "$FAILED" = 0 ]; then
  step golden "$NODE" dist/test/webgpu-golden.test.js
  for L in $LENGTHS; do
    CHUNKS=$(( (L + 511) / 512 ))
    # shellcheck disable=SC2086
    step "bench-$L" "$NODE" dist/src/cli/main.js bench --backend wasm,tfjs --lengths "$L" --chunks "$CHUNKS" --workers "$WORKERS" --batch 1 $MODEL --json "$LOG/bench-$L.json"
  done
fi

echo
echo "================ gpu-check summary ================"
echo "date $DATE; host $(uname -srm); load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "adapter: $DEVICE"
echo "nvidia-smi: $GPU"
for s in "${SUMMARY[@]}"; do echo "$s"; done
grep -h 'worst max' "$LOG/golden.log" 2>/dev/null | sed 's/^/golden: /'
# One table from the bench JSON files; also bench/results/gpu-check.json.
"$NODE" -e '
  const fs = require("fs"), dir = process.argv[1], out = [];
  const files = fs.readdirSync(dir).filter((f) => /^bench-\d+\.json$/.test(f)).sort((a, b) => parseInt(a.slice(6)) - parseInt(b.slice(6)));
  if (!files.length) { console.log("no throughput measured"); process.exit(0); }
  const head = JSON.parse(fs.readFileSync(dir + "/" + files[0], "utf8"));
  const m = head.model;
  console.log(`model: ${m.numLayer} layers, ${m.numHeads} heads, d=${m.dimModel}; batch ${head.batch}; chunks of 512; CPU ${head.machine.cpu} (${head.machine.cores} cores), Node ${head.machine.node}`);
  console.log(["L".padStart(6), "CPU wasm tok/s".padStart(15), "WebGPU tok/s".padStart(13), "WebGPU/CPU".padStart(10)].join("  "));
  let last;
  for (const f of files) {
    const j = JSON.parse(fs.readFileSync(dir + "/" + f, "utf8"));
    const w = j.rows.find((r) => r.backend === "wasm"), t = j.rows.find((r) => r.backend === "tfjs");
    const tps = (r) => (r && !r.error ? Math.round(r.tokensPerSec) : null);
    const ratio = tps(w) && tps(t) ? tps(t) / tps(w) : null;
    const row = { L: (w ?? t).L, chunks: (w ?? t).chunks, cpu: tps(w), cpuDevice: w?.device, gpu: tps(t), gpuDevice: t?.device, ratio, errors: [w?.error, t?.error].filter(Boolean) };
    out.push(row); last = row;
    console.log([String(row.L).padStart(6), String(row.cpu ?? "error").padStart(15), String(row.gpu ?? "error").padStart(13), (ratio ? ratio.toFixed(2) + "x" : "-").padStart(10)].join("  ") + (row.errors.length ? "  " + row.errors.join("; ").slice(0, 120) : ""));
  }
  console.log(`CPU: ${out[0].cpuDevice ?? "?"}; WebGPU: ${out[0].gpuDevice ?? "?"}`);
  if (/software adapter/.test(out[0].gpuDevice ?? "")) console.log("note: a software adapter (a CPU emulation of a GPU): these numbers only show that the check runs; they say nothing about GPU speed");
  if (last.L === 65536) console.log(`goal (>= 10x the CPU path at L = 65,536): ${last.ratio == null ? "not measured" : last.ratio >= 10 ? "met" : "not met"} (${last.ratio == null ? "-" : last.ratio.toFixed(2) + "x"})`);
  fs.writeFileSync(dir + "/../gpu-check.json", JSON.stringify({ suite: "bench/gpu-check.sh", date: process.argv[2], load: fs.existsSync("/proc/loadavg") ? fs.readFileSync("/proc/loadavg", "utf8").trim() : null, nvidiaSmi: process.argv[3], machine: head.machine, model: head.model, rows: out }, null, 2) + "\n");
  console.log("wrote bench/results/gpu-check.json");
' "$LOG" "$DATE" "$GPU" || FAILED=1
echo "logs: $LOG/"
exit $FAILED
