#!/usr/bin/env bash
# Real local peers the tests talk to, from the package registries (idempotent).
#   install-peers.sh        anvil and solc-js (npm, into tools/), chromium and promtool
#                           (Debian packages, system-wide): what the test suite needs
#   install-peers.sh node   anvil and solc-js only, into tools/: what the demo needs; it
#                           changes nothing outside this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
if [ -f tools/package.json ]; then
  if [ ! -d tools/node_modules ] || [ tools/package.json -nt tools/node_modules ]; then
    (cd tools && npm install --no-audit --no-fund --loglevel=error)
    touch tools/node_modules
  fi
fi
if [ "$WHAT" = node ]; then
  exit 0
fi
# Headless Chromium for the dashboard browser tests (Debian package; Playwright is
# pointed at /usr/bin/chromium, never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update && apt-get install -y chromium
  else
    echo "install-peers: chromium is missing; install the Debian package 'chromium' (as root)" >&2
  fi
fi
# promtool for the alert rule tests (deploy/prometheus/; Debian package 'prometheus',
# only its promtool binary is used — the packaged service need not run).
if ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update && apt-get install -y prometheus
  else
    echo "install-peers: promtool is missing; install the Debian package 'prometheus' (as root)" >&2
  fi
fi
# PostgreSQL server binaries for the PostgreSQL store tests (Debian package; the
# tests start their own server in a temporary directory). The server refuses to
# run as root, so the tests run it as the unprivileged `postgres` user.
have_initdb() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
if ! have_initdb; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
  else
    echo "install-peers: PostgreSQL is missing; install the Debian package 'postgresql' (as root)" >&2
  fi
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi
