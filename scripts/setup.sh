#!/usr/bin/env bash
# Installs the Debian bookworm packages the project builds, tests and runs with.
# Idempotent: when everything is present it prints nothing and touches nothing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libopenblas-dev libgtest-dev libbenchmark-dev prometheus-cpp-dev
  nlohmann-json3-dev libssl-dev
  libpcre2-dev      # regex-constrained generation (GenerateRequest.regex)
  grpc-proto        # health.proto and reflection.proto (v1, v1alpha) for the servers
  wamerican         # the default training dataset: /usr/share/dict/american-english
  python3-yaml python3-jsonschema  # tests/deploy: strict manifest validation
  python3-grpcio python3-protobuf  # tests/clients: the Python SDK against live servers
  gdb               # tests/e2e/crash_e2e_test: kill -9 at chosen points of the trainer
  openssl           # tests: self-signed certificates for the TLS tests
)
# Extra groups: `setup.sh --with-python` adds what the Python client and benchmarks need.
with_buf=0
for arg in "$@"; do
  case "$arg" in
    # The buf CLI from npm, pinned by tools/buf/package-lock.json (scripts/test.sh).
    --with-buf) with_buf=1 ;;
    # tests/deploy/image_test.py: the image built and run with podman (runc;
    # netavark needs iptables), base images from debootstrap.
    --with-containers) packages+=(podman runc netavark aardvark-dns iptables debootstrap) ;;
    --with-python) packages+=(python3-numpy) ;;
    # Data-parallel training under mpirun (trainer/mpi_world.h): CMake builds
    # it where it finds MPI; tests/mpi/data_parallel_test.py runs mpirun.
    --with-mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    # scripts/bench.sh: the PyTorch column, and GNU time for the peak memory
    # of the text training runs (bench/text_bench.sh).
    --with-torch) packages+=(python3-torch time) ;;
    # scripts/sanitize.sh, fuzz.sh, tsan.sh: clang with its sanitizer and
    # libFuzzer runtimes, llvm-symbolizer for the reports.
    --with-sanitizers) packages+=(clang libclang-rt-14-dev llvm) ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# Node.js for the Node SDK's tests: any node >= 18 will do (NodeSource or Debian).
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing packages (${missing[*]}); run as root or install them with apt-get" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((with_buf)); then
  buf_dir="$(cd "$(dirname "$0")/.." && pwd)/tools/buf"
  stamp="$buf_dir/node_modules/.package-lock.json"  # written by npm at each install
  if [ ! -x "$buf_dir/node_modules/.bin/buf" ] || [ "$buf_dir/package-lock.json" -nt "$stamp" ]; then
    echo "setup.sh: npm ci in tools/buf (the buf CLI)"
    (cd "$buf_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
