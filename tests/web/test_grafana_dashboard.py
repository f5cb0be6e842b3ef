"""The Grafana dashboard in docs/: every metric it charts exists in a real /metrics scrape,
one unit per panel, thresholds and value mappings on stat panels, the $instance
variable in every query, and every query valid PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
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


def panels() -> list[dict[str, Any]]:
    return list(json.loads(GRAFANA.read_text())["panels"])


BOOLEAN = {
    "st0x_symbol_session",
    "st0x_ready",
    "st0x_leader",
    "st0x_hedging_paused",
    "st0x_market_open",
    "st0x_broker_up",
    "st0x_broker_auth_required",
    "st0x_source_up",
    "st0x_store_up",
}
BY_SUFFIX = {
    "_seconds": "s",
    "_usd": "currencyUSD",
    "_shares": "suffix: shares",
    "_last_block": "locale",  # block numbers: digits, not "34.8 Mil"
    "_position": "locale",
    "_hours_per_week": "h",
}


def unit_of(expr: str) -> str:
    """The Grafana unit an expression's values are in, from the metrics it reads."""
    names = re.findall(r"\bst0x_[a-z0-9_]+", expr)
    assert names, expr
    if "histogram_quantile" in expr or "_seconds_sum" in expr:
        return "s"
    if "rate(" in expr:
        assert expr.endswith("* 60"), f"rates are charted per minute: {expr}"
        return "cpm"
    if "increase(" in expr:
        return "none"  # a count over the window in the panel title
    (name,) = set(names)
    if name in BOOLEAN:
        return "bool"
    if name == "st0x_build_info":
        return "info"
    for suffix, unit in BY_SUFFIX.items():
        if name.endswith(suffix):
            return unit
    counts = ("st0x_hedges_open", "st0x_alerts", "st0x_hedge_blocked", "st0x_reconciliation_mismatch")
    assert name in counts, f"no unit known for {name}"
    return "none"


def test_each_panel_has_one_unit() -> None:
    """No panel mixes block numbers, seconds and 0/1 (or any two units) on one axis."""
    for panel in panels():
        title = panel["title"]
        field = panel["fieldConfig"]
        assert not any(
            prop["id"] == "unit" for o in field["overrides"] for prop in o["properties"]
        ), title
        units = {unit_of(t["expr"]) for t in panel["targets"]}
        assert len(units) == 1, f"{title} mixes {sorted(units)}"
        (unit,) = units
        if panel["type"] == "heatmap":
            assert panel["options"]["yAxis"]["unit"] == "s", title  # the buckets' le
            assert panel["targets"][0]["format"] == "heatmap", title
        elif unit == "bool":
            # 0/1 shown as words through value mappings, never as a number on an axis.
            assert panel["type"] in ("stat", "state-timeline"), title
            assert field["defaults"].get("unit") == "none", title
        elif unit == "info":
            assert panel["type"] == "stat" and panel["options"]["textMode"] == "name", title
        else:
            assert field["defaults"].get("unit") == unit, title


def test_stat_panels_have_thresholds_and_value_mappings() -> None:
    stats = [p for p in panels() if p["type"] == "stat"]
    titles = {p["title"] for p in stats}
    assert {"Ready", "Hedging", "Market", "Broker", "Broker login"} <= titles
    for panel in stats:
        defaults = panel["fieldConfig"]["defaults"]
        steps = defaults["thresholds"]["steps"]
        assert steps and steps[0]["value"] is None, panel["title"]  # a base colour
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values), panel["title"]
        if unit_of(panel["targets"][0]["expr"]) == "bool":
            options = defaults["mappings"][0]["options"]
            assert set(options) == {"0", "1"}, panel["title"]
            for mapped in options.values():
                assert mapped["text"] and mapped["color"], panel["title"]
            assert defaults["noValue"], panel["title"]


def test_every_query_selects_the_instance_variable() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "instance" and variable["type"] == "query"
    assert variable["definition"] == "label_values(st0x_build_info, instance)"
    assert variable["query"]["query"] == variable["definition"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            selectors = re.findall(r"\bst0x_[a-z0-9_]+(\{[^}]*\})?", expr)
            assert selectors, expr
            for selector in selectors:
                assert 'instance="$instance"' in selector, f"{panel['title']}: {expr}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query (as a recording rule, $instance filled in)."""
    rules = [
        f"      - record: grafana:panel_{p['id']}_{t['refId']}\n"
        f"        expr: {json.dumps(t['expr'].replace('$instance', 'bot:8080'))}\n"
        for p in panels()
        for t in p["targets"]
    ]
    path = tmp_path / "grafana-queries.yml"
    path.write_text("groups:\n  - name: grafana\n    rules:\n" + "".join(rules))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
