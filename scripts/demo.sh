#!/usr/bin/env bash
# The whole loop on a local devnet, in one command (needs only Python >= 3.11 and Node/npm):
#
#   bash scripts/demo.sh            # 60-second run
#   bash scripts/demo.sh 300        # five minutes;  DEMO_DURATION=0 runs until Ctrl-C
#   DEMO_ORDERBOOK=v6 bash scripts/demo.sh       # the IRaindexV6 test orderbook
#   DEMO_ORDERBOOK=v6 DEMO_VAULTLESS=1 bash scripts/demo.sh   # ... with vaultless orders
#
# It creates .venv and installs the project (once), installs anvil and solc-js from npm
# into tools/ (once), starts anvil on a free local port, deploys the project's test
# contracts (USDC, tAAPL/tTSLA/tNVDA, a Pyth-like oracle, the test orderbook), places
# two-sided orders for the maker, runs a taker that fills them at random sizes, and runs
# the real engine (`python -m st0x_liquidity run`) with the raindex source and the
# dry-run executor, printing each fill and hedge. Every run starts a fresh chain and a
# fresh database under .demo/, so running it twice is safe. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${1:-${DEMO_DURATION:-60}}
PYTHON=${PYTHON:-python3}
DEMO=$ROOT/.demo

say() { printf '\n== %s\n' "$*"; }

# -- 1. Python environment (idempotent) -------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
# The devnet is test support: st0x-liquidity-testing (plugins/st0x_testing), beside the core.
if [ ! -f .venv/.st0x-demo-installed ] || [ pyproject.toml -nt .venv/.st0x-demo-installed ] \
   || [ plugins/st0x_testing/pyproject.toml -nt .venv/.st0x-demo-installed ]; then
  say "installing st0x-liquidity and st0x-liquidity-testing into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e . -e plugins/st0x_testing
  touch .venv/.st0x-demo-installed
fi

# -- 2. Node tools: anvil (EVM node) and solc-js, from npm (idempotent) -----------------
say "installing anvil from npm (tools/)"
bash scripts/install-peers.sh node

# -- 3. A fresh chain and a fresh database ----------------------------------------------
stop_pid() {  # stop a process we started, by its recorded pid only
  local file=$1
  if [ -f "$file" ]; then
    local pid
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
  fi
}
mkdir -p "$DEMO"
stop_pid "$DEMO/taker.pid"   # left over from an interrupted earlier run
stop_pid "$DEMO/anvil.pid"
rm -f "$DEMO"/demo.sqlite* "$DEMO"/dry-run* "$DEMO"/devnet.json "$DEMO"/config.toml

cleanup() {
  stop_pid "$DEMO/taker.pid"
  stop_pid "$DEMO/anvil.pid"
}
trap cleanup EXIT
# Ctrl-C reaches the engine too (same process group) and stops it cleanly; the script
# then goes on to print the summary and stops what it started.
interrupted=0
trap 'interrupted=1' INT
trap 'exit 143' TERM

PORT=$(.venv/bin/python -c 'from st0x_testing.raindex_devnet import free_port; print(free_port())')
ANVIL=$(.venv/bin/python -c 'from st0x_testing.raindex_devnet import anvil_binary; print(anvil_binary())')
say "starting anvil on 127.0.0.1:$PORT"
"$ANVIL" --host 127.0.0.1 --port "$PORT" --silent > "$DEMO/anvil.log" 2>&1 &
echo $! > "$DEMO/anvil.pid"
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done
URL=ws://127.0.0.1:$PORT

say "deploying the test contracts and placing two-sided orders"
.venv/bin/python -m st0x_testing.raindex_devnet setup --rpc-url "$URL" --out "$DEMO" --database demo.sqlite \
  --orderbook-interface "${DEMO_ORDERBOOK:-v5}" ${DEMO_VAULTLESS:+--vaultless}

# -- 4. The taker and the engine --------------------------------------------------------
say "starting the taker (random sizes, fractional included)"
TAKER_ARGS=(--rpc-url "$URL" --devnet-file "$DEMO/devnet.json" --interval 2)
if [ "$DURATION" != 0 ]; then TAKER_ARGS+=(--duration "$DURATION"); fi
.venv/bin/python -u -m st0x_testing.raindex_devnet taker "${TAKER_ARGS[@]}" &
echo $! > "$DEMO/taker.pid"

if [ "$DURATION" != 0 ]; then
  say "running the engine for ${DURATION}s (raindex source over WebSocket, dry-run executor); Ctrl-C stops"
  set +e
  timeout -s INT -k 30 "$((DURATION + 3))" .venv/bin/python -m st0x_liquidity run --config-file "$DEMO/config.toml"
  status=$?
  set -e
  if [ $status -ne 0 ] && [ $status -ne 124 ] && [ $status -ne 130 ]; then exit $status; fi
else
  say "running the engine until Ctrl-C (raindex source over WebSocket, dry-run executor)"
  .venv/bin/python -m st0x_liquidity run --config-file "$DEMO/config.toml" || true
fi

stop_pid "$DEMO/taker.pid"

say "positions"
.venv/bin/python -m st0x_liquidity positions --config-file "$DEMO/config.toml"
say "which hedge covered which fill (first lines of: python -m st0x_liquidity audit --config-file .demo/config.toml)"
.venv/bin/python -m st0x_liquidity audit --config-file "$DEMO/config.toml" | head -20
say "done; the database is .demo/demo.sqlite, the config .demo/config.toml"
