"""Build the distributions into dist/ and write dist/requirements*.txt.

    python scripts/build-wheels.py            # dist/*.whl and dist/requirements*.txt

Four runtime distributions (the core and three broker plugins) and the test
support, st0x-liquidity-testing (fakes, devnets, test contracts, pytest
fixtures), which no runtime distribution requires. ``requirements.txt`` holds
the runtime wheels' third-party requirements; ``requirements-testing.txt`` the
ones the test support adds (pytest, pytest-asyncio).

None of st0x-liquidity, st0x-alpaca, st0x-alpaca-broker and st0x-schwab is
published on the public package index, and those names are not ours there:
``pip install 'st0x-liquidity[alpaca]'`` would install whatever someone else
uploaded under them. So the README installs in two steps: the third-party
requirements of the wheels (``dist/requirements.txt``, from the index), then
our own packages with ``--no-index --find-links dist``, which cannot reach
the index at all. Each distribution is built from a copy of its sources, so
the checkout is left as it is.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {
    "st0x-liquidity",
    "st0x-alpaca",
    "st0x-alpaca-broker",
    "st0x-schwab",
    "st0x-liquidity-testing",
}
TESTING = ROOT / "plugins" / "st0x_testing"
SOURCES = [
    ROOT,
    ROOT / "plugins" / "st0x_alpaca",
    ROOT / "plugins" / "st0x_alpaca_broker",
    ROOT / "plugins" / "st0x_schwab",
    TESTING,
]
IGNORE = shutil.ignore_patterns(
    "tests", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".tox", "*.pyc"
)


def third_party(wheel: Path) -> list[str]:
    """A wheel's Requires-Dist without extras' and without our own packages."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode()
    reqs = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            req = line.split(":", 1)[1].strip()
            name = re.split(r"[ <>=!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
            if name not in OURS:
                reqs.append(req)
    return reqs


def build(dist: Path) -> list[Path]:
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("st0x_*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        for source in SOURCES:
            copy = Path(tmp) / source.name
            copy.mkdir()
            for name in ("pyproject.toml", "README.md", "LICENSE"):
                if (source / name).exists():
                    shutil.copy2(source / name, copy / name)
            shutil.copytree(source / "src", copy / "src", ignore=IGNORE)
            if source == ROOT:  # the runbook and references ship as data files
                shutil.copytree(source / "docs", copy / "docs", ignore=IGNORE)
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(copy)],
                check=True,
            )
    wheels = sorted(dist.glob("st0x_*.whl"))
    runtime = [w for w in wheels if not w.name.startswith("st0x_liquidity_testing-")]
    reqs = sorted({r for w in runtime for r in third_party(w)})
    (dist / "requirements.txt").write_text(
        "# Third-party requirements of the st0x runtime wheels in this folder (from the index).\n"
        + "".join(f"{r}\n" for r in reqs)
    )
    extra = sorted({r for w in wheels for r in third_party(w)} - set(reqs))
    (dist / "requirements-testing.txt").write_text(
        "# What st0x-liquidity-testing adds to requirements.txt (from the index).\n"
        + "".join(f"{r}\n" for r in extra)
    )
    return wheels


def main() -> None:
    dist = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"
    for wheel in build(dist):
        print(wheel)
    print(dist / "requirements.txt")
    print(dist / "requirements-testing.txt")


if __name__ == "__main__":
    main()
