#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, coverage on the whole
# tree; the build scripts/sanitize.sh uses too, see
# scripts/lib/sanitizer_build.sh) and runs each for SECONDS (default 30) from the seed
# corpus in fuzz/corpus/<target>. Fails on any crash, leak or timeout.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# New interesting inputs go to build-asan/corpus/<target> (not the repo);
# crash reproducers to build-asan/artifacts/<target>/. Reproduce one with
#   build-asan/fuzz/<target> build-asan/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-sanitizers
ROOT=$PWD
source scripts/lib/sanitizer_build.sh
SECONDS_PER_TARGET=${1:-30}
shift || true
ALL_TARGETS=(safetensors manifest dataset generate_request start_training)
TARGETS=("${@:-${ALL_TARGETS[@]}}")
BUILD=$SANITIZER_BUILD
JOBS=${JOBS:-$(nproc)}

configure_sanitizer_build
cmake --build "$BUILD" -j"$JOBS" --target \
  $(printf '%s_fuzzer ' "${TARGETS[@]}")

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
