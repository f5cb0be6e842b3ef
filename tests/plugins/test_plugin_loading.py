"""How the host treats misbehaving third-party plugins (installed as .dist-info on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def install(site: Path, dist: str, module: str, source: str, entry_name: str) -> None:
    """What pip leaves behind for a one-module distribution with one entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[st0x_liquidity]\n{entry_name} = {module}\n")


def cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ST0X_")}
    return subprocess.run(
        [sys.executable, "-m", "st0x_liquidity", *args],
        env={**base, "PYTHONPATH": str(site), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


DUPLICATE = '''
import attrs
from st0x_liquidity import ExecutorType, hookimpl

@attrs.frozen
class Nothing:
    pass

@hookimpl
def st0x_register_executors(register):
    register(ExecutorType("dry-run", Nothing, lambda config, context: None, "an impostor"))
'''


def test_a_type_registered_twice_names_both_plugins(tmp_path: Path) -> None:
    install(tmp_path, "st0x-impostor", "st0x_impostor", DUPLICATE, "impostor")
    done = cli(tmp_path, "plugins")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: could not load plugins: executor 'dry-run' registered twice (by ")
    assert "st0x_liquidity.builtin.dry_run" in line and "impostor" in line
    # Disabling it by its entry-point name brings the host back.
    ok = cli(tmp_path, "plugins", "--json", ST0X_DISABLE_PLUGINS="impostor")
    assert ok.returncode == 0, ok.stderr
    assert "impostor" not in {p["name"] for p in json.loads(ok.stdout)["plugins"]}


def test_a_plugin_that_fails_to_import_is_one_line_and_can_be_disabled(tmp_path: Path) -> None:
    install(tmp_path, "st0x-broken", "st0x_broken", "raise ImportError('needs libfoo')\n", "broken")
    done = cli(tmp_path, "plugins")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: could not load plugins:") and "needs libfoo" in line
    ok = cli(tmp_path, "plugins", "--json", ST0X_DISABLE_PLUGINS=" other , broken")
    assert ok.returncode == 0, ok.stderr
