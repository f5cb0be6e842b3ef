"""The README's install, as a new user runs it: wheels built here, never the public index.

``scripts/build-wheels.py`` builds the four distributions; a fresh venv takes
the third-party requirements from the index, then ``st0x-liquidity[EXTRA]``
with ``--no-index --find-links dist``: our own names can only come from the
wheels just built (nobody else's upload under them can be installed).
``plugins --json`` must then list what the extra brings, and nothing from
this checkout may be imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, timeout: float = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what pip installed
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, ROOT / "scripts" / "build-wheels.py", out)
    return out


def test_the_four_wheels_carry_no_tests(dist: Path) -> None:
    wheels = sorted(p.name for p in dist.glob("*.whl"))
    assert [w.split("-")[0] for w in wheels] == [
        "st0x_alpaca",
        "st0x_alpaca_broker",
        "st0x_liquidity",
        "st0x_schwab",
    ]
    for wheel in dist.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            assert not [n for n in archive.namelist() if "/tests/" in n or n.startswith("tests/")]
    [core] = dist.glob("st0x_liquidity-*.whl")
    with zipfile.ZipFile(core) as archive:
        docs = [n for n in archive.namelist() if "/data/share/doc/st0x-liquidity/" in n]
    assert any(n.endswith("/operations.md") for n in docs), docs
    lines = (dist / "requirements.txt").read_text().splitlines()
    requirements = [line for line in lines if not line.startswith("#")]
    assert any(r.startswith("web3") for r in requirements)
    assert not [r for r in requirements if r.startswith("st0x")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "executors"),
    [
        ("alpaca", {"alpaca-trading-api"}),
        ("schwab", {"schwab"}),
        ("all", {"alpaca-trading-api", "alpaca-broker-api", "schwab"}),
    ],
)
def test_an_extra_installs_from_the_wheels_alone(
    dist: Path, tmp_path: Path, extra: str, executors: set[str]
) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(*pip, "-r", dist / "requirements.txt")
    run(*pip, "--no-index", "--find-links", dist, f"st0x-liquidity[{extra}]")
    data = json.loads(run(python, "-m", "st0x_liquidity", "plugins", "--json", timeout=120))
    found = {e["type"] for e in data["executors"]}
    assert executors | {"dry-run"} <= found
    if extra != "all":
        assert len(found) == len(executors) + 1, found
    where = run(python, "-c", "import st0x_liquidity; print(st0x_liquidity.__file__)")
    assert str(venv) in where
