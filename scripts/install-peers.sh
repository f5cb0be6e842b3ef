#!/usr/bin/env bash
# Real local peers the tests talk to, from the package registries (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f tools/package.json ]; then
  if [ ! -d tools/node_modules ] || [ tools/package.json -nt tools/node_modules ]; then
    (cd tools && npm install --no-audit --no-fund --loglevel=error)
    touch tools/node_modules
  fi
fi
