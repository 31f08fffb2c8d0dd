#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, coverage on the whole
# tree) in build-fuzz and runs each for SECONDS (default 30) from the seed
# corpus in fuzz/corpus/<target>. Fails on any crash, leak or timeout.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# New interesting inputs go to build-fuzz/corpus/<target> (not the repo);
# crash reproducers to build-fuzz/artifacts/<target>/. Reproduce one with
#   build-fuzz/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_TARGET=${1:-30}
shift || true
ALL_TARGETS=(safetensors manifest dataset generate_request start_training)
TARGETS=("${@:-${ALL_TARGETS[@]}}")
BUILD=${MICROGPT_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${JOBS:-$(nproc)}

CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMICROGPT_BUILD_FUZZERS=ON -DMICROGPT_SANITIZE_ADDRESS=ON \
  -DMICROGPT_BUILD_TESTS=OFF -DMICROGPT_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target \
  $(printf '%s_fuzzer ' "${TARGETS[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for target in "${TARGETS[@]}"; do
  corpus=$BUILD/corpus/$target
  artifacts=$BUILD/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  echo "== ${target}_fuzzer for ${SECONDS_PER_TARGET}s"
  if ! "$BUILD/fuzz/${target}_fuzzer" -max_total_time="$SECONDS_PER_TARGET" \
      -max_len=65536 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$corpus" "$ROOT/fuzz/corpus/$target" \
      2>"$BUILD/${target}.log"; then
    failed+=("$target")
    tail -n 60 "$BUILD/${target}.log"
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE' \
    "$BUILD/${target}.log" || true
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in $BUILD/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET}s each, no crash"
