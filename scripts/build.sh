#!/usr/bin/env bash
# Installs missing packages and builds the project into build/ (or $BUILD_DIR).
# Extra arguments go to the CMake configure step, e.g. -DMICROGPT_SANITIZE_ADDRESS=ON.
# $BUILD_TARGETS limits the build to some targets (the demo needs only the binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" >/dev/null
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
# Quiet on success; on failure the compiler's errors are shown.
if ! log=$(cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}" 2>&1); then
  grep -E -A5 "error|Error" <<<"$log" | head -100 >&2
  exit 1
fi
