"""Small pure pieces of the dashboard state."""

from __future__ import annotations

from st0x_liquidity.web.state import LATENCY_BUCKETS, LatencyHistogram, last_block, reason_category


def test_reason_categories_are_bounded() -> None:
    assert reason_category("line 12: not valid JSON") == "line …: not valid JSON"
    assert reason_category("line 99: unknown symbol 'XYZ'") == "line …: unknown symbol …"
    assert reason_category("log 0xabc12 of tx 0xdef: undecodable") == "log … of tx …: undecodable"
    assert len(reason_category("x" * 500)) == 80
    assert reason_category("") == "unknown"


def test_last_block_from_cursors() -> None:
    assert last_block({"block": 123, "hash": "0x1"}) == 123
    assert last_block({"offset": 10, "line": 3}) is None
    assert last_block(None) is None
    assert last_block({"block": True}) is None


def test_latency_histogram_buckets() -> None:
    h = LatencyHistogram()
    for seconds in (0.05, 0.1, 0.3, 7200.0, -1.0):
        h.observe(seconds)
    assert h.count == 5
    assert h.counts[0] == 3  # 0.05, 0.1 (bound inclusive) and a clock-skewed negative
    assert h.counts[2] == 1  # 0.3 in (0.25, 0.5]
    assert h.counts[len(LATENCY_BUCKETS)] == 1  # above the last bound
    data = h.to_json()
    assert data["buckets"][-1] is None and len(data["counts"]) == len(data["buckets"])
