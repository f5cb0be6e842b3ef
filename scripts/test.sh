#!/usr/bin/env bash
# Set up everything the test suite needs (idempotent) and run it: lint, types, tests.
# Needs only Python >= 3.11 and Node/npm on the machine. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" "tox>=4.11"
bash scripts/install-peers.sh
exec .venv/bin/tox run -e lint,type,tests -- "$@"
