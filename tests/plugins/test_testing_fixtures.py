"""st0x-liquidity-testing's pytest plugin, used the way a plugin author uses it.

``examples/plugin-example/tests`` asks for ``st0x_store``, ``st0x_fake_alpaca``
and ``st0x_devnet`` by name only. It runs here in a child pytest rooted in the
example's folder, with an empty ini (none of this repository's conftests or
settings, pytest-asyncio in its default strict mode): the fixtures can only come
from the ``pytest11`` entry point of the installed distribution.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin-example"


@pytest.mark.timeout(300)
def test_a_third_party_test_gets_the_fixtures_from_the_entry_point(tmp_path: Path) -> None:
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ini),
         "--rootdir", str(EXAMPLE), "-rs", str(EXAMPLE / "tests")],
        capture_output=True, text=True, timeout=280, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout, done.stdout[-2000:]  # anvil is a test peer: no skip here


def test_without_the_plugin_the_fixtures_are_unknown(tmp_path: Path) -> None:
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:st0x_testing",
         "-c", str(ini), "--rootdir", str(EXAMPLE), str(EXAMPLE / "tests"), "-k", "store"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert "fixture 'st0x_store' not found" in done.stdout
