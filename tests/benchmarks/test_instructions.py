"""The instruction-count benchmark: its report parsing and its refusal without valgrind."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "instructions.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("instructions_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_collected_reads_callgrinds_last_count() -> None:
    report = (
        "==1== Callgrind, a call-graph generating cache profiler\n"
        "==1== Events    : Ir\n==1== Collected : 4805641020\n==1==\n==1== I   refs:      4,805,641,020\n"
    )
    assert _module().collected(report) == 4_805_641_020


def test_a_report_without_a_count_is_an_error_not_zero() -> None:
    with pytest.raises(SystemExit, match="no instruction count"):
        _module().collected("==1== error: could not start\n")


def test_without_valgrind_it_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing to find on it
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--fills", "10"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "valgrind is not installed" in done.stderr
