#!/usr/bin/env bash
# Build a self-contained bundle of the GPU check for a Linux x86-64 machine with an
# NVIDIA GPU and its driver but no Node and no network (see bench/gpu-bundle.ts for
# what goes in): this Node binary, dist/, only the runtime packages the check loads,
# the linux-x64 dawn.node, the golden fixtures and, when apt can fetch it, Debian's
# libvulkan1 (used only where the machine has no Vulkan loader). At most 60 MiB.
# Usage: bash bench/gpu-bundle.sh [OUT.tar.xz]     (default dist/retnet-gpu-check.tar.xz: git-ignored)
# On the GPU machine:  tar xJf retnet-gpu-check.tar.xz && retnet-gpu-check/run-gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist/retnet-gpu-check.tar.xz}
LIMIT_MIB=60
[ -f dist/bench/gpu-bundle.js ] || npm run build
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/retnet-gpu-check"
node dist/bench/gpu-bundle.js "$STAGE"

# Debian's Vulkan loader (optional: apt-get download needs the package lists; no root needed)
if (cd "$WORK" && apt-get download libvulkan1 >/dev/null 2>&1); then
  DEB=$(ls "$WORK"/libvulkan1_*.deb)
  dpkg-deb -x "$DEB" "$WORK/deb"
  cp -P "$WORK"/deb/usr/lib/x86_64-linux-gnu/libvulkan.so.1* "$STAGE/lib/"
  echo "libvulkan1: $(basename "$DEB") -> lib/ ($(du -sh "$STAGE/lib" | cut -f1))" | tee -a "$STAGE/MANIFEST.txt"
else
  echo "libvulkan1: not bundled (apt-get download libvulkan1 failed); the GPU machine needs its own Vulkan loader" | tee -a "$STAGE/MANIFEST.txt"
fi

mkdir -p "$(dirname "$OUT")"
XZ_OPT=-9 tar -C "$WORK" -cJf "$OUT" retnet-gpu-check
BYTES=$(stat -c %s "$OUT")
MIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "bundle: $OUT, $MIB MiB compressed ($BYTES bytes), $(du -sh "$STAGE" | cut -f1) unpacked"
echo "run on the GPU machine:  tar xJf $(basename "$OUT") && retnet-gpu-check/run-gpu-check.sh"
if [ "$BYTES" -gt $((LIMIT_MIB * 1048576)) ]; then echo "error: over the $LIMIT_MIB MiB limit" >&2; exit 1; fi
