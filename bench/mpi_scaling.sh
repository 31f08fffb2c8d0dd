#!/usr/bin/env bash
# The cost of MPI's shard gathering on one machine (docs/distributed.md): for
# configs (e) and (f) on tiny Shakespeare in text mode, one process of 2
# threads against `mpirun -n 2` ranks of 1 thread (the same 2 shards, so the
# same weights, which it checks), printing each run's wall time.
#
#   bench/mpi_scaling.sh [BUILD_DIR]     # default build/; needs mpirun
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
text=../shared/data/shakespeare.txt
[ -f "$text" ] || { echo "mpi_scaling.sh: $text is missing" >&2; exit 1; }
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
trainer=$build/trainer/microgpt-trainer
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /'
echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
e="--n_layer 4 --n_head 4 --n_embd 128 --block_size 64 --batch_size 12 --lr 1e-3 --steps 300"
f="--n_layer 6 --n_head 6 --n_embd 384 --block_size 256 --batch_size 16 --lr 1e-3"
f+=" --init_std 0.02 --steps 20"
for config in e f; do
  args="--data $text --format text ${!config} --checkpoint_root $work"
  # shellcheck disable=SC2086
  one=$("$trainer" train $args --model "${config}1" --threads 2 2>/dev/null | tail -1)
  # shellcheck disable=SC2086
  two=$(mpirun -n 2 --bind-to core "$trainer" train $args --model "${config}2" --threads 1 \
    2>/dev/null | tail -1)
  steps=$(echo "${!config}" | sed 's/.*--steps \([0-9]*\).*/\1/')
  same=$(cmp -s "$work/${config}1/$steps/model.safetensors" \
    "$work/${config}2/$steps/model.safetensors" && echo yes || echo NO)
  echo "($config) 1 process x 2 threads: $one"
  echo "($config) 2 ranks x 1 thread:    $two   (same weights: $same)"
done
