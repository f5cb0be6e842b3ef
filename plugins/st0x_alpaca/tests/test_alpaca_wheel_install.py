"""The distributions as a user gets them: wheels into a fresh venv, found by entry point.

Builds wheels of the core, ``st0x-alpaca`` and ``st0x-alpaca-broker`` (from
copies of their sources, so the checkout is untouched), creates a fresh venv,
installs third-party requirements from the normal index, then installs
``st0x-liquidity[alpaca]`` with ``--no-index --find-links`` so our own packages
can only come from the wheels just built. ``python -m st0x_liquidity plugins``
must then list the executor.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
OURS = {"st0x-liquidity", "st0x-alpaca", "st0x-alpaca-broker", "st0x-schwab"}
IGNORE = shutil.ignore_patterns(
    "tests", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".tox", "*.pyc"
)


def run(*cmd: str | Path, timeout: float = 900) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def copy_project(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    shutil.copytree(source / "src", target / "src", ignore=IGNORE)
    return target


def requirements(wheel: Path) -> list[str]:
    """Third-party Requires-Dist of a wheel (no extras, none of our own packages)."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode()
    reqs = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        if "extra ==" in req:
            continue
        name = re.split(r"[ <>=!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
        if name not in OURS:
            reqs.append(req)
    return reqs


def plugins_json(python: Path) -> dict[str, list[dict[str, str]]]:
    data: dict[str, list[dict[str, str]]] = json.loads(
        run(python, "-m", "st0x_liquidity", "plugins", "--json")
    )
    return data


@pytest.mark.slow
def test_extras_install_the_alpaca_plugins_from_wheels(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    for name, source in (
        ("core", ROOT),
        ("alpaca", ROOT / "plugins" / "st0x_alpaca"),
        ("alpaca-broker", ROOT / "plugins" / "st0x_alpaca_broker"),
    ):
        project = copy_project(source, tmp_path / "src" / name)
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, project)
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert len(built) == 3, built

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    third_party = sorted({r for w in wheels.glob("*.whl") for r in requirements(w)})
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *third_party)

    run(
        python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
        "--no-index", "--find-links", wheels, "st0x-liquidity[alpaca]",
    )
    data = plugins_json(python)
    executors = {e["type"]: e for e in data["executors"]}
    assert "alpaca-trading-api" in executors
    assert "alpaca-broker-api" not in executors
    dists = {p["distribution"] for p in data["plugins"]}
    assert "st0x-alpaca" in dists

    run(
        python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
        "--no-index", "--find-links", wheels, "st0x-liquidity[alpaca-broker]",
    )
    executors = {e["type"] for e in plugins_json(python)["executors"]}
    assert {"alpaca-trading-api", "alpaca-broker-api", "dry-run"} <= executors
    # The installed plugin is the wheel, not this checkout.
    where = run(python, "-c", "import st0x_alpaca; print(st0x_alpaca.__file__)")
    assert str(venv) in where
