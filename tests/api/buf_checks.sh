#!/usr/bin/env bash
# The proto contract, checked with the buf CLI (tools/buf, pinned; installed by
# scripts/setup.sh --with-buf) against buf.yaml:
#   lint      buf's STANDARD rules, less the ones buf.yaml lists with reasons
#   breaking  no change that breaks a client of microgpt.v1 as released
#             (proto/baseline/microgpt.v1.json; after an additive change,
#             `buf build --exclude-source-info -o proto/baseline/microgpt.v1.json`
#             records the new baseline)
#
#   bash tests/api/buf_checks.sh lint|breaking
set -euo pipefail
cd "$(dirname "$0")/../.."
buf=tools/buf/node_modules/.bin/buf
[ -x "$buf" ] || { echo "FAIL: $buf not installed (bash scripts/setup.sh --with-buf)"; exit 1; }
case ${1:-} in
  lint) "$buf" lint && echo "buf lint: clean" ;;
  breaking) "$buf" breaking --against proto/baseline/microgpt.v1.json &&
    echo "buf breaking: compatible with proto/baseline/microgpt.v1.json" ;;
  *) echo "usage: $0 lint|breaking" >&2; exit 2 ;;
esac
