"""The README's install, as a new user runs it: wheels built here, never the public index.

``scripts/build-wheels.py`` builds the four runtime distributions (none
holds a fake, devnet or test contract) and the test support; a fresh venv takes
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


RUNTIME = ["st0x_alpaca", "st0x_alpaca_broker", "st0x_liquidity", "st0x_schwab"]
TESTING = "st0x_liquidity_testing"


def is_test_support(name: str) -> bool:
    """A fake, devnet or end-to-end helper module, a test contract, or the testing package."""
    parts = name.split("/")
    stem = parts[-1].removesuffix(".py")
    return (
        parts[0] == "st0x_testing"
        or stem in {"devnet", "e2e", "conftest"}
        or stem.startswith(("fake", "test_"))
        or "testing" in parts[:-1]
        or parts[-1].endswith("_devnet_contracts.json")
    )


def test_the_runtime_wheels_carry_no_tests_nor_test_support(dist: Path) -> None:
    wheels = sorted(p.name for p in dist.glob("*.whl"))
    assert [w.split("-")[0] for w in wheels] == sorted([*RUNTIME, TESTING])
    for wheel in dist.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            assert not [n for n in archive.namelist() if "/tests/" in n or n.startswith("tests/")]
            if wheel.name.split("-")[0] in RUNTIME:
                assert not [n for n in archive.namelist() if is_test_support(n)], wheel.name
    [core] = dist.glob("st0x_liquidity-*.whl")
    with zipfile.ZipFile(core) as archive:
        docs = [n for n in archive.namelist() if "/data/share/doc/st0x-liquidity/" in n]
    assert any(n.endswith("/operations.md") for n in docs), docs
    lines = (dist / "requirements.txt").read_text().splitlines()
    requirements = [line for line in lines if not line.startswith("#")]
    assert any(r.startswith("web3") for r in requirements)
    assert not [r for r in requirements if r.startswith(("st0x", "pytest"))]


def test_the_testing_wheel_holds_the_fakes_devnets_artifacts_and_fixtures(dist: Path) -> None:
    [wheel] = dist.glob(f"{TESTING}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line for line in archive.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]  # fmt: skip
        entry_points = archive.read(meta.replace("METADATA", "entry_points.txt")).decode()
    for module in ("raindex_devnet", "cctp_devnet", "fake_iris", "fake_alpaca",
                   "fake_alpaca_broker", "fake_alpaca_wallet", "fake_schwab", "alpaca_e2e",
                   "pytest_plugin"):  # fmt: skip
        assert f"st0x_testing/{module}.py" in names
    assert {"st0x_testing/data/raindex_devnet_contracts.json",
            "st0x_testing/data/cctp_devnet_contracts.json"} <= names  # fmt: skip
    assert "Requires-Dist: st0x-liquidity==0.1.0" in requires
    assert "[pytest11]\nst0x_testing = st0x_testing.pytest_plugin" in entry_points
    testing = (dist / "requirements-testing.txt").read_text()
    assert "pytest" in testing


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
    # The demo runs a devnet, which is test support: one line says what to install.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "ST0X_TOOLS"}}
    demo = subprocess.run(
        [str(python), "-m", "st0x_liquidity", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert demo.returncode == 2, demo.stderr
    assert demo.stdout == ""
    [line] = demo.stderr.splitlines()
    assert "st0x-liquidity-testing" in line and "anvil" in line
