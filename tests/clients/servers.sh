# Sourced by the client tests: trains two tiny models and starts the real servers, locked
# with a bearer token, as a deployment runs them.
#
#   source servers.sh; start_servers BUILD_DIR     (the binaries of a build tree)
#   source servers.sh; start_servers_of TRAINER GENERATOR    (e.g. installed ones)
#
# Trains "names" and "words" with `microgpt-trainer train` into a temporary checkpoint root,
# then starts on it, each on a free port of 127.0.0.1 and all with one random bearer token:
#   microgpt-generator --require_auth                 MICROGPT_GENERATOR (host:port)
#   microgpt-trainer serve                            MICROGPT_TRAINER
#   microgpt-generator --require_auth over TLS        MICROGPT_TLS_GENERATOR (localhost:port),
#     with a self-signed certificate for localhost    MICROGPT_TLS_CA_FILE (its PEM file)
# and exports those, MICROGPT_AUTH_TOKEN (the token, which the SDKs read like the CLI) and
# MICROGPT_MODEL=names. Two models, so that a request without a model fails ("model must be
# set") and every example has to name one. The servers are killed and the temporary
# directory, $servers_tmp, removed on exit (trap; servers_init sets it up early for a test
# that needs the directory before the servers). Needs bash and openssl.

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

# servers_init: makes $servers_tmp and sets the exit trap that stops the servers and
# removes it (and prints its *.log files when the test fails). Once only.
servers_init() {
  [ -n "${servers_tmp:-}" ] && return 0
  servers_tmp="$(mktemp -d "${TMPDIR:-/tmp}/microgpt-clients.XXXXXX")"
  server_pids=""
  trap servers_cleanup EXIT
  trap 'exit 130' INT TERM
}

start_servers() {
  local build=$1
  start_servers_of "$build/trainer/microgpt-trainer" "$build/generator/microgpt-generator"
}

start_servers_of() {
  local trainer=$1 generator=$2
  for bin in "$trainer" "$generator"; do
    if [ ! -x "$bin" ]; then
      echo "FAIL: $bin is missing (cmake --build BUILD_DIR --target microgpt-trainer microgpt-generator)" >&2
      exit 1
    fi
  done
  command -v openssl >/dev/null \
    || { echo "FAIL: openssl not found (apt-get install openssl): it makes the TLS certificate" >&2; exit 1; }
  servers_init
  export OPENBLAS_NUM_THREADS=1
  mkdir -p "$servers_tmp/checkpoints" "$servers_tmp/data" "$servers_tmp/tls"
  printf '%s\n' anna bob carla dave emma fred gina hank ida jack kate leo mia ned olga paul \
    quinn rosa sam tina uma vera walt xena yara zack > "$servers_tmp/data/names.txt"
  printf '%s\n' apple bread chair dream earth flame grape house input juice knife lemon \
    music night ocean paper queen river stone table > "$servers_tmp/data/words.txt"

  export MICROGPT_MODEL=names
  for model in names words; do
    "$trainer" train --data "$servers_tmp/data/$model.txt" --model "$model" \
      --checkpoint_root "$servers_tmp/checkpoints" --steps 200 > "$servers_tmp/train-$model.log" 2>&1 \
      || { echo "FAIL: microgpt-trainer train --model $model failed" >&2; exit 1; }
  done

  # One token for all servers, given to them in a file (so that only the clients read it
  # from the environment) and exported for the SDKs, which send it on every call.
  MICROGPT_AUTH_TOKEN="clients-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  export MICROGPT_AUTH_TOKEN
  printf '%s\n' "$MICROGPT_AUTH_TOKEN" > "$servers_tmp/token"

  "$generator" --host 127.0.0.1 --port 0 --checkpoint_root "$servers_tmp/checkpoints" \
    --poll_interval 0.2s --require_auth --auth_token_file "$servers_tmp/token" \
    > "$servers_tmp/generator.log" 2>&1 &
  server_pids="$server_pids $!"
  MICROGPT_GENERATOR="$(wait_listening microgpt-generator "$servers_tmp/generator.log" $!)" || exit 1
  export MICROGPT_GENERATOR

  "$trainer" serve --host 127.0.0.1 --port 0 --checkpoint_root "$servers_tmp/checkpoints" \
    --data_root "$servers_tmp/data" --auth_token_file "$servers_tmp/token" \
    > "$servers_tmp/trainer.log" 2>&1 &
  server_pids="$server_pids $!"
  MICROGPT_TRAINER="$(wait_listening microgpt-trainer "$servers_tmp/trainer.log" $!)" || exit 1
  export MICROGPT_TRAINER

  # A second generator on the same checkpoint root, over TLS, for the examples that
  # connect with a CA file. The clients verify the name they dial, so the certificate is
  # for localhost and they dial localhost.
  MICROGPT_TLS_CA_FILE="$servers_tmp/tls/ca.pem"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$servers_tmp/tls/key.pem" \
    -out "$MICROGPT_TLS_CA_FILE" > "$servers_tmp/openssl.out" 2>&1 \
    || { cat "$servers_tmp/openssl.out" >&2; echo "FAIL: openssl could not make a certificate" >&2; exit 1; }
  export MICROGPT_TLS_CA_FILE
  "$generator" --host 127.0.0.1 --port 0 --checkpoint_root "$servers_tmp/checkpoints" \
    --poll_interval 0.2s --require_auth --auth_token_file "$servers_tmp/token" \
    --tls_cert_file "$MICROGPT_TLS_CA_FILE" --tls_key_file "$servers_tmp/tls/key.pem" \
    > "$servers_tmp/generator-tls.log" 2>&1 &
  server_pids="$server_pids $!"
  local tls_address
  tls_address="$(wait_listening microgpt-generator "$servers_tmp/generator-tls.log" $!)" || exit 1
  MICROGPT_TLS_GENERATOR="localhost:${tls_address##*:}"
  export MICROGPT_TLS_GENERATOR
  echo "servers: generator $MICROGPT_GENERATOR, trainer $MICROGPT_TRAINER," \
    "TLS generator $MICROGPT_TLS_GENERATOR, models names and words, bearer token required"
}
