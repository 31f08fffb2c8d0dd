#!/usr/bin/env bash
# Runs the Python client's tests (clients/python/tests/test_client.py, which also run every
# python block of clients/python/README.md) against a real microgpt-generator and
# microgpt-trainer serving two models and requiring a bearer token (servers.sh).
#   usage: python_client_test.sh [BUILD_DIR]      (default: build, at the repository root)
# Uses Debian's /usr/bin/python3 with python3-grpcio and python3-protobuf, and protoc with
# grpc_python_plugin (protobuf-compiler, protobuf-compiler-grpc) to generate the stubs.
# Prints "SKIP: ..." and exits 0 when one of those is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$(cd "${1:-$repo/build}" && pwd)"
source "$here/servers.sh"

python="${MICROGPT_PYTHON:-/usr/bin/python3}"
[ -x "$python" ] || skip "python client: $python not found"
"$python" -c 'import grpc, google.protobuf' 2>/dev/null \
  || skip "python client: $python lacks grpc/protobuf (apt-get install python3-grpcio python3-protobuf)"
command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null \
  || skip "python client: protoc/grpc_python_plugin not found (apt-get install protobuf-compiler protobuf-compiler-grpc)"

bash "$repo/clients/python/build_stubs.sh"
start_servers "$build"
cd "$repo/clients/python"
export PYTHONPATH="$repo/clients/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1

# The example as its README shows it run: the servers and the token from the environment.
echo "examples/stream.py:"
"$python" examples/stream.py | tee "$servers_tmp/example.out"
grep -q '  <- ' "$servers_tmp/example.out" || { echo "FAIL: no finished sample" >&2; exit 1; }

"$python" -m unittest -v tests.test_client
