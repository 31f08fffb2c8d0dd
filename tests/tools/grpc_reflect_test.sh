#!/usr/bin/env bash
# Proves the README's grpcurl commands against live servers, with grpc-reflect
# (tools/grpc_reflect), the grpcurl-compatible client that works through
# server reflection alone. Trains a tiny model, starts microgpt-generator and
# microgpt-trainer on free ports, runs each command and checks its output.
#
#   bash tests/tools/grpc_reflect_test.sh [BUILD_DIR]     (default: build, or $BUILD_DIR)
#
# $GRPC_REFLECT overrides the client binary (default
# BUILD_DIR/tools/grpc_reflect/grpc-reflect). Prints one line per check and
# "N passed, N failed" last; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

build_dir=${1:-${BUILD_DIR:-build}}
reflect=${GRPC_REFLECT:-$build_dir/tools/grpc_reflect/grpc-reflect}
trainer_bin=$build_dir/trainer/microgpt-trainer
generator_bin=$build_dir/generator/microgpt-generator
export OPENBLAS_NUM_THREADS=1

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

for bin in "$reflect" "$trainer_bin" "$generator_bin"; do
  [ -x "$bin" ] || { fail "not built: $bin (build first, or pass the build directory)"; finish; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/grpc_reflect_test.XXXXXX")
server_pids=()
cleanup() {
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# run ARGS...: runs grpc-reflect; sets $out (stdout), $err (stderr), $rc and
# $cmd (the command line, shown when a check fails).
run() {
  cmd="grpc-reflect $*"
  out=$(timeout 60 "$reflect" "$@" 2>"$tmp/stderr")
  rc=$?
  err=$(cat "$tmp/stderr")
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds; on failure shows
# the last run's command line and output.
check() {
  local description=$1
  shift
  if "$@"; then
    pass "$description"
  else
    fail "$description"
    echo "  \$ $cmd   (exit $rc)"
    printf '%s\n' "$out" | head -20 | sed 's/^/  stdout: /'
    printf '%s\n' "$err" | head -10 | sed 's/^/  stderr: /'
  fi
}

has() { grep -Eq -- "$2" <<<"$1"; }  # has TEXT REGEX
has_line() { grep -Fxq -- "$2" <<<"$1"; }  # has_line TEXT LINE
ok() { [ "$rc" -eq 0 ]; }
# The last JSON message of a stream: the lines from the last top-level "{".
last_message() { awk '/^\{$/ { message = "" } { message = message $0 "\n" } END { printf "%s", message }' <<<"$out"; }
message_count() { grep -c '^{$' <<<"$out"; }

# start_server NAME COMMAND...: starts a server, waits for its "listening on
# HOST:PORT" line and sets $address.
start_server() {
  local name=$1
  shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  server_pids+=($!)
  address=""
  for _ in $(seq 100); do
    address=$(sed -n 's/.* listening on //p' "$tmp/$name.out")
    [ -n "$address" ] && return 0
    kill -0 "${server_pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  fail "$name did not start"
  sed 's/^/  /' "$tmp/$name.err" | tail -20
  finish
}

# --- a model to serve: 100 steps on a generated word list ----------------
awk 'BEGIN {
  srand(7); letters = "aeilmnorsy"
  print "emma"; print "emily"; print "mia"
  for (i = 0; i < 200; i++) {
    n = 3 + int(rand() * 5); word = ""
    for (j = 0; j < n; j++) word = word substr(letters, 1 + int(rand() * 10), 1)
    print word
  }
}' >"$tmp/words.txt"
if "$trainer_bin" train --data "$tmp/words.txt" --model names \
    --checkpoint_root "$tmp/generator-checkpoints" --steps 100 >"$tmp/train.log" 2>&1; then
  pass "microgpt-trainer train: model names, 100 steps"
else
  fail "microgpt-trainer train"
  tail -20 "$tmp/train.log" | sed 's/^/  /'
  finish
fi

# --- generator --------------------------------------------------------------
start_server generator "$generator_bin" --host 127.0.0.1 --port 0 \
  --checkpoint_root "$tmp/generator-checkpoints" --poll_interval 0.2s --shutdown_grace 1s
gen=$address
echo "generator on $gen"

# Health turns SERVING once the model is loaded.
for _ in $(seq 50); do
  run -plaintext "$gen" grpc.health.v1.Health/Check
  has "$out" '"status": "SERVING"' && break
  sleep 0.2
done
check "grpc.health.v1.Health/Check: SERVING (its descriptor comes from the vendored health.proto)" \
  eval 'ok && has "$out" "\"status\": \"SERVING\""'

run -plaintext "$gen" list
check "list: exit 0" ok
check "list: shows microgpt.v1.Generator" has_line "$out" microgpt.v1.Generator
check "list: shows grpc.reflection.v1alpha.ServerReflection" \
  has_line "$out" grpc.reflection.v1alpha.ServerReflection

run -plaintext "$gen" list microgpt.v1.Generator
check "list microgpt.v1.Generator: its two methods" \
  eval 'ok && [ "$out" = "microgpt.v1.Generator.Generate
microgpt.v1.Generator.ListModels" ]'

run -plaintext "$gen" describe microgpt.v1.GenerateRequest
check "describe microgpt.v1.GenerateRequest: a message" \
  eval 'ok && [ "$(head -1 <<<"$out")" = "microgpt.v1.GenerateRequest is a message:" ]'
check "describe microgpt.v1.GenerateRequest: its fields" \
  eval 'has_line "$out" "  string prompt = 3;" && has_line "$out" "  optional float temperature = 5;" &&
        has_line "$out" "  int32 top_logprobs = 10;"'

run -plaintext -d '{"prompt":"em"}' "$gen" microgpt.v1.Generator/Generate
check "Generate {prompt: em}: streams messages" eval 'ok && [ "$(message_count)" -ge 1 ]'
check "Generate {prompt: em}: the last has finishReason, model and version" \
  eval 'last=$(last_message); has "$last" "\"finishReason\": \"FINISH_REASON_" &&
        has "$last" "\"model\": \"names\"" && has "$last" "\"version\": \"100\""'
check "Generate {prompt: em}: only the last has finishReason" \
  eval '[ "$(grep -c finishReason <<<"$out")" -eq 1 ]'

every_field='{"model":"names","version":100,"prompt":"em","maxTokens":4,"temperature":0.8,
  "topK":5,"topP":0.9,"seed":7,"numSamples":2,"topLogprobs":3}'
run -plaintext -d "$every_field" "$gen" microgpt.v1.Generator/Generate
first_run=$out
check "Generate with every sampling field: exit 0" ok
check "Generate with every sampling field: two samples, each finished" \
  eval 'has "$out" "\"sampleIndex\": 1" && [ "$(grep -c "\"finishReason\"" <<<"$out")" -eq 2 ]'
check "Generate with every sampling field: at most maxTokens tokens per sample" \
  eval '[ "$(message_count)" -le 8 ]'
check "Generate with every sampling field: topLogprobs listed" \
  eval 'has "$out" "\"topLogprobs\": \\["'
run -plaintext -d "$every_field" "$gen" microgpt.v1.Generator/Generate
check "Generate with every sampling field: the same seed gives the same tokens" \
  eval 'ok && [ "$out" = "$first_run" ]'

run -plaintext "$gen" microgpt.v1.Generator/ListModels
check "ListModels: model names, version 100" \
  eval 'ok && has "$out" "\"name\": \"names\"" && has "$out" "\"version\": \"100\""'

run -plaintext -d '{"prompt":"em","temperature":-1}' "$gen" microgpt.v1.Generator/Generate
check "Generate {temperature: -1}: Code: InvalidArgument, exit 1" \
  eval '[ "$rc" -eq 1 ] && has_line "$err" "ERROR:" && has_line "$err" "  Code: InvalidArgument" &&
        has "$err" "^  Message: .*temperature"'

run -plaintext "$gen" microgpt.v1.Generator/NoSuchMethod
check "an unknown method: exit 1 with a message" \
  eval '[ "$rc" -eq 1 ] && has "$err" "does not include a method named \"NoSuchMethod\""'

# --- trainer ----------------------------------------------------------------
# The Trainer API requires a bearer token; reflection and health stay open.
mkdir -p "$tmp/data"
token=grpc-reflect-test-token
printf '%s\n' "$token" > "$tmp/token"
start_server trainer "$trainer_bin" serve --host 127.0.0.1 --port 0 \
  --checkpoint_root "$tmp/trainer-checkpoints" --data_root "$tmp/data" --shutdown_grace 1s \
  --auth_token_file "$tmp/token"
trainer=$address
echo "trainer on $trainer"

run -plaintext "$trainer" list
check "trainer list without a token: shows microgpt.v1.Trainer" eval 'ok && has_line "$out" microgpt.v1.Trainer'

run -plaintext "$trainer" grpc.health.v1.Health/Check
check "trainer health without a token: SERVING" eval 'ok && has "$out" "\"status\": \"SERVING\""'

run -plaintext "$trainer" microgpt.v1.Trainer/ListTrainings
check "ListTrainings without a token: Code: Unauthenticated, exit 1" \
  eval '[ "$rc" -eq 1 ] && has_line "$err" "  Code: Unauthenticated"'

run -plaintext -H "authorization: Bearer wrong-token" "$trainer" microgpt.v1.Trainer/ListTrainings
check "ListTrainings with a wrong token: Code: Unauthenticated" \
  eval '[ "$rc" -eq 1 ] && has_line "$err" "  Code: Unauthenticated"'

auth="authorization: Bearer $token"
run -plaintext -H "$auth" -d '{"model":"m2","inlineDataset":{"documents":["ab","ba","abba"]},"steps":50}' \
  "$trainer" microgpt.v1.Trainer/StartTraining
job_id=$(sed -n 's/^  "jobId": "\(.*\)"$/\1/p' <<<"$out")
check "StartTraining: returns a jobId" eval 'ok && [ -n "$job_id" ]'

# The README pipes the request in: -d @ reads it from stdin.
run -plaintext -H "$auth" -d @ "$trainer" microgpt.v1.Trainer/WatchTraining <<<"{\"jobId\":\"$job_id\"}"
check "WatchTraining: streams until finished" \
  eval 'last=$(last_message); ok && has "$last" "^  \"finished\": \\{" &&
        has "$last" "\"state\": \"JOB_STATE_SUCCEEDED\"" && has "$last" "\"latestVersion\": \"50\""'

finish
