"""The Prometheus alert rules in deploy/prometheus/, checked and unit-tested by promtool.

`promtool check rules` parses the rules and their PromQL; `promtool test rules`
runs st0x-alerts.test.yml, where every alert fires on one input and stays
quiet on another. The rest holds the rules to what the bot really exports
(docs/metrics.md, whose table the Grafana test checks against a real scrape) and
to the runbook they point at. promtool is Debian's `prometheus` package
(scripts/install-peers.sh installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from dashboard_support import TOKEN, append, fill_line, running_app, wait_until, write_config
from prometheus_client.parser import text_string_to_metric_families

from st0x_liquidity.web.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "st0x-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "st0x-alerts.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package 'prometheus'; scripts/install-peers.sh)",
)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_promtool
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_the_runbook_promises() -> None:
    names = {rule["alert"] for rule in rules()}
    assert names == {
        "St0xBotDown",
        "St0xBotAbsent",
        "St0xNotReady",
        "St0xFillSourceDown",
        "St0xFillSourceNotAdvancing",
        "St0xBrokerDown",
        "St0xBrokerAuthRequired",
        "St0xBrokerLoginExpiring",
        "St0xUnhedgedExposureHigh",
        "St0xStuckOrder",
        "St0xPausedWithExposure",
        "St0xHedgeBlocked",
        "St0xReconciliationMismatch",
    }


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def test_every_rule_has_a_severity_and_a_runbook_section() -> None:
    sections = anchors(OPERATIONS.read_text())
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        doc, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert doc == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in sections, f"docs/operations.md has no section for {rule['alert']}"


def documented_labels() -> dict[str, set[str]]:
    """Metric name -> its labels, from the table in docs/metrics.md."""
    labels: dict[str, set[str]] = {}
    for row in re.findall(
        r"^\| `(st0x_[a-z0-9_]+)` \|[^|]*\|([^|]*)\|", METRICS_DOC.read_text(), re.M
    ):
        name, cell = row
        labels[name] = set(re.findall(r"`([a-z_]+)`", cell))
    return labels


def test_rules_read_only_metrics_the_bot_exports() -> None:
    exported = set(METRIC_NAMES) | {n + "_total" for n in METRIC_NAMES}
    for rule in rules():
        for name in re.findall(r"\bst0x_[a-z0-9_]+", rule["expr"]):
            assert name in exported, f"{rule['alert']}: {name} is not exported"


def test_rule_tests_use_the_bots_labels_and_cover_every_alert() -> None:
    spec = yaml.safe_load(RULE_TESTS.read_text())
    doc_labels = documented_labels()
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in spec["tests"]:
        for series in case["input_series"]:
            match = re.fullmatch(r"([a-z0-9_]+)\{(.*)\}", series["series"])
            assert match, series["series"]
            name, body = match.groups()
            labels = set(re.findall(r"([a-z_]+)=\"", body))
            if name == "up":
                assert labels == {"job", "instance"}
                continue
            assert name in doc_labels, name
            # Prometheus adds job and instance to what the bot exports.
            assert labels == doc_labels[name] | {"job", "instance"}, series["series"]
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert fired == names, "alerts without a test that fires them"
    assert quiet == names, "alerts without a test where they stay quiet"


# -- the rules against what the real bot exports -----------------------------------


def assert_fires(scrape: str, tmp: Path, expected: set[str]) -> None:
    """Exactly ``expected`` fires when Prometheus keeps seeing this scrape for 30 minutes.

    Every sample becomes a constant input series with the labels a scrape adds
    (job, instance, and ``up`` 1); promtool evaluates the rules over them and a
    PromQL test compares ``ALERTS{alertstate="firing"}`` with the expected set
    (its output shows what fired instead).
    """
    series = [{"series": 'up{job="st0x-liquidity", instance="bot:8080"}', "values": "1x30"}]
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            labels = {**sample.labels, "job": "st0x-liquidity", "instance": "bot:8080"}
            body = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
            series.append({"series": f"{sample.name}{{{body}}}", "values": f"{sample.value!r}x30"})
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": 'count by (alertname) (ALERTS{alertstate="firing"})',
                        "eval_time": "30m",
                        "exp_samples": [
                            {"labels": f'{{alertname="{name}"}}', "value": 1}
                            for name in sorted(expected)
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp / "scrape.test.yml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as r:
        assert r.status == 200
        return await r.text()


@needs_promtool
async def test_a_healthy_bot_fires_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    append(tmp_path / "fills.jsonl", fill_line(1, "tAAPL", "SELL", "2", "190"))
    async with running_app(config) as (app, url):
        await wait_until(lambda: app.engine.status.hedges_filled >= 1)
        text = await scrape(url)
    assert "st0x_ready 1.0" in text
    assert_fires(text, tmp_path, set())


@needs_promtool
async def test_a_troubled_bot_fires_what_is_wrong(tmp_path: Path) -> None:
    """Paused with exposure, a hedge stuck at the broker, the fill source stalled."""
    fills = tmp_path / "fills.jsonl"
    config = write_config(tmp_path, latency=60.0, stuck_after=0.5, stall_after=1.5)
    append(fills, fill_line(1, "tAAPL", "SELL", "2", "190"))
    async with running_app(config) as (app, url), aiohttp.ClientSession() as http:
        await wait_until(lambda: app.engine.status.hedges_placed >= 1)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = {"action": "pause", "reason": "test"}
        async with http.post(url + "/api/breaker", json=body, headers=auth) as r:
            assert r.status == 200
        append(fills, fill_line(2, "tTSLA", "BUY", "3", "240"))
        await wait_until(lambda: app.engine.status.fills_ingested >= 2)

        async def settled() -> bool:
            text = await scrape(url)
            return all(
                s in text
                for s in (
                    'st0x_alerts{kind="stuck_order"} 1.0',
                    'st0x_alerts{kind="source_stalled"} 1.0',
                    'st0x_unhedged_exposure_shares{symbol="TSLA"} 3.0',
                )
            )

        await wait_until(settled, 30)
        text = await scrape(url)
    assert_fires(
        text,
        tmp_path,
        {"St0xStuckOrder", "St0xFillSourceDown", "St0xNotReady", "St0xPausedWithExposure"},
    )
