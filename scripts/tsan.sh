#!/usr/bin/env bash
# Builds the generator's test suites (tests/generator: scheduler, model
# manager, service, server, follower, metrics) with ThreadSanitizer in
# build-tsan and runs them. Any TSan report fails its test.
#
# Debian's gRPC, protobuf and Abseil are not built with TSan:
# tests/tsan/absl_sync_annotations.cc makes Abseil's Mutex, CondVar and
# Notification visible to TSan, and tests/tsan/suppressions.txt names what
# stays invisible inside gRPC (each entry says why).
#
#   scripts/tsan.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-sanitizers
BUILD=${MICROGPT_TSAN_BUILD_DIR:-$PWD/build-tsan}
JOBS=${JOBS:-$(nproc)}
start=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMICROGPT_SANITIZE_THREAD=ON -DMICROGPT_BUILD_BENCH=OFF >/dev/null
names=$(ls tests/generator/*_test.cc | xargs -n1 basename | sed 's/\.cc$//')
targets=(); for name in $names; do targets+=(--target "$name"); done
cmake --build "$BUILD" -j"$JOBS" "${targets[@]}"
built=$(date +%s)
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan/suppressions.txt}
status=0
ctest --test-dir "$BUILD" -j"$JOBS" --output-on-failure --timeout 900 \
  -R "^($(tr '\n' '|' <<<"$names" | sed 's/|$//'))\\." "$@" || status=$?
end=$(date +%s)
echo "tsan: build $((built - start))s, tests $((end - built))s, status $status"
exit $status
