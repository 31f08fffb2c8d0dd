#!/usr/bin/env bash
# Installs the build (cmake --install) into a temporary prefix, builds the consumer project
# tests/clients/cpp_consumer against it with find_package(microgpt CONFIG) and
# microgpt::client, then runs the consumer against the INSTALLED microgpt-generator serving
# a tiny model trained by the INSTALLED microgpt-trainer.
#   usage: cpp_find_package_test.sh [BUILD_DIR]   (default: build, at the repository root)
# Prints "N passed, N failed"; exits non-zero on failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$(cd "${1:-$repo/build}" && pwd)" || exit 1

tmp="$(mktemp -d "${TMPDIR:-/tmp}/microgpt-cpp-pkg.XXXXXX")"
generator_pid=""
cleanup() {
  local status=$?
  if [ -n "$generator_pid" ]; then
    kill "$generator_pid" 2>/dev/null; wait "$generator_pid" 2>/dev/null
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$tmp"/*.log; do
      [ -s "$log" ] || continue
      echo "---- $(basename "$log") (last 30 lines)"
      tail -n 30 "$log"
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export OPENBLAS_NUM_THREADS=1

passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

prefix="$tmp/prefix"
if cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1; then
  pass "cmake --install"
else
  fail "cmake --install $build"; finish
fi

missing=""
for file in bin/microgpt bin/microgpt-trainer bin/microgpt-generator \
    include/microgpt/client.h include/microgpt/v1/microgpt.pb.h \
    include/microgpt/v1/microgpt.grpc.pb.h \
    lib/cmake/microgpt/microgptConfig.cmake lib/cmake/microgpt/microgptConfigVersion.cmake \
    lib/cmake/microgpt/microgptTargets.cmake; do
  [ -e "$prefix/$file" ] || missing="$missing $file"
done
if [ -z "$missing" ]; then pass "installed files"; else fail "not installed:$missing"; fi

# The consumer is a separate project: only the install prefix tells it where microgpt is.
consumer="$tmp/consumer-build"
if cmake -S "$here/cpp_consumer" -B "$consumer" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/consumer-configure.log" 2>&1 \
    && cmake --build "$consumer" -j2 > "$tmp/consumer-build.log" 2>&1; then
  pass "consumer builds with find_package(microgpt CONFIG) and microgpt::client"
else
  fail "consumer configure/build"; finish
fi

mkdir -p "$tmp/checkpoints" "$tmp/data"
printf '%s\n' anna bob carla dave emma fred gina hank ida jack kate leo mia ned olga paul \
  quinn rosa sam tina uma vera walt xena yara zack > "$tmp/data/words.txt"
if "$prefix/bin/microgpt-trainer" train --data "$tmp/data/words.txt" --model tiny \
    --checkpoint_root "$tmp/checkpoints" --steps 50 > "$tmp/train.log" 2>&1; then
  pass "installed microgpt-trainer train"
else
  fail "installed microgpt-trainer train"; finish
fi

"$prefix/bin/microgpt-generator" --host 127.0.0.1 --port 0 --checkpoint_root "$tmp/checkpoints" \
  > "$tmp/generator.log" 2>&1 &
generator_pid=$!
address=""
for _ in $(seq 300); do
  address="$(sed -n 's/^microgpt-generator listening on \([^ ]*:[0-9]*\).*/\1/p' "$tmp/generator.log" | head -n 1)"
  [ -n "$address" ] && break
  kill -0 "$generator_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$address" ]; then
  pass "installed microgpt-generator listens on $address"
else
  fail "installed microgpt-generator did not start"; finish
fi

"$consumer/consumer" "$address" > "$tmp/consumer.log" 2>&1
consumer_status=$?
cat "$tmp/consumer.log"
if [ "$consumer_status" -eq 0 ] && grep -q '^ListModels: OK' "$tmp/consumer.log" \
    && grep -q '^model: tiny ' "$tmp/consumer.log"; then
  pass "consumer lists the model"
else
  fail "consumer ListModels (exit $consumer_status)"
fi
if grep -q '^Generate: OK tokens: [1-9]' "$tmp/consumer.log"; then
  pass "consumer streams tokens"
else
  fail "consumer Generate"
fi
finish
