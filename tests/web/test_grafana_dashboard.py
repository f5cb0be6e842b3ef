"""Every metric the Grafana dashboard in docs/ charts exists in a real /metrics scrape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
from dashboard_support import append, fill_line, running_app, wait_until, write_config
from prometheus_client.parser import text_string_to_metric_families

from st0x_liquidity.web.metrics import METRIC_NAMES

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "st0x-liquidity.json"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def referenced() -> set[str]:
    dashboard = json.loads(GRAFANA.read_text())
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names.update(re.findall(r"\bst0x_[a-z0-9_]+", target["expr"]))
    return names


async def test_every_referenced_metric_exists(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    append(tmp_path / "fills.jsonl", fill_line(1, "tAAPL", "SELL", "2", "190"))
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: app.engine.status.hedges_filled >= 1)
        async with http.get(url + "/metrics") as r:
            text = await r.text()
    samples: set[str] = set()
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        samples.update(s.name for s in family.samples)

    def exposed(name: str) -> bool:
        # A family without samples yet (no skips so far) still has its HELP/TYPE.
        return name in samples or any(
            name in (f, f + "_total", f + "_info", f + "_bucket", f + "_count", f + "_sum")
            for f in families
        )

    names = referenced()
    assert len(names) >= 20
    assert sorted(n for n in names if not exposed(n)) == []
    # Every family the collector declares is scraped and documented.
    documented = set(re.findall(r"`(st0x_[a-z0-9_]+)`", DOCS.read_text()))
    for name in METRIC_NAMES:
        assert exposed(name) or exposed(name + "_info"), name
        assert name in documented or name + "_info" in documented, name


def test_every_metric_family_is_charted() -> None:
    """The dashboard charts every family the collector exposes (the issue: "charts these")."""
    names = referenced()
    uncharted = [
        name
        for name in METRIC_NAMES
        if not any(
            ref in (name, name + "_total", name + "_info", name + "_bucket", name + "_sum")
            for ref in names
        )
    ]
    assert uncharted == []


def test_panels_do_not_overlap_and_have_unique_ids() -> None:
    panels = json.loads(GRAFANA.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
