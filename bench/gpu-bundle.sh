#!/usr/bin/env bash
# Build a self-contained bundle of a device check for a Linux x86-64 machine with no Node and
# no network (see bench/gpu-bundle.ts for what goes in): this Node binary, dist/, only the
# runtime packages the check loads, the golden fixtures, and
#   GPU check (default): the linux-x64 dawn.node and, when apt can fetch it, Debian's libvulkan1
#     (used only where the machine has no Vulkan loader) -- for a machine with an NVIDIA GPU;
#   CPU check (--cpu): bench/cpu-check.sh, koffi's linux-x64 addon, and this machine's oneDNN
#     (libdnnl2), OpenBLAS (libopenblas0-pthread) and the libraries they load (libgomp, libOpenCL,
#     libgfortran, libquadmath, libstdc++, libgcc_s) -- precision 'bf16' on that machine's CPU.
# At most 60 MiB.
# Usage: bash bench/gpu-bundle.sh [--cpu] [OUT.tar.xz]
#        (default dist/retnet-gpu-check.tar.xz or dist/retnet-cpu-check.tar.xz: git-ignored; OUT, from the
#        caller's directory, must end in .tar.xz and, where it exists, be an earlier bundle; it is written
#        beside and renamed when complete)
# On the machine:  tar xJf retnet-gpu-check.tar.xz && retnet-gpu-check/run-gpu-check.sh
#              or  tar xJf retnet-cpu-check.tar.xz && retnet-cpu-check/run-cpu-check.sh
set -euo pipefail
CHECK=gpu
if [ "${1:-}" = --cpu ]; then CHECK=cpu; shift; fi
usage() { echo "error: $1"$'\n'"usage: bash bench/gpu-bundle.sh [--cpu] [OUT.tar.xz]" >&2; exit 2; }
[ $# -le 1 ] || usage "at most one OUT.tar.xz after the options (got $#)"
case ${1:-} in -*) usage "unknown option $1 (the option: --cpu, first)" ;; esac
NAME=retnet-$CHECK-check
# OUT from the caller's directory; a .tar.xz name, and where it exists an earlier bundle (a regular file
# whose first entry is a retnet-*-check/ folder), never an input given by mistake
case ${1:-} in '') OUT= ;; /*) OUT=$1 ;; *) OUT=$PWD/$1 ;; esac
[ -z "$OUT" ] || [[ "$OUT" == *.tar.xz ]] || usage "OUT must end in .tar.xz (got $1)"
if [ -n "$OUT" ] && { [ -e "$OUT" ] || [ -L "$OUT" ]; }; then
  first=$( { tar tJf "$OUT" 2>/dev/null || true; } | head -1)
  if [ -L "$OUT" ] || [ ! -f "$OUT" ] || [[ ! "$first" =~ ^retnet-[a-z]+-check/ ]]; then
    usage "$1 exists and is not an earlier bundle: it would be overwritten"
  fi
fi
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/dist/$NAME.tar.xz}
LIMIT_MIB=60
[ -f dist/bench/gpu-bundle.js ] || npm run build
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/$NAME"
if [ "$CHECK" = cpu ]; then node dist/bench/gpu-bundle.js --cpu "$STAGE"; else node dist/bench/gpu-bundle.js "$STAGE"; fi

if [ "$CHECK" = cpu ]; then
  # this machine's libraries (from .ci/system-deps), under their sonames; the check needs oneDNN
  for so in libdnnl.so.2 libopenblas.so.0 libgomp.so.1 libOpenCL.so.1 libgfortran.so.5 libquadmath.so.0 libstdc++.so.6 libgcc_s.so.1; do
    path=$(/sbin/ldconfig -p | awk -v n="$so" '$1 == n && /x86-64/ { print $NF; exit }')
    if [ -z "$path" ]; then
      [ "$so" = libdnnl.so.2 ] && { echo "error: $so not found (install libdnnl2: bash .ci/system-deps)" >&2; exit 1; }
      echo "$so: not found here, not bundled" | tee -a "$STAGE/MANIFEST.txt"; continue
    fi
    cp -L "$path" "$STAGE/lib/$so"
    echo "$so: $(readlink -f "$path") -> lib/" | tee -a "$STAGE/MANIFEST.txt"
  done
fi

# Debian's Vulkan loader for the GPU check (optional: apt-get download needs the package lists; no root needed)
if [ "$CHECK" = cpu ]; then :
elif (cd "$WORK" && apt-get download libvulkan1 >/dev/null 2>&1); then
  DEB=$(ls "$WORK"/libvulkan1_*.deb)
  dpkg-deb -x "$DEB" "$WORK/deb"
  cp -P "$WORK"/deb/usr/lib/x86_64-linux-gnu/libvulkan.so.1* "$STAGE/lib/"
  echo "libvulkan1: $(basename "$DEB") -> lib/ ($(du -sh "$STAGE/lib" | cut -f1))" | tee -a "$STAGE/MANIFEST.txt"
else
  echo "libvulkan1: not bundled (apt-get download libvulkan1 failed); the GPU machine needs its own Vulkan loader" | tee -a "$STAGE/MANIFEST.txt"
fi

mkdir -p "$(dirname "$OUT")"
# written beside OUT and renamed when complete: a failed run leaves OUT as it was
PARTIAL="$(dirname "$OUT")/.$(basename "$OUT").partial.$$"
trap 'rm -rf "$WORK" "$PARTIAL"' EXIT
XZ_OPT=-9 tar -C "$WORK" -cJf "$PARTIAL" "$NAME"
mv -f "$PARTIAL" "$OUT"
BYTES=$(stat -c %s "$OUT")
MIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "bundle: $OUT, $MIB MiB compressed ($BYTES bytes), $(du -sh "$STAGE" | cut -f1) unpacked"
echo "run on the machine:  tar xJf $(basename "$OUT") && $NAME/run-$CHECK-check.sh"
if [ "$BYTES" -gt $((LIMIT_MIB * 1048576)) ]; then echo "error: over the $LIMIT_MIB MiB limit" >&2; exit 1; fi
