#!/usr/bin/env bash
# The longest functions of the project's own code, longest first, as
# clang-tidy's readability-function-size check counts them (lines of the
# body, comments and blank lines included).
#
#   scripts/longest_functions.sh [MIN_LINES] [DIR...]   (default: 60; common server trainer generator)
#
# Needs a configured build (build/compile_commands.json, or $BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
min=${1:-60}
shift || true
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(common server trainer generator)
build=${BUILD_DIR:-build}
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json: run scripts/build.sh first" >&2; exit 1; }
config="{Checks: '-*,readability-function-size', CheckOptions: [{key: readability-function-size.LineThreshold, value: $((min - 1))}]}"
find "${dirs[@]}" -name '*.cc' | sort |
  xargs -P "$(nproc)" -n 4 clang-tidy --quiet -p "$build" --config="$config" 2>/dev/null |
  awk -v root="$PWD/" '
    /warning: function .* exceeds recommended size/ {
      split($1, where, ":"); name = $0
      sub(/.*function /, "", name); sub(/ exceeds.*/, "", name)
      location = where[1] ":" where[2]; sub("^" root, "", location)
    }
    /note: [0-9]+ lines including whitespace and comments/ {
      match($0, /[0-9]+ lines/); lines = substr($0, RSTART, RLENGTH - 6)
      if (location != "") { printf "%5d  %s  %s\n", lines, name, location; location = "" }
    }' |
  sort -rn -k1,1 | uniq
