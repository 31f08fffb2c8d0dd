#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts the trainer (with a
# random bearer token) and the generator on loopback, trains a model through the Trainer API (progress bar),
# waits until the generator serves the published version, streams 10 samples
# token by token, and stops both services.
#
#   scripts/demo.sh                      # the default dataset: Debian's word list
#   scripts/demo.sh --data names.txt     # any file of documents, one per line
#   scripts/demo.sh --steps 3000 --batch_size 32 --n_embd 32   (any `microgpt train` flag)
#   scripts/demo.sh --keep               # keep the work directory (checkpoints, logs)
# Paths are relative to the directory it is called from; $BUILD_DIR (default
# build/, relative to the checkout) may be absolute.
set -euo pipefail
caller=$(pwd)
cd "$(dirname "$0")/.."
root=$(pwd)

data=""
keep=0
train_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --data) data=$(cd "$caller" && realpath "$2"); shift 2 ;;
    --data=*) data=$(cd "$caller" && realpath "${1#--data=}"); shift ;;
    --keep) keep=1; shift ;;
    *) train_flags+=("$1"); shift ;;
  esac
done
if [ -n "$data" ] && [ ! -f "$data" ]; then
  echo "demo: --data $data is not a file" >&2
  exit 2
fi

BUILD_TARGETS="microgpt-trainer microgpt-generator microgpt" bash scripts/build.sh
bin=$(realpath "${BUILD_DIR:-build}")

work=$(mktemp -d /tmp/microgpt-demo.XXXXXX)
mkdir -p "$work/data" "$work/checkpoints"
if [ -n "$data" ]; then
  cp "$data" "$work/data/dataset.txt"
  model=$(basename "$data" | sed 's/\.[^.]*$//; s/[^A-Za-z0-9._-]/_/g')
else
  # The default dataset: lowercase a-z words of the wamerican word list.
  grep -E '^[a-z]+$' /usr/share/dict/american-english | sort -u > "$work/data/dataset.txt"
  model=words
fi
echo "dataset: $(wc -l < "$work/data/dataset.txt") documents; work dir $work"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Starts a server in the background (in this shell, so that cleanup knows
# its pid).
launch() {
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.log" &
  pids+=($!)
}
# The port a launched server printed (it listens on --port 0).
port_of() {
  local name=$1 port
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$work/$name.out")
    [ -n "$port" ] && { echo "$port"; return; }
    sleep 0.1
  done
  echo "demo: $name did not start; see $work/$name.log" >&2
  return 1
}
# The Trainer API requires a bearer token: a random one for this run, which
# the CLI sends from the environment.
(umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$work/token")
export MICROGPT_AUTH_TOKEN=$(cat "$work/token")
launch trainer "$bin/trainer/microgpt-trainer" serve --host 127.0.0.1 --port 0 \
  --checkpoint_root "$work/checkpoints" --data_root "$work/data" --auth_token_file "$work/token"
launch generator "$bin/generator/microgpt-generator" --host 127.0.0.1 --port 0 \
  --checkpoint_root "$work/checkpoints" --poll_interval 0.2s
trainer_port=$(port_of trainer)
generator_port=$(port_of generator)
echo "trainer on 127.0.0.1:$trainer_port, generator on 127.0.0.1:$generator_port"
export MICROGPT_TRAINER=127.0.0.1:$trainer_port MICROGPT_GENERATOR=127.0.0.1:$generator_port

cli="$bin/cli/microgpt"
"$cli" train --model "$model" --data dataset.txt --steps 3000 --batch_size 16 \
  --checkpoint_every 1000 "${train_flags[@]}"

# The generator polls the checkpoint root; wait for the final version.
latest=$(ls "$work/checkpoints/$model" | grep -E '^[0-9]+$' | sort -n | tail -1)
for _ in $(seq 100); do
  grep -q "$model.*\b$latest\b" <<<"$("$cli" models 2>/dev/null)" && break
  sleep 0.1
done
echo "generator serves $model version $latest; 10 samples at temperature 0.5:"
for i in $(seq 10); do
  printf '  %2d  ' "$i"
  "$cli" generate --model "$model" --temperature 0.5 --seed "$i"
done
