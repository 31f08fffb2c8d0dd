#!/usr/bin/env bash
# Checks that the runtime stage of deploy/docker/Dockerfile installs every
# shared library the three binaries load: runs ldd on them, finds the Debian
# package of each resolved library (dpkg -S) and looks it up in the package
# list of the runtime stage's `apt-get install`. The image cannot be built on
# a machine without a container engine; this is the check that keeps its
# package list honest. Run it on the Debian bookworm machine that built the
# binaries:
#
#   bash tests/deploy/check_runtime_libs.sh [BUILD_DIR]     (default: build, or $BUILD_DIR)
#
# Prints one line per library and binary, and "N passed, N failed" last.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

build_dir=${1:-${BUILD_DIR:-build}}
dockerfile=${DOCKERFILE:-deploy/docker/Dockerfile}
binaries=(trainer/microgpt-trainer generator/microgpt-generator cli/microgpt)

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

for tool in ldd dpkg-query; do
  command -v "$tool" >/dev/null 2>&1 || { fail "$tool not found (run this on Debian)"; finish; }
done

# The runtime stage: from its FROM line to the next FROM (or the end), with
# continuation lines joined; the packages are the words after
# `apt-get install` up to the end of that command (&&, ;, |), options skipped.
runtime_packages() {
  awk '
    /^[[:space:]]*#/ { next }
    { line = line $0 }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, " ", line); next }
    { print line; line = "" }
  ' "$dockerfile" | awk '
    toupper($1) == "FROM" { stage = ($0 ~ /[[:space:]][Aa][Ss][[:space:]]+runtime[[:space:]]*$/) ; next }
    stage && toupper($1) == "RUN" {
      n = split($0, w, /[[:space:]]+/)
      for (i = 1; i <= n; i++) {
        if (w[i] == "apt-get" && w[i + 1] == "install") { take = 1; i++; continue }
        if (w[i] == "&&" || w[i] == ";" || w[i] == "|" || w[i] == "||") { take = 0; continue }
        if (take && w[i] != "" && w[i] !~ /^-/) print w[i]
      }
    }
  ' | sed 's/[=:].*//' | sort -u
}

[ -f "$dockerfile" ] || { fail "$dockerfile not found"; finish; }
mapfile -t packages < <(runtime_packages)
if [ ${#packages[@]} -eq 0 ]; then
  fail "$dockerfile: no 'apt-get install' package list in the stage named runtime"
  finish
fi
echo "runtime stage of $dockerfile installs: ${packages[*]}"

missing_binaries=()
for b in "${binaries[@]}"; do
  [ -x "$build_dir/$b" ] || missing_binaries+=("$build_dir/$b")
done
if [ ${#missing_binaries[@]} -gt 0 ]; then
  fail "not built: ${missing_binaries[*]} (build first: bash scripts/build.sh, or pass the build directory)"
  finish
fi

# The package owning a file, trying the path as ldd shows it, its /usr-merged
# twin (/lib/... is /usr/lib/... on bookworm) and the file it finally points
# to (shared libraries are often symlinks, and alternatives live in /etc).
owner() {
  local path=$1 candidates=() c out
  candidates+=("$path")
  case "$path" in
    /usr/*) candidates+=("${path#/usr}") ;;
    *) candidates+=("/usr$path") ;;
  esac
  local real
  real=$(readlink -f "$path" 2>/dev/null) && [ -n "$real" ] && {
    candidates+=("$real")
    case "$real" in
      /usr/*) candidates+=("${real#/usr}") ;;
      *) candidates+=("/usr$real") ;;
    esac
  }
  for c in "${candidates[@]}"; do
    out=$(dpkg-query -S "$c" 2>/dev/null | grep -v '^diversion by' | head -1) || true
    if [ -n "$out" ]; then
      # "libfoo1:amd64: /path" or "pkg1, pkg2: /path": the first package.
      echo "${out%%: /*}" | cut -d, -f1 | sed 's/:.*//; s/[[:space:]]//g'
      return 0
    fi
  done
  return 1
}

declare -A seen=()
for b in "${binaries[@]}"; do
  bin="$build_dir/$b"
  if ! ldd_out=$(ldd "$bin" 2>&1); then
    fail "$b: ldd failed: $ldd_out"
    continue
  fi
  if grep -q "not found" <<<"$ldd_out"; then
    fail "$b: unresolved libraries: $(grep 'not found' <<<"$ldd_out" | awk '{print $1}' | tr '\n' ' ')"
  else
    pass "$b: every library resolves"
  fi
  while read -r lib path; do
    [ -n "$path" ] || continue
    key="$lib $path"
    [ -n "${seen[$key]:-}" ] && continue
    seen[$key]=1
    if ! pkg=$(owner "$path"); then
      fail "$lib ($path): no Debian package owns it (built locally? the image would lack it)"
      continue
    fi
    # A here-string, not a pipe: with pipefail, grep -q quitting at its first
    # match can fail the printf feeding it (SIGPIPE) and the test with it.
    if grep -qxF -- "$pkg" <<<"$(printf '%s\n' "${packages[@]}")"; then
      pass "$lib: $pkg"
    else
      fail "$lib ($path): package $pkg is not installed by the runtime stage of $dockerfile"
    fi
  done < <(awk '
    $2 == "=>" && $3 ~ /^\// { print $1, $3; next }   # libfoo.so.1 => /path (addr)
    $1 ~ /^\// { print $1, $1 }                        # /lib64/ld-linux-x86-64.so.2 (addr)
  ' <<<"$ldd_out")
done

# Packages the list has that no binary needs: a note, not a failure.
declare -A needed=()
for key in "${!seen[@]}"; do
  p=$(owner "${key#* }") && needed[$p]=1
done
for p in "${packages[@]}"; do
  [ -n "${needed[$p]:-}" ] || echo "note: $p is installed by the runtime stage but no binary loads a library of it"
done
finish
