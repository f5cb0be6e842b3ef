"""The extended-hours week benchmark runs end to end on a small input, and each session helps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "extended_week.py"


def test_each_session_enabled_leaves_fewer_unhedged_share_hours() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--fills-per-hour", "0.3", "--symbols", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    regular, extended, overnight = json.loads(out.stdout)["results"]
    assert [r["mode"] for r in (regular, extended, overnight)] == [
        "regular",
        "extended",
        "overnight",
    ]
    assert regular["fills"] == extended["fills"] == overnight["fills"] > 20  # the same fills
    assert all(r["unsettled_steps"] == 0 for r in (regular, extended, overnight))
    assert (regular["hedgeable_hours_per_week"], extended["hedgeable_hours_per_week"]) == (
        32.5,
        80.0,
    )
    assert overnight["hedgeable_hours_per_week"] == 120.0
    assert (
        regular["unhedged_share_hours"]
        > extended["unhedged_share_hours"]
        > overnight["unhedged_share_hours"]
    )
    assert regular["exposure_window_hours_p50"] >= extended["exposure_window_hours_p50"]
