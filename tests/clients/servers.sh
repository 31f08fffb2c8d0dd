# Sourced by the client tests: trains a tiny model and starts the real servers.
#
#   source servers.sh; start_servers BUILD_DIR
#
# Trains MODEL ("tiny") with `microgpt-trainer train` into a temporary checkpoint root, then
# starts microgpt-generator and `microgpt-trainer serve` on it, each on a free port, and
# exports MICROGPT_GENERATOR, MICROGPT_TRAINER (host:port) and MICROGPT_MODEL. The servers
# are killed and the temporary directory removed on exit (trap). Needs bash.

skip() {  # skip MESSAGE: the test cannot run on this machine; ctest counts it as passed.
  echo "SKIP: $*"
  exit 0
}

servers_cleanup() {
  local status=$?
  for pid in ${server_pids:-}; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in ${server_pids:-}; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] && [ -n "${servers_tmp:-}" ]; then
    for log in "$servers_tmp"/*.log; do
      [ -s "$log" ] || continue
      echo "---- $(basename "$log") (last 20 lines)"
      tail -n 20 "$log"
    done
  fi
  [ -n "${servers_tmp:-}" ] && rm -rf "$servers_tmp"
  exit "$status"
}

# wait_listening NAME LOG PID: prints host:port once the server's stdout says it listens.
wait_listening() {
  local name=$1 log=$2 pid=$3 address=""
  for _ in $(seq 300); do
    address="$(sed -n "s/^$name listening on \([^ ]*:[0-9]*\).*/\1/p" "$log" | head -n 1)"
    if [ -n "$address" ]; then echo "$address"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "$name exited before listening" >&2; return 1; }
    sleep 0.1
  done
  echo "$name did not print its address within 30 s" >&2
  return 1
}

start_servers() {
  local build=$1
  local trainer="$build/trainer/microgpt-trainer" generator="$build/generator/microgpt-generator"
  for bin in "$trainer" "$generator"; do
    if [ ! -x "$bin" ]; then
      echo "FAIL: $bin is not built (cmake --build $build --target microgpt-trainer microgpt-generator)" >&2
      exit 1
    fi
  done
  servers_tmp="$(mktemp -d "${TMPDIR:-/tmp}/microgpt-clients.XXXXXX")"
  server_pids=""
  trap servers_cleanup EXIT
  trap 'exit 130' INT TERM
  export OPENBLAS_NUM_THREADS=1
  mkdir -p "$servers_tmp/checkpoints" "$servers_tmp/data"
  printf '%s\n' anna bob carla dave emma fred gina hank ida jack kate leo mia ned olga paul \
    quinn rosa sam tina uma vera walt xena yara zack > "$servers_tmp/data/words.txt"

  export MICROGPT_MODEL=tiny
  "$trainer" train --data "$servers_tmp/data/words.txt" --model "$MICROGPT_MODEL" \
    --checkpoint_root "$servers_tmp/checkpoints" --steps 200 > "$servers_tmp/train.log" 2>&1 \
    || { echo "FAIL: microgpt-trainer train failed" >&2; exit 1; }

  "$generator" --host 127.0.0.1 --port 0 --checkpoint_root "$servers_tmp/checkpoints" \
    --poll_interval 0.2s > "$servers_tmp/generator.log" 2>&1 &
  server_pids="$server_pids $!"
  MICROGPT_GENERATOR="$(wait_listening microgpt-generator "$servers_tmp/generator.log" $!)"
  export MICROGPT_GENERATOR

  # The SDK tests exercise the API, not authentication (the C++ e2e tests and
  # tests/tools/grpc_reflect_test.sh do), and send no token: an open trainer,
  # on loopback only.
  "$trainer" serve --host 127.0.0.1 --port 0 --checkpoint_root "$servers_tmp/checkpoints" \
    --data_root "$servers_tmp/data" --insecure_no_auth > "$servers_tmp/trainer.log" 2>&1 &
  server_pids="$server_pids $!"
  MICROGPT_TRAINER="$(wait_listening microgpt-trainer "$servers_tmp/trainer.log" $!)"
  export MICROGPT_TRAINER
  echo "servers: generator $MICROGPT_GENERATOR, trainer $MICROGPT_TRAINER, model $MICROGPT_MODEL"
}
