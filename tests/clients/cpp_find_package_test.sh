#!/usr/bin/env bash
# Installs the build (cmake --install) into a temporary prefix and builds, against it, the
# example of clients/cpp/README.md as it stands there: its ```cmake block as CMakeLists.txt
# (find_package(microgpt CONFIG), microgpt::client) and its ```cpp block as stream.cc. Then
# runs the example against the INSTALLED microgpt-generator serving two models trained by
# the INSTALLED microgpt-trainer, with a bearer token required (servers.sh): in plaintext and
# over TLS, without the token and without a model.
#   usage: cpp_find_package_test.sh [BUILD_DIR]   (default: build, at the repository root)
# Prints "N passed, N failed"; exits non-zero on failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$(cd "${1:-$repo/build}" && pwd)" || exit 1
readme="$repo/clients/cpp/README.md"
source "$here/servers.sh"
servers_init  # $servers_tmp, removed on exit; its *.log files are shown on failure
tmp="$servers_tmp"

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

# block LANGUAGE: the README's one fenced block of LANGUAGE ("" and status 1 when there is
# not exactly one).
block() {
  awk -v fence="\`\`\`$1" '
    $0 == fence { inside = 1; blocks++; next }
    inside && $0 == "```" { inside = 0; next }
    inside { print }
    END { exit blocks == 1 ? 0 : 1 }' "$readme"
}
# The consumer is a separate project: only the install prefix tells it where microgpt is.
source_dir="$tmp/consumer" consumer="$tmp/consumer-build"
mkdir -p "$source_dir"
if block cmake > "$source_dir/CMakeLists.txt" && block cpp > "$source_dir/stream.cc"; then
  pass "README has one cmake and one cpp block"
else
  fail "README: not exactly one \`\`\`cmake and one \`\`\`cpp block"; finish
fi
if cmake -S "$source_dir" -B "$consumer" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/consumer-configure.log" 2>&1 \
    && cmake --build "$consumer" -j2 > "$tmp/consumer-build.log" 2>&1; then
  pass "the README's example builds with find_package(microgpt CONFIG) and microgpt::client"
else
  fail "the README's example: configure/build"; finish
fi

start_servers_of "$prefix/bin/microgpt-trainer" "$prefix/bin/microgpt-generator"
pass "installed servers: generator $MICROGPT_GENERATOR, TLS generator $MICROGPT_TLS_GENERATOR"

# run NAME ARGS...: runs the example into $tmp/NAME.out (stdout and stderr); its status.
run() {
  local name=$1
  shift
  "$consumer/stream" "$@" > "$tmp/$name.out" 2>&1
  local status=$?
  sed "s/^/  $name| /" "$tmp/$name.out"
  return "$status"
}
# streams NAME: the output lists both models and ends both samples of names.
streams() {
  grep -q '^model: names v' "$tmp/$1.out" && grep -q '^model: words v' "$tmp/$1.out" \
    && [ "$(grep -c '^sample [01]: .* (names v[0-9]*)$' "$tmp/$1.out")" -eq 2 ]
}

if run plaintext "$MICROGPT_GENERATOR" names && streams plaintext; then
  pass "lists the two models and streams two samples of names, the token from the environment"
else
  fail "plaintext run"
fi
if run tls "$MICROGPT_TLS_GENERATOR" names "$MICROGPT_TLS_CA_FILE" && streams tls; then
  pass "the same over TLS, verified with the CA file"
else
  fail "TLS run"
fi
if ! MICROGPT_AUTH_TOKEN= run no-token "$MICROGPT_GENERATOR" names \
    && grep -q '^ListModels: UNAUTHENTICATED' "$tmp/no-token.out"; then
  pass "without the token: UNAUTHENTICATED"
else
  fail "without the token"
fi
if ! run no-model "$MICROGPT_GENERATOR" "" \
    && grep -q '^Generate: INVALID_ARGUMENT: model must be set' "$tmp/no-model.out"; then
  pass "without a model: INVALID_ARGUMENT, model must be set"
else
  fail "without a model"
fi
finish
