#!/usr/bin/env bash
# Runs the Node client's tests (clients/node/test/client.test.mjs, `node --test`, which also
# run every js block of clients/node/README.md) against a real microgpt-generator and
# microgpt-trainer serving two models and requiring a bearer token (servers.sh).
#   usage: node_client_test.sh [BUILD_DIR]        (default: build, at the repository root)
# Installs the client's dependencies with `npm ci` (from package-lock.json) when
# clients/node/node_modules is missing or older than the lock file. Prints "SKIP: ..." and
# exits 0 when node (>= 18) or npm is missing or the install fails (no registry).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$(cd "${1:-$repo/build}" && pwd)"
source "$here/servers.sh"
client="$repo/clients/node"

command -v node >/dev/null || skip "node client: node not found (apt-get install nodejs npm)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 18 ] || skip "node client: node $(node --version) is older than 18"

stamp="$client/node_modules/.package-lock.json"  # written by npm at each install
if [ ! -f "$stamp" ] || [ "$client/package-lock.json" -nt "$stamp" ]; then
  command -v npm >/dev/null || skip "node client: npm not found and clients/node/node_modules not installed"
  echo "npm ci in clients/node"
  (cd "$client" && npm ci --no-audit --no-fund --loglevel=error) \
    || skip "node client: npm ci failed (registry unreachable?)"
fi

start_servers "$build"
cd "$client"

# The example as its README shows it run: the servers and the token from the environment.
echo "examples/stream.mjs:"
node examples/stream.mjs | tee "$servers_tmp/example.out"
grep -q '  <- ' "$servers_tmp/example.out" || { echo "FAIL: no finished sample" >&2; exit 1; }

node --test --test-reporter=spec test/client.test.mjs
